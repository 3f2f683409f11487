"""A small protected API (RFC 9728 metadata) with, optionally, its own toy authorization
server (RFC 8414 metadata, RFC 7591 registration, authorize that consents at once, token),
served from a thread so that CLI subprocesses can reach it."""

from __future__ import annotations

import asyncio
import itertools
import shlex
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from loopback_login._tokens.record import jwt_claims

# A $BROWSER that follows the redirects (from the page it is handed), as a browser does
# when consent is automatic.
FOLLOWING_BROWSER = {
    "BROWSER": f"{shlex.quote(sys.executable)} -c "
    + shlex.quote(
        f"import sys, urllib.request; sys.path.insert(0, {str(Path(__file__).parent)!r}); "
        "from fake_browser import page_target; "
        "urllib.request.urlopen(page_target(sys.argv[1]), timeout=20)"
    )
    + " %s"
}


@dataclass
class ProtectedApi:
    """What the API and its toy authorization server do; what they were sent."""

    #: None: the toy authorization server on the same origin protects the API.
    authorization_servers: list[str] | None = None
    www_authenticate: bool = True
    #: The scope the 401 says a request needs (RFC 6750 §3), if any.
    challenge_scope: str | None = None
    metadata: str = "ok"  # "ok", "missing", "mismatch"
    registration: str = "ok"  # "ok", "refused", "absent"
    #: RFC 7592 reads of a registration answer 404, as after a restart of a server in memory.
    forget_clients: bool = False
    scopes: list[str] = field(default_factory=lambda: ["api", "offline"])
    #: The issuer the authorization server metadata names (default: its own URL).
    issuer: str | None = None
    #: A scope POST /api needs beyond the token's: a 403 insufficient_scope names it.
    write_scope: str | None = None
    base_url: str = ""
    registered: list[dict[str, Any]] = field(default_factory=list)
    authorize_queries: list[dict[str, str]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)
    #: The Authorization header of each token request (client_secret_basic), if any.
    token_auth: list[str | None] = field(default_factory=list)
    _counter: itertools.count[int] = field(default_factory=lambda: itertools.count(1))
    _granted: dict[str, str] = field(default_factory=dict)  # code or token -> scope

    @property
    def resource(self) -> str:
        return f"{self.base_url}/api"

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api", self._api)
        app.router.add_post("/api", self._api)
        app.router.add_get("/.well-known/oauth-protected-resource/api", self._resource_metadata)
        if self.authorization_servers is None:
            app.router.add_get("/.well-known/oauth-authorization-server", self._as_metadata)
            app.router.add_post("/register", self._register)
            app.router.add_get("/register/{client_id}", self._read_registration)
            app.router.add_get("/authorize", self._authorize)
            app.router.add_post("/token", self._token)
        return app

    async def _api(self, request: web.Request) -> web.Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        claims = jwt_claims(token) or {}
        if scheme == "Bearer" and (claims.get("aud") == self.resource or token.startswith("at-")):
            granted = self._granted.get(token, "").split()
            if request.method == "POST" and self.write_scope and self.write_scope not in granted:
                # RFC 6750 §3.1; the scope named is all the request needs (MCP 2025-11-25).
                needed = " ".join(["api", self.write_scope])
                challenge = f'Bearer error="insufficient_scope", scope="{needed}"'
                return web.json_response(
                    {"error": "insufficient_scope"},
                    status=403,
                    headers={"WWW-Authenticate": challenge},
                )
            return web.json_response({"hello": claims.get("sub", "you")})
        headers = {}
        if self.www_authenticate:
            where = f"{self.base_url}/.well-known/oauth-protected-resource/api"
            headers["WWW-Authenticate"] = f'Bearer realm="api", resource_metadata="{where}"'
            if self.challenge_scope:
                headers["WWW-Authenticate"] += f', scope="{self.challenge_scope}"'
        return web.json_response({"error": "unauthorized"}, status=401, headers=headers)

    async def _resource_metadata(self, request: web.Request) -> web.Response:
        if self.metadata == "missing":
            raise web.HTTPNotFound()
        return web.json_response(
            {
                "resource": self.resource if self.metadata == "ok" else f"{self.base_url}/other",
                "authorization_servers": self.authorization_servers or [self.base_url],
                "scopes_supported": self.scopes,
                "bearer_methods_supported": ["header"],
            }
        )

    async def _as_metadata(self, request: web.Request) -> web.Response:
        document = {
            "issuer": self.issuer or self.base_url,
            "authorization_endpoint": f"{self.base_url}/authorize",
            "token_endpoint": f"{self.base_url}/token",
            "code_challenge_methods_supported": ["S256"],
            "token_endpoint_auth_methods_supported": ["none"],
        }
        if self.registration != "absent":
            document["registration_endpoint"] = f"{self.base_url}/register"
        return web.json_response(document)

    async def _register(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.registered.append(body)
        if self.registration == "refused":
            return web.json_response(
                {"error": "invalid_client_metadata", "error_description": "no new clients today"},
                status=400,
            )
        number = next(self._counter)
        return web.json_response(
            {
                **body,
                "client_id": f"client-{number}",
                "client_id_issued_at": 1,
                "registration_access_token": f"rat-secret-{number}",
                "registration_client_uri": f"{self.base_url}/register/client-{number}",
            },
            status=201,
        )

    async def _read_registration(self, request: web.Request) -> web.Response:
        number = request.match_info["client_id"].removeprefix("client-")
        authorized = request.headers.get("Authorization") == f"Bearer rat-secret-{number}"
        if self.forget_clients or not authorized:
            raise web.HTTPNotFound()
        return web.json_response({"client_id": request.match_info["client_id"]})

    async def _authorize(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.authorize_queries.append(query)
        # Consent is automatic: straight back to the client with a code.
        params = {"code": f"code-{next(self._counter)}", "state": query["state"]}
        self._granted[params["code"]] = query.get("scope", "")
        raise web.HTTPFound(f"{query['redirect_uri']}?{urlencode(params)}")

    async def _token(self, request: web.Request) -> web.Response:
        form = dict(await request.post())
        self.token_forms.append({k: str(v) for k, v in form.items()})
        self.token_auth.append(request.headers.get("Authorization"))
        number = next(self._counter)
        # Granted as asked in the authorize request (or as the refresh token was).
        scope = self._granted.get(str(form.get("code") or form.get("refresh_token")))
        scope = " ".join(self.scopes) if scope is None else scope
        self._granted[f"at-{number}"] = self._granted[f"rt-{number}"] = scope
        return web.json_response(
            {
                "access_token": f"at-{number}",
                "token_type": "Bearer",
                "expires_in": 3600,
                "refresh_token": f"rt-{number}",
                "scope": scope,
            }
        )


class Served:
    """An aiohttp app on 127.0.0.1 (a free port), from a thread."""

    def __init__(self, api: ProtectedApi) -> None:
        self.api = api
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self._runner = web.AppRunner(api.app(), handle_signals=False)
        port = asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(10)
        api.base_url = f"http://127.0.0.1:{port}"

    async def _start(self) -> int:
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        return int(site._server.sockets[0].getsockname()[1])  # type: ignore[union-attr]

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

"""The demo provider: a small authorization server that behaves like Honeywell's Apigee API.

It is what ``loopback-login demo`` logs in to, and the provider of the tests.
Like the real one it answers numbers as strings, ``"token_type":
"BearerToken"``, ``issued_at`` in milliseconds, Apigee error shapes, keeps client
credentials at ``/oauth2/accesstoken``, rotates refresh tokens and matches the
redirect URI byte for byte. It also checks what Honeywell does not document
(PKCE when a challenge was sent), reads Basic credentials literally as Apigee
does (``id:secret`` as they are, split at the first colon; a client may ask
for RFC 6749 §2.3.1 form-decoding instead), and has switches for faults (:class:`Faults`).

Endpoints::

    GET  /oauth2/authorize      login page (user ``demo``, password ``demo``)
    POST /oauth2/login          -> consent page
    POST /oauth2/consent        -> 302 to the redirect URI with code= or error=
    POST /oauth2/token          authorization_code, refresh_token (Basic or post auth)
    POST /oauth2/accesstoken    client_credentials
    POST /oauth2/revoke         RFC 7009 revocation (Honeywell documents none)
    GET  /v2/locations          a sample API call: Bearer token and ?apikey=

:func:`play_browser` walks these pages the way a person would, over HTTP; the
demo uses it where no browser can be opened, and the tests as their browser.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import html
import secrets
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote_plus, urlencode, urlsplit

from aiohttp import web

from .browser import DEMO_PASSWORD, DEMO_USER

if TYPE_CHECKING:
    from ssl import SSLContext


@dataclass
class DemoClient:
    """A registered application."""

    client_id: str
    client_secret: str | None = field(repr=False)
    redirect_uris: tuple[str, ...]
    #: RFC 8252 §7.3: any port of a loopback redirect URI matches. Honeywell
    #: does not do this; the `demo` command's own client does.
    any_loopback_port: bool = False
    name: str = "Demo Thermostat App"
    #: RFC 6749 §2.3.1: Basic credentials arrive form-encoded, as a standard provider
    #: reads them. Off by default: Apigee takes ``id:secret`` literally.
    form_encoded_basic: bool = False


@dataclass
class Faults:
    """Switches the tests (and the curious) flip to make the provider misbehave."""

    #: Every consent ends in ``error=access_denied``, whatever is clicked.
    deny: bool = False
    #: Statuses the token endpoints answer next, one per request (5xx: an HTML gateway page).
    token_errors: list[int] = field(default_factory=list)
    #: Seconds to wait before answering a token request.
    slow: float = 0.0
    #: Every token request is refused with ``invalid_grant``.
    invalid_grant: bool = False
    #: Refreshes answer without a new refresh token (the old one stays valid).
    no_rotation: bool = False
    #: How many token requests to read and then drop without an answer.
    drop_connection: int = 0
    #: ``Retry-After`` sent with a 429 from ``token_errors``.
    retry_after: str = "1"
    #: Scopes never granted, as a provider that wants ``prompt=consent`` for
    #: ``offline_access`` (withheld, it also withholds the refresh token).
    withheld_scopes: tuple[str, ...] = ()


@dataclass
class _Pending:
    client: DemoClient
    redirect_uri: str
    state: str | None
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None


@dataclass
class _Grant:
    client_id: str
    redirect_uri: str
    scope: str
    code_challenge: str | None
    code_challenge_method: str | None
    expires_at: float


class DemoProvider:
    """The provider's state, and its aiohttp application (:meth:`app`)."""

    def __init__(
        self,
        clients: list[DemoClient],
        *,
        access_token_lifetime: int = 1800,
        code_lifetime: int = 600,
    ) -> None:
        self.clients = {client.client_id: client for client in clients}
        self.access_token_lifetime = access_token_lifetime
        self.code_lifetime = code_lifetime
        self.faults = Faults()
        #: Token requests seen, by grant type.
        self.requests: Counter[str] = Counter()
        self._pending: dict[str, _Pending] = {}
        self._codes: dict[str, _Grant] = {}
        self._refresh_tokens: dict[str, tuple[str, str]] = {}  # token -> (client id, scope)
        self._access_tokens: dict[str, float] = {}  # token -> expiry

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/oauth2/authorize", self._authorize)
        app.router.add_post("/oauth2/login", self._login)
        app.router.add_post("/oauth2/consent", self._consent)
        app.router.add_post("/oauth2/token", self._token)
        app.router.add_post("/oauth2/accesstoken", self._accesstoken)
        app.router.add_post("/oauth2/revoke", self._revoke)
        app.router.add_get("/v2/locations", self._locations)
        return app

    # --- the browser's side -------------------------------------------------

    async def _authorize(self, request: web.Request) -> web.Response:
        query = request.query
        client = self.clients.get(query.get("client_id", ""))
        if client is None:
            return _page(400, "Unknown application", "The client_id is not registered.")
        redirect_uri = query.get("redirect_uri", "")
        if not self._redirect_allowed(client, redirect_uri):
            # RFC 6749 §4.1.2.1: never redirect to an unregistered URI.
            return _page(
                400, "Redirect URI mismatch", "The redirect_uri does not match the registered one."
            )
        state = query.get("state")
        if query.get("response_type") != "code":
            return _redirect(redirect_uri, error="unsupported_response_type", state=state)
        method = query.get("code_challenge_method", "plain" if "code_challenge" in query else None)
        if method not in (None, "S256", "plain"):
            return _redirect(redirect_uri, error="invalid_request", state=state)
        request_id = secrets.token_urlsafe(16)
        self._pending[request_id] = _Pending(
            client=client,
            redirect_uri=redirect_uri,
            state=state,
            scope=query.get("scope", ""),
            code_challenge=query.get("code_challenge"),
            code_challenge_method=method,
        )
        return _login_page(request_id, client, error=None)

    async def _login(self, request: web.Request) -> web.Response:
        form = await request.post()
        request_id = str(form.get("request", ""))
        pending = self._pending.get(request_id)
        if pending is None:
            return _page(400, "Session expired", "Start the login again from your application.")
        if not (
            hmac.compare_digest(str(form.get("username", "")), DEMO_USER)
            and hmac.compare_digest(str(form.get("password", "")), DEMO_PASSWORD)
        ):
            return _login_page(request_id, pending.client, error="Wrong user name or password.")
        return _consent_page(request_id, pending)

    async def _consent(self, request: web.Request) -> web.Response:
        form = await request.post()
        pending = self._pending.pop(str(form.get("request", "")), None)
        if pending is None:
            return _page(400, "Session expired", "Start the login again from your application.")
        if form.get("decision") != "allow" or self.faults.deny:
            return _redirect(
                pending.redirect_uri,
                error="access_denied",
                error_description="The user denied access",
                state=pending.state,
            )
        code = secrets.token_urlsafe(24)
        self._codes[code] = _Grant(
            client_id=pending.client.client_id,
            redirect_uri=pending.redirect_uri,
            scope=pending.scope,
            code_challenge=pending.code_challenge,
            code_challenge_method=pending.code_challenge_method,
            expires_at=time.time() + self.code_lifetime,
        )
        return _redirect(pending.redirect_uri, code=code, state=pending.state)

    def _redirect_allowed(self, client: DemoClient, redirect_uri: str) -> bool:
        if redirect_uri in client.redirect_uris:
            return True
        if not client.any_loopback_port:
            return False
        return any(
            _without_port(redirect_uri) == _without_port(registered)
            for registered in client.redirect_uris
        )

    # --- the client's side --------------------------------------------------

    async def _token(self, request: web.Request) -> web.Response:
        return await self._token_endpoint(request, ("authorization_code", "refresh_token"))

    async def _accesstoken(self, request: web.Request) -> web.Response:
        return await self._token_endpoint(request, ("client_credentials",))

    async def _token_endpoint(
        self, request: web.Request, grant_types: tuple[str, ...]
    ) -> web.Response:
        form = await request.post()
        grant_type = str(form.get("grant_type", ""))
        self.requests[grant_type] += 1
        if self.faults.slow:
            await asyncio.sleep(self.faults.slow)
        if self.faults.drop_connection:
            self.faults.drop_connection -= 1
            # Read, maybe processed, never answered: what a client must not resend.
            if grant_type == "refresh_token":
                self._refresh_tokens.pop(str(form.get("refresh_token", "")), None)
            assert request.transport is not None
            request.transport.abort()
            raise asyncio.CancelledError
        if self.faults.token_errors:
            status = self.faults.token_errors.pop(0)
            return _gateway_error(status, retry_after=self.faults.retry_after)
        client = self._authenticate(request, form)
        if client is None:
            return _apigee_error(401, "invalid_client", "Invalid client identifier or secret")
        if grant_type not in grant_types:
            return _apigee_error(400, "unsupported_grant_type", "Unsupported grant type")
        if self.faults.invalid_grant:
            return _apigee_error(400, "invalid_grant", "Invalid Refresh Token")
        if grant_type == "authorization_code":
            return self._exchange_code(client, form)
        if grant_type == "refresh_token":
            return self._refresh(client, form)
        return self._issue(client, "", with_refresh_token=False)

    def _authenticate(self, request: web.Request, form: Mapping[str, Any]) -> DemoClient | None:
        header = request.headers.get("Authorization", "")
        if header.startswith("Basic "):
            try:
                decoded = base64.b64decode(header[6:], validate=True).decode("utf-8")
                client_id, secret = decoded.split(":", 1)  # RFC 7617 §2: the first colon
            except ValueError:
                return None
            registered = self.clients.get(client_id) or self.clients.get(unquote_plus(client_id))
            if registered is not None and registered.form_encoded_basic:
                # RFC 6749 §2.3.1: both halves are form-encoded before they are joined.
                client_id, secret = unquote_plus(client_id), unquote_plus(secret)
            if "client_secret" in form:
                return None  # two ways at once (RFC 6749 §2.3)
        elif "client_secret" in form:
            client_id, secret = str(form.get("client_id", "")), str(form["client_secret"])
        else:
            client = self.clients.get(str(form.get("client_id", "")))
            # A public client: PKCE is its proof, checked with the code.
            return client if client is not None and client.client_secret is None else None
        client = self.clients.get(client_id)
        if client is None or client.client_secret is None:
            return None
        return client if hmac.compare_digest(secret, client.client_secret) else None

    def _exchange_code(self, client: DemoClient, form: Mapping[str, Any]) -> web.Response:
        grant = self._codes.pop(str(form.get("code", "")), None)  # single use
        if grant is None:
            # Counted apart: a client checking its credentials sends a code that cannot exist.
            self.requests["unknown code"] += 1
        if grant is None or grant.expires_at < time.time() or grant.client_id != client.client_id:
            return _apigee_error(400, "invalid_request", "Invalid Authorization Code")
        if form.get("redirect_uri") != grant.redirect_uri:
            return _apigee_error(400, "invalid_request", "Invalid redirect_uri")
        if grant.code_challenge is not None:
            verifier = str(form.get("code_verifier", ""))
            if grant.code_challenge_method == "S256":
                digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
                computed = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
            else:
                computed = verifier
            if not verifier or not hmac.compare_digest(computed, grant.code_challenge):
                return _apigee_error(400, "invalid_grant", "PKCE verification failed")
        elif client.client_secret is None:
            return _apigee_error(400, "invalid_request", "A public client must use PKCE")
        return self._issue(client, grant.scope, with_refresh_token=True)

    def _refresh(self, client: DemoClient, form: Mapping[str, Any]) -> web.Response:
        refresh_token = str(form.get("refresh_token", ""))
        held = self._refresh_tokens.get(refresh_token)
        if held is None or held[0] != client.client_id:
            return _apigee_error(400, "invalid_request", "Invalid Refresh Token")
        if self.faults.no_rotation:
            return self._issue(client, held[1], with_refresh_token=False)
        del self._refresh_tokens[refresh_token]  # rotated: the old one is spent
        return self._issue(client, held[1], with_refresh_token=True)

    async def _revoke(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.requests["revoke"] += 1
        if self.faults.token_errors:
            return _gateway_error(self.faults.token_errors.pop(0))
        client = self._authenticate(request, form)
        if client is None:
            return _apigee_error(401, "invalid_client", "Invalid client identifier or secret")
        token = str(form.get("token", ""))
        held = self._refresh_tokens.get(token)
        if held is not None and held[0] == client.client_id:
            del self._refresh_tokens[token]
        self._access_tokens.pop(token, None)
        return web.Response(status=200)  # RFC 7009 §2.2: also for unknown tokens

    def is_valid_refresh_token(self, token: str) -> bool:
        return token in self._refresh_tokens

    def _issue(self, client: DemoClient, scope: str, *, with_refresh_token: bool) -> web.Response:
        now = time.time()
        if self.faults.withheld_scopes:
            asked = scope.split()
            scope = " ".join(s for s in asked if s not in self.faults.withheld_scopes)
            if "offline_access" in asked and "offline_access" not in scope.split():
                with_refresh_token = False
        access_token = secrets.token_urlsafe(24)
        self._access_tokens[access_token] = now + self.access_token_lifetime
        body = {
            "refresh_token_expires_in": "0",
            "api_product_list": "[Basic Plan]",
            "organization_name": "connectedhome",
            "token_type": "BearerToken",
            "issued_at": str(int(now * 1000)),
            "client_id": client.client_id,
            "access_token": access_token,
            "application_name": "b1bd4907-924a-4470-a641-0effeb279834",
            "scope": scope,
            "expires_in": str(self.access_token_lifetime - 1),
            "refresh_count": "0",
            "status": "approved",
        }
        if with_refresh_token:
            refresh_token = secrets.token_urlsafe(24)
            self._refresh_tokens[refresh_token] = (client.client_id, scope)
            body["refresh_token"] = refresh_token
        return web.json_response(body, headers={"Cache-Control": "no-store"})

    # --- a sample API -------------------------------------------------------

    async def _locations(self, request: web.Request) -> web.Response:
        # As Honeywell's API: the Bearer token (RFC 6750 §2.1) and the app's
        # client id as ?apikey=, on every call; Apigee's error shape when not.
        self.requests["api"] += 1
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        expires = self._access_tokens.get(token) if scheme.lower() == "bearer" else None
        if expires is None or expires < time.time():
            return _apigee_error(401, "invalid_token", "Invalid access token")
        if request.query.get("apikey") not in self.clients:
            return _apigee_error(401, "invalid_request", "Invalid ApiKey")
        return web.json_response(SAMPLE_LOCATIONS)


def _thermostat(device_id: str, name: str, indoor: float, heat: float, mode: str) -> dict[str, Any]:
    return {
        "deviceID": device_id,
        "deviceClass": "Thermostat",
        "userDefinedDeviceName": name,
        "isAlive": True,
        "units": "Celsius",
        "indoorTemperature": indoor,
        "changeableValues": {"mode": mode, "heatSetpoint": heat, "coolSetpoint": 25.0},
    }


#: What ``GET /v2/locations`` answers: fake homes and thermostats, in Honeywell's shape.
SAMPLE_LOCATIONS = [
    {
        "locationID": 1,
        "name": "Demo House",
        "city": "Golden Valley",
        "devices": [
            _thermostat("LCC-00D02DB89E33", "Living Room", 21.5, 21.0, "Heat"),
            _thermostat("LCC-00D02DB6B8D2", "Bedroom", 19.0, 18.5, "Heat"),
        ],
    },
    {
        "locationID": 2,
        "name": "Demo Cabin",
        "city": "Duluth",
        "devices": [_thermostat("TCC-1765938", "Main Floor", 12.0, 10.0, "Off")],
    },
]


# --- responses ---------------------------------------------------------------

_PAGE_STYLE = (
    "body{font:16px/1.5 system-ui,sans-serif;max-width:28em;margin:3em auto;padding:0 1em}"
    "label{display:block;margin:.6em 0}input{font:inherit;width:100%}"
    "button{font:inherit;margin:.8em .6em 0 0;padding:.3em 1.2em}.error{color:#b42318}"
)


def _page(status: int, title: str, body_html: str) -> web.Response:
    page = (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        f"<title>{html.escape(title)} · Demo Home</title><style>{_PAGE_STYLE}</style>"
        f"</head><body><h1>{html.escape(title)}</h1>{body_html}</body></html>"
    )
    return web.Response(
        status=status, text=page, content_type="text/html", headers={"Cache-Control": "no-store"}
    )


def _login_page(request_id: str, client: DemoClient, *, error: str | None) -> web.Response:
    problem = f"<p class=error>{html.escape(error)}</p>" if error else ""
    return _page(
        200,
        "Sign in",
        f"<p>Sign in to Demo Home to continue to {html.escape(client.name)}.</p>{problem}"
        "<form method=post action=/oauth2/login>"
        f"<input type=hidden name=request value='{html.escape(request_id)}'>"
        "<label>User name <input name=username autocomplete=username></label>"
        "<label>Password <input name=password type=password></label>"
        "<button type=submit>Sign in</button></form>"
        f"<p>Demo account: user <b>{DEMO_USER}</b>, password <b>{DEMO_PASSWORD}</b>.</p>",
    )


def _consent_page(request_id: str, pending: _Pending) -> web.Response:
    scope = html.escape(pending.scope or "your thermostats")
    return _page(
        200,
        "Allow access?",
        f"<p><b>{html.escape(pending.client.name)}</b> wants to read and control {scope}.</p>"
        "<form method=post action=/oauth2/consent>"
        f"<input type=hidden name=request value='{html.escape(request_id)}'>"
        "<button type=submit name=decision value=allow>Allow</button>"
        "<button type=submit name=decision value=deny>Deny</button></form>",
    )


def _redirect(redirect_uri: str, *, state: str | None, **params: str) -> web.Response:
    if state is not None:
        params["state"] = state
    separator = "&" if urlsplit(redirect_uri).query else "?"
    location = f"{redirect_uri}{separator}{urlencode(params)}"
    return web.Response(status=302, headers={"Location": location, "Cache-Control": "no-store"})


def _apigee_error(status: int, code: str, message: str) -> web.Response:
    # Apigee's shape, not RFC 6749 §5.2's.
    return web.json_response({"ErrorCode": code, "Error": message}, status=status)


def _gateway_error(status: int, *, retry_after: str = "1") -> web.Response:
    reason = {
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
        429: "Too Many Requests",
    }.get(status, "Error")
    body = (
        f"<html><head><title>{status} {reason}</title></head><body>"
        f"<center><h1>{status} {reason}</h1></center><hr><center>gateway</center></body></html>"
    )
    headers = {"Retry-After": retry_after} if status == 429 else {}
    return web.Response(
        status=status, reason=reason, text=body, content_type="text/html", headers=headers
    )


def _without_port(uri: str) -> tuple[str, str, str, str]:
    parts = urlsplit(uri)
    return parts.scheme, parts.hostname or "", parts.path, parts.query


# --- running it --------------------------------------------------------------


class RunningDemo:
    """A demo provider served on 127.0.0.1 in the current event loop (over TLS with ``ssl``)."""

    def __init__(self, provider: DemoProvider, *, ssl: SSLContext | None = None) -> None:
        self.provider = provider
        self.base_url = ""
        self._ssl = ssl
        self._runner: web.AppRunner | None = None

    async def __aenter__(self) -> RunningDemo:
        self._runner = web.AppRunner(self.provider.app(), access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=self._ssl)
        await site.start()
        host, port = self._runner.addresses[0][:2]
        self.base_url = f"{'https' if self._ssl else 'http'}://{host}:{port}"
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        assert self._runner is not None
        await self._runner.cleanup()

"""A real MCP server protected by OAuth, built with the official `mcp` SDK: its own
in-memory authorization server with dynamic registration, consent given at once. We
log in with nothing but its URL (`--resource`) through headless Chromium, then list its
tools through the SDK's client over streamable HTTP with the token."""

from __future__ import annotations

import asyncio
import secrets
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support import AsgiThread, expire, read_record, run_cli, start_cli

Catcher = tuple[dict[str, str], Callable[[], str]]

try:
    from mcp.server.auth.provider import (
        AccessToken,
        AuthorizationCode,
        AuthorizationParams,
        IdentityAssertionParams,
        RefreshToken,
        TokenError,
        construct_redirect_uri,
    )
    from mcp.server.auth.settings import AuthSettings, ClientRegistrationOptions
    from mcp.shared.auth import OAuthClientInformationFull, OAuthToken
    from pydantic import AnyHttpUrl
except ImportError:  # without the e2e extra: skipped (LOOPBACK_LOGIN_E2E=skip), else failed below
    SDK_MISSING = True
else:
    SDK_MISSING = False


class InMemoryAuthorizationServer:
    """The SDK's authorization server provider interface, kept in dictionaries.

    Consent is automatic: /authorize sends the browser straight back with a code.
    Every token remembers the resource it was asked for (RFC 8707).
    """

    def __init__(self) -> None:
        self.clients: dict[str, OAuthClientInformationFull] = {}
        self.codes: dict[str, AuthorizationCode] = {}
        self.access: dict[str, AccessToken] = {}
        self.refresh: dict[str, RefreshToken] = {}

    async def get_client(self, client_id: str) -> OAuthClientInformationFull | None:
        return self.clients.get(client_id)

    async def register_client(self, client_info: OAuthClientInformationFull) -> None:
        assert client_info.client_id is not None
        self.clients[client_info.client_id] = client_info

    async def authorize(
        self, client: OAuthClientInformationFull, params: AuthorizationParams
    ) -> str:
        code = secrets.token_urlsafe(32)
        assert client.client_id is not None
        self.codes[code] = AuthorizationCode(
            code=code,
            scopes=params.scopes or [],
            expires_at=time.time() + 300,
            client_id=client.client_id,
            code_challenge=params.code_challenge,
            redirect_uri=params.redirect_uri,
            redirect_uri_provided_explicitly=params.redirect_uri_provided_explicitly,
            resource=params.resource,
            subject="alice",
        )
        return construct_redirect_uri(str(params.redirect_uri), code=code, state=params.state)

    async def load_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: str
    ) -> AuthorizationCode | None:
        return self.codes.get(authorization_code)

    def _issue(self, client_id: str, scopes: list[str], resource: str | None) -> OAuthToken:
        access, refresh = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
        expires = int(time.time()) + 3600
        self.access[access] = AccessToken(
            token=access, client_id=client_id, scopes=scopes, expires_at=expires, resource=resource
        )
        self.refresh[refresh] = RefreshToken(
            token=refresh, client_id=client_id, scopes=scopes, resource=resource
        )
        return OAuthToken(
            access_token=access, expires_in=3600, scope=" ".join(scopes), refresh_token=refresh
        )

    async def exchange_authorization_code(
        self, client: OAuthClientInformationFull, authorization_code: AuthorizationCode
    ) -> OAuthToken:
        del self.codes[authorization_code.code]
        return self._issue(
            authorization_code.client_id, authorization_code.scopes, authorization_code.resource
        )

    async def load_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: str
    ) -> RefreshToken | None:
        return self.refresh.get(refresh_token)

    async def exchange_refresh_token(
        self, client: OAuthClientInformationFull, refresh_token: RefreshToken, scopes: list[str]
    ) -> OAuthToken:
        del self.refresh[refresh_token.token]
        return self._issue(
            refresh_token.client_id, scopes or refresh_token.scopes, refresh_token.resource
        )

    async def load_access_token(self, token: str) -> AccessToken | None:
        return self.access.get(token)

    async def revoke_token(self, token: AccessToken | RefreshToken) -> None:
        self.access.pop(token.token, None)
        self.refresh.pop(token.token, None)

    async def exchange_identity_assertion(
        self, client: OAuthClientInformationFull, params: IdentityAssertionParams
    ) -> OAuthToken:
        raise TokenError("unsupported_grant_type")  # not turned on in AuthSettings


class McpServer:
    """The SDK's server with one tool, on a port bound first, served by uvicorn in a thread."""

    def __init__(self) -> None:
        from mcp.server.mcpserver import MCPServer

        self._asgi = AsgiThread()
        base = self._asgi.base
        self.url = f"{base}/mcp"
        self.authorization = InMemoryAuthorizationServer()
        server = MCPServer(
            "weather",
            auth_server_provider=self.authorization,
            auth=AuthSettings(
                issuer_url=AnyHttpUrl(base),
                resource_server_url=AnyHttpUrl(self.url),
                # Refuse tokens not bound to this server (RFC 8707 resource).
                validate_token_resource=True,
                required_scopes=["weather"],
                client_registration_options=ClientRegistrationOptions(
                    enabled=True, valid_scopes=["weather"]
                ),
            ),
        )

        @server.tool()
        def forecast(city: str) -> str:
            """Tomorrow's weather in a city."""
            return f"Sunny in {city}"

        self._asgi.start(server.streamable_http_app(), "the MCP server")

    def close(self) -> None:
        self._asgi.close()


@pytest.fixture
def mcp_server() -> Iterator[McpServer]:
    assert not SDK_MISSING, "the MCP SDK (`mcp`, in the e2e extra; scripts/test installs it)"
    server = McpServer()
    try:
        yield server
    finally:
        server.close()


def _status_without_token(url: str) -> int:
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(urllib.request.Request(url, data=b"{}"), timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _tools(url: str, header: dict[str, str]) -> list[str]:
    """The server's tools, listed from another thread (Playwright holds this one's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _list_tools(url, header)).result(60)


async def _list_tools(url: str, header: dict[str, str]) -> list[str]:
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(headers=header) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.list_tools()
        return [tool.name for tool in result.tools]


def test_login_to_an_mcp_server_then_list_its_tools(
    mcp_server: McpServer, page: tuple[Any, Any], url_catcher: Catcher, isolated_env: Path
) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    process = start_cli("login", "mcp", "--resource", mcp_server.url, env=env)
    try:
        browser_page.goto(next_url())  # consent is automatic: straight to our listener
        browser_page.wait_for_selector("text=You are logged in")
        camera.shot("logged-in")
    finally:
        stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.startswith("Logged in: profile 'mcp'")

    # Registered through the SDK's /register, and the token is bound to the server.
    table = tomllib.loads((isolated_env / "config.toml").read_text())["profiles"]["mcp"]
    [client] = mcp_server.authorization.clients.values()
    assert table["client_id"] == client.client_id
    assert client.token_endpoint_auth_method == "none"
    assert [str(uri) for uri in client.redirect_uris or []] == [table["redirect_uri"]]
    record = read_record("mcp")
    [issued] = mcp_server.authorization.access.values()
    assert issued.token == record["access_token"] and issued.resource == mcp_server.url
    assert record["scope"] == "weather"  # the server's scopes_supported

    # The SDK's client lists the tools with the token; without it the server says 401.
    name, _, value = run_cli("token", "mcp", "--header").stdout.strip().partition(": ")
    header = {name: value}
    assert _tools(mcp_server.url, header) == ["forecast"]
    assert _status_without_token(mcp_server.url) == 401

    # A forced refresh keeps the resource; the new token works too.
    refreshed = run_cli("refresh", "mcp")
    assert refreshed.returncode == 0, refreshed.stderr
    fresh = read_record("mcp")["access_token"]
    assert mcp_server.authorization.access[fresh].resource == mcp_server.url
    assert _tools(mcp_server.url, {"Authorization": f"Bearer {fresh}"}) == ["forecast"]


def _tools_with(url: str, auth: Any) -> list[str]:
    """:func:`_list_tools_with` from another thread (Playwright holds this one's loop)."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, _list_tools_with(url, auth)).result(120)


async def _list_tools_with(url: str, auth: Any) -> list[str]:
    """The README's example: the SDK's usual client call, with McpAuth on its httpx2 client."""
    import httpx2
    from mcp import Client
    from mcp.client.streamable_http import streamable_http_client

    async with (
        httpx2.AsyncClient(auth=auth) as http,
        Client(streamable_http_client(url, http_client=http)) as client,
    ):
        result = await client.list_tools()
        return [tool.name for tool in result.tools]


def test_the_sdk_client_logs_in_on_its_first_401(
    mcp_server: McpServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from resource_apps import FOLLOWING_BROWSER

    import loopback_login

    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    monkeypatch.setenv("BROWSER", FOLLOWING_BROWSER["BROWSER"])  # consent is automatic
    auth = loopback_login.McpAuth("weather", mcp_server.url)
    assert _tools_with(mcp_server.url, auth) == ["forecast"]
    # Logged in through the server's own authorization server, kept in our store.
    [client] = mcp_server.authorization.clients.values()
    record = read_record("weather")
    assert record["client_id"] == client.client_id and record["resource"] == mcp_server.url
    [issued] = mcp_server.authorization.access.values()
    assert issued.token == record["access_token"] and issued.resource == mcp_server.url

    # Another client later: the stored token, no second login.
    again = loopback_login.McpAuth("weather", mcp_server.url)
    assert _tools_with(mcp_server.url, again) == ["forecast"]
    assert len(mcp_server.authorization.access) == 1

    # Expired: refreshed (this project's single-flight refresh), still no login.
    expire("weather")
    later = loopback_login.McpAuth("weather", mcp_server.url)
    assert _tools_with(mcp_server.url, later) == ["forecast"]
    assert len(mcp_server.authorization.clients) == 1
    assert read_record("weather")["access_token"] != record["access_token"]

    # The server forgets every token: the 401 makes a new login, with the same client.
    mcp_server.authorization.access.clear()
    mcp_server.authorization.refresh.clear()
    assert _tools_with(mcp_server.url, later) == ["forecast"]
    assert len(mcp_server.authorization.clients) == 1
    assert len(mcp_server.authorization.access) == 1

"""A second MCP server framework: the standalone `fastmcp` package with its own in-memory
authorization server (dynamic registration, consent given at once). Its token endpoint
answers an unknown code with 401 and `invalid_grant`, which the client check must not
read as a refused client (issue 19, point 1); the SDK's client logs in through McpAuth."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from resource_apps import FOLLOWING_BROWSER
from support import AsgiThread, free_port, read_record, run_cli

try:
    from fastmcp import FastMCP
    from fastmcp.server.auth.providers.in_memory import InMemoryOAuthProvider
    from mcp.server.auth.settings import ClientRegistrationOptions
    from mcp.shared.auth import OAuthClientInformationFull
    from pydantic import AnyUrl
except ImportError:  # without the e2e extra: skipped (LOOPBACK_LOGIN_E2E=skip), else failed below
    FASTMCP_MISSING = True
else:
    FASTMCP_MISSING = False


class FastMcpServer:
    """fastmcp's server with one tool, on a port bound first, served by uvicorn in a thread."""

    def __init__(self) -> None:
        self._asgi = AsgiThread()
        base = self._asgi.base
        self.url = f"{base}/mcp"
        self.authorization = InMemoryOAuthProvider(
            base_url=base,
            client_registration_options=ClientRegistrationOptions(
                enabled=True, valid_scopes=["notes"]
            ),
            required_scopes=["notes"],
        )
        server = FastMCP("notes", auth=self.authorization)

        @server.tool
        def note(text: str) -> str:
            """Keep a note."""
            return f"kept: {text}"

        self._asgi.start(server.http_app(path="/mcp"), "the fastmcp server")

    def pre_register(self, client_id: str, secret: str, redirect_uri: str) -> None:
        """A confidential client registered by hand, as an administrator would."""
        self.authorization.clients[client_id] = OAuthClientInformationFull(
            client_id=client_id,
            client_secret=secret,
            redirect_uris=[AnyUrl(redirect_uri)],
            token_endpoint_auth_method="client_secret_basic",
            grant_types=["authorization_code", "refresh_token"],
            scope="notes",
        )

    def close(self) -> None:
        self._asgi.close()


@pytest.fixture
def fastmcp_server() -> Iterator[FastMcpServer]:
    assert not FASTMCP_MISSING, "fastmcp (in the e2e extra; scripts/test installs it)"
    server = FastMcpServer()
    try:
        yield server
    finally:
        server.close()


def _tools_with(url: str, auth: Any) -> list[str]:
    """The SDK's usual client call with McpAuth, from another thread (Playwright's loop)."""

    async def tools() -> list[str]:
        import httpx2
        from mcp import Client
        from mcp.client.streamable_http import streamable_http_client

        async with (
            httpx2.AsyncClient(auth=auth) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            return [tool.name for tool in (await client.list_tools()).tools]

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, tools()).result(120)


def test_the_sdk_client_logs_in_to_a_fastmcp_server(
    fastmcp_server: FastMcpServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import loopback_login

    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    monkeypatch.setenv("BROWSER", FOLLOWING_BROWSER["BROWSER"])  # consent is automatic
    auth = loopback_login.McpAuth("notes", fastmcp_server.url)
    assert _tools_with(fastmcp_server.url, auth) == ["note"]
    [client] = fastmcp_server.authorization.clients.values()
    record = read_record("notes")
    assert record["client_id"] == client.client_id and record["scope"] == "notes"
    assert record["access_token"] in fastmcp_server.authorization.access_tokens


def test_a_pre_registered_client_is_not_refused_for_an_unknown_code(
    fastmcp_server: FastMcpServer, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    fastmcp_server.pre_register("by-hand", "right-secret", redirect)
    args = ["--resource", fastmcp_server.url, "--client-id", "by-hand", "--redirect-uri", redirect]
    # The client check's made-up code meets 401 invalid_grant: the login goes on. (The
    # secret by flag: the environment's is never sent to a server an API's metadata chose.)
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    done = run_cli(
        "login", "notes", *args, "--client-secret", "right-secret", env=FOLLOWING_BROWSER
    )
    assert done.returncode == 0, done.stderr
    assert read_record("notes")["access_token"] in fastmcp_server.authorization.access_tokens
    # A wrong secret is still refused before any sign-in (401 invalid_client).
    wrong = run_cli(
        "login",
        "other",
        *args,
        *("--client-secret", "wrong-secret", "--timeout", "600"),
        env={"BROWSER": "true"},
    )
    assert wrong.returncode == 4, wrong.stderr
    assert "refused the client id or secret of profile 'other' (invalid_client)" in wrong.stderr


def test_without_a_person_mcp_auth_says_how_to_log_in(
    fastmcp_server: FastMcpServer, isolated_env: Path
) -> None:
    import loopback_login

    auth = loopback_login.McpAuth("notes", fastmcp_server.url)  # no $BROWSER, no display
    with pytest.raises(Exception) as caught:
        _tools_with(fastmcp_server.url, auth)
    # The SDK wraps what its transport raised; ours is in there, naming the command.
    text = repr(caught.value) + "".join(repr(e) for e in getattr(caught.value, "exceptions", ()))
    assert f"run `loopback-login login notes --resource {fastmcp_server.url}`" in text
    assert fastmcp_server.authorization.clients == {}  # nothing registered

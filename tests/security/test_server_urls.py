"""What a server hands us is checked before it is used: URLs, registration answers.

A hostile or careless API (``--resource``) or authorization server names the URLs the
login goes to next and the credentials kept for later logins. Every such URL must be
https (or http on this machine) without a user name or password; the registration
access token goes only to the registration endpoint's origin; a client id or
registration credential that would break later logins is refused, nothing kept.
"""

from __future__ import annotations

import json
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from resource_apps import FOLLOWING_BROWSER, ProtectedApi, Served
from support import run_cli, token_path

from loopback_login._errors import ProviderError
from loopback_login._profiles.discovery import parse_metadata


class HostileApi(ProtectedApi):
    """The toy API and authorization server, with parts of their answers replaced."""

    def __init__(self) -> None:
        super().__init__()
        self.as_metadata: dict[str, Any] = {}
        self.registration_answer: dict[str, Any] = {}
        self.seen_authorization: list[tuple[str, str]] = []

    def app(self) -> web.Application:
        app = super().app()
        app.router.add_get("/elsewhere/{tail:.*}", self._elsewhere)
        return app

    async def _as_metadata(self, request: web.Request) -> web.Response:
        response = await super()._as_metadata(request)
        assert response.text is not None
        return web.json_response({**json.loads(response.text), **self.as_metadata})

    async def _register(self, request: web.Request) -> web.Response:
        response = await super()._register(request)
        assert response.text is not None
        return web.json_response(
            {**json.loads(response.text), **self.registration_answer}, status=201
        )

    async def _read_registration(self, request: web.Request) -> web.Response:
        self.seen_authorization.append((request.path, request.headers.get("Authorization", "")))
        return await super()._read_registration(request)

    async def _elsewhere(self, request: web.Request) -> web.Response:
        self.seen_authorization.append((request.path, request.headers.get("Authorization", "")))
        return web.json_response({})


@pytest.fixture
def hostile() -> Iterator[HostileApi]:
    api = HostileApi()
    served = Served(api)
    try:
        yield api
    finally:
        served.close()


@pytest.fixture
def elsewhere() -> Iterator[HostileApi]:
    """A second server on another loopback port: another origin."""
    api = HostileApi()
    served = Served(api)
    try:
        yield api
    finally:
        served.close()


def _login(api: ProtectedApi, *extra: str) -> Any:
    return run_cli("login", "work", "--resource", api.resource, *extra, env=FOLLOWING_BROWSER)


def _one_line(result: Any, code: int, words: str) -> None:
    assert result.returncode == code, result.stderr
    lines = result.stderr.splitlines()
    assert lines and words in lines[-1], result.stderr
    assert lines[-1].startswith("loopback-login: ") and "Traceback" not in result.stderr


# --- every URL a server hands us ------------------------------------------------------


@pytest.mark.parametrize(
    "server",
    [
        "http://as.example.invalid",  # plain http to another host
        "http://127.0.0.1.example.invalid",  # looks local, is not
        "https://user:pw@as.example.invalid",  # userinfo
        "ftp://as.example.invalid",
    ],
)
def test_an_authorization_server_from_resource_metadata_must_be_https(
    isolated_env: Path, server: str
) -> None:
    api = ProtectedApi(authorization_servers=[server])
    served = Served(api)
    try:
        result = _login(api)
    finally:
        served.close()
    _one_line(result, 4, "authorization server")
    assert "https" in result.stderr.splitlines()[-1] or "user name" in result.stderr
    assert "pw" not in result.stderr
    assert not (isolated_env / "metadata").exists()  # nothing fetched, nothing cached
    assert not (isolated_env / "config.toml").exists()


@pytest.mark.parametrize(
    ("key", "url"),
    [
        ("registration_endpoint", "http://as.example.invalid/register"),
        ("registration_endpoint", "https://u:p@as.example.invalid/register"),
        ("token_endpoint", "http://as.example.invalid/token"),
        ("authorization_endpoint", "https://user@as.example.invalid/authorize"),
    ],
)
def test_endpoints_in_authorization_server_metadata_must_be_https(
    hostile: HostileApi, isolated_env: Path, key: str, url: str
) -> None:
    hostile.as_metadata = {key: url}
    result = _login(hostile)
    _one_line(result, 4, key)
    assert hostile.registered == [] and hostile.authorize_queries == []
    assert not (isolated_env / "metadata" / "work.json").exists()  # never cached


def test_metadata_with_plain_http_endpoints_is_refused_when_parsed() -> None:
    for key in ("token_endpoint", "revocation_endpoint", "registration_endpoint"):
        document = {"issuer": "https://as.example", "token_endpoint": "https://as.example/t"}
        document[key] = "http://as.example/x"
        with pytest.raises(ProviderError, match=key):
            parse_metadata("https://as.example", json.dumps(document).encode())


def test_a_resource_metadata_url_with_userinfo_is_refused() -> None:
    class Named(HostileApi):
        async def _api(self, request: web.Request) -> web.Response:
            where = self.base_url.replace("http://", "http://user:pw@")
            header = f'Bearer resource_metadata="{where}/.well-known/oauth-protected-resource/api"'
            return web.json_response({}, status=401, headers={"WWW-Authenticate": header})

    api = Named()
    served = Served(api)
    try:
        result = _login(api)
    finally:
        served.close()
    _one_line(result, 4, "resource metadata URL")
    assert "pw" not in result.stderr


# --- the registration access token ----------------------------------------------------


@pytest.mark.parametrize("where", ["another port", "another host"])
def test_registration_access_token_goes_only_to_the_registration_endpoints_origin(
    hostile: HostileApi,
    elsewhere: HostileApi,
    monkeypatch: pytest.MonkeyPatch,
    isolated_env: Path,
    where: str,
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    other = (
        f"{elsewhere.base_url}/elsewhere/client-1"
        if where == "another port"
        else f"{elsewhere.base_url.replace('127.0.0.1', 'localhost')}/elsewhere/client-1"
    )
    hostile.registration_answer = {"registration_client_uri": other}
    first = _login(hostile)
    assert first.returncode == 0, first.stderr
    table = tomllib.loads((isolated_env / "config.toml").read_text())["profiles"]["work"]
    assert table["registration_access_token"] == "rat-secret-1"
    again = _login(hostile)
    assert again.returncode == 0, again.stderr
    assert elsewhere.seen_authorization == []  # never sent there
    assert len(hostile.registered) == 1  # and the client is still used


def test_registration_access_token_still_goes_to_its_own_origin(
    hostile: HostileApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    first = _login(hostile)
    assert first.returncode == 0, first.stderr
    assert _login(hostile).returncode == 0
    assert hostile.seen_authorization == [("/register/client-1", "Bearer rat-secret-1")]


# --- registration answers that would break every later login --------------------------


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("client_id", "client\r\nX-Injected: 1"),
        ("client_id", "client\x1b[31m"),
        ("client_id", "c" * 900_000),
        ("client_id", "clïent"),
        ("registration_access_token", "rat\r\nX-Injected: 1"),
        ("registration_access_token", "rat with spaces"),
        ("registration_access_token", "r" * 5000),
        ("registration_access_token", 12),
        ("client_secret", "sec\nret"),
    ],
)
def test_a_registration_answer_that_would_break_later_logins_is_refused(
    hostile: HostileApi, isolated_env: Path, key: str, value: object
) -> None:
    hostile.registration_answer = {key: value}
    if key == "client_secret":
        hostile.registration_answer["token_endpoint_auth_method"] = "client_secret_basic"
    result = _login(hostile)
    _one_line(result, 4, key)
    assert len(result.stderr.splitlines()[-1]) < 400
    assert hostile.authorize_queries == []
    assert not (isolated_env / "config.toml").exists()  # nothing saved
    assert not token_path("work").exists()

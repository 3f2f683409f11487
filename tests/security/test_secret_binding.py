"""Client secrets go only where they were given.

``$LOOPBACK_LOGIN_CLIENT_SECRET`` (exported once for a Honeywell profile, say) is sent
only to a provider the person chose that needs a secret; never to an authorization
server an API's metadata chose, never to a provider given by URLs that did not ask
for client authentication. A kept secret is bound to its config directory, its
profile, its token endpoint's origin and its client id.
"""

from __future__ import annotations

import base64
import tomllib
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest
from aiohttp import web
from resource_apps import FOLLOWING_BROWSER, ProtectedApi, Served
from support import CLIENT_SECRET, Browser, DemoServer, free_port, login_args, run_cli
from test_secrets import SecretService, secret_service  # noqa: F401 -- the fixture

from loopback_login._profiles.secrets import binding

ENV_SECRET = "the-honeywell-secret-of-this-person"


class Recording(ProtectedApi):
    """The toy authorization server, recording every token request's credentials."""

    def __init__(self, methods: list[str] | None = None) -> None:
        super().__init__()
        self.methods = methods or ["none"]
        self.credentials: list[str] = []

    async def _as_metadata(self, request: web.Request) -> web.Response:
        return web.json_response(
            {
                "issuer": self.base_url,
                "authorization_endpoint": f"{self.base_url}/authorize",
                "token_endpoint": f"{self.base_url}/token",
                "registration_endpoint": f"{self.base_url}/register",
                "token_endpoint_auth_methods_supported": self.methods,
            }
        )

    async def _token(self, request: web.Request) -> web.Response:
        form = await request.post()
        self.credentials.append(
            request.headers.get("Authorization", "") + "|" + str(form.get("client_secret", ""))
        )
        return await super()._token(request)

    def received(self, secret: str) -> bool:
        """Did any token request carry ``secret`` (Basic, RFC 6749 §2.3.1, or in the form)?"""
        for seen in self.credentials:
            header, _, posted = seen.partition("|")
            if posted == secret:
                return True
            if header.startswith("Basic "):
                pair = base64.b64decode(header.removeprefix("Basic ")).decode()
                if secret in (pair.partition(":")[2], unquote_plus(pair.partition(":")[2])):
                    return True
        return False


@pytest.fixture
def server() -> Iterator[Recording]:
    api = Recording()
    served = Served(api)
    try:
        yield api
    finally:
        served.close()


def _run(*args: str, **env: str) -> Any:
    return run_cli(*args, env={**FOLLOWING_BROWSER, **env})


def _by_urls(server: Recording, *extra: str) -> list[str]:
    return [
        "login",
        "work",
        "--authorize-url",
        f"{server.base_url}/authorize",
        "--token-url",
        f"{server.base_url}/token",
        "--client-id",
        "mine",
        "--redirect-uri",
        "http://127.0.0.1:0/callback",
        *extra,
    ]


def _warnings(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "LOOPBACK_LOGIN_CLIENT_SECRET" in line]


# --- the environment's secret ---------------------------------------------------------


@pytest.mark.parametrize("how", ["by URLs", "by --resource", "by --resource and a client id"])
def test_the_environments_secret_never_reaches_a_provider_that_did_not_ask(
    server: Recording, how: str
) -> None:
    if how == "by URLs":
        args = _by_urls(server)
    else:
        args = ["login", "work", "--resource", server.resource]
        if how.endswith("client id"):
            args += ["--client-id", "mine", "--redirect-uri", "http://127.0.0.1:0/callback"]
    result = _run(*args, LOOPBACK_LOGIN_CLIENT_SECRET=ENV_SECRET)
    assert result.returncode == 0, result.stderr
    assert server.credentials and not server.received(ENV_SECRET), server.credentials
    assert all(seen == "|" for seen in server.credentials)  # a public client
    [warning] = _warnings(result.stderr)
    assert "is set but not used for profile 'work'" in warning
    assert ENV_SECRET not in result.stderr + result.stdout


@pytest.mark.parametrize(
    ("extra", "methods"),
    [
        (["--client-auth", "basic"], ["none"]),  # the person asked for it
        (["--issuer", "{base}"], ["client_secret_basic"]),  # an issuer without public clients
    ],
    ids=["client-auth", "issuer"],
)
def test_the_environments_secret_goes_where_the_person_chose_a_provider_that_needs_it(
    extra: list[str], methods: list[str]
) -> None:
    server = Recording(methods)
    served = Served(server)
    try:
        extra = [arg.format(base=server.base_url) for arg in extra]
        if extra[0] == "--issuer":
            args = ["login", "work", *extra, "--client-id", "mine"]
            args += ["--redirect-uri", "http://127.0.0.1:0/callback"]
        else:
            args = _by_urls(server, *extra)
        result = _run(*args, LOOPBACK_LOGIN_CLIENT_SECRET=ENV_SECRET)
    finally:
        served.close()
    assert result.returncode == 0, result.stderr
    assert server.received(ENV_SECRET)
    assert _warnings(result.stderr) == []


def test_an_issuer_with_public_clients_does_not_get_the_environments_secret(
    server: Recording,
) -> None:
    args = ["login", "work", "--issuer", server.base_url, "--client-id", "mine"]
    result = _run(
        *args,
        "--redirect-uri",
        "http://127.0.0.1:0/callback",
        LOOPBACK_LOGIN_CLIENT_SECRET=ENV_SECRET,
    )
    assert result.returncode == 0, result.stderr
    assert not server.received(ENV_SECRET)
    assert len(_warnings(result.stderr)) == 1


def test_client_credentials_take_the_environments_secret(server: Recording) -> None:
    result = run_cli(
        "client-credentials",
        "svc",
        "--token-url",
        f"{server.base_url}/token",
        "--client-id",
        "mine",
        env={"LOOPBACK_LOGIN_CLIENT_SECRET": ENV_SECRET},
    )
    assert result.returncode == 0, result.stderr
    assert server.received(ENV_SECRET)


# --- kept secrets, bound to where they were given -------------------------------------


def _kept(isolated_env: Path) -> dict[str, Any]:
    table: dict[str, Any] = tomllib.loads((isolated_env / "config.toml").read_text())["profiles"][
        "home"
    ]
    return table


@pytest.mark.parametrize("moved", ["--token-url", "--client-id"])
def test_a_kept_secret_is_not_sent_to_a_moved_token_endpoint_or_another_client(
    demo: DemoServer,
    browser: Browser,
    server: Recording,
    isolated_env: Path,
    monkeypatch: pytest.MonkeyPatch,
    moved: str,
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    first = run_cli(*login_args(demo, redirect), env=browser.env)
    assert first.returncode == 0, first.stderr
    table = _kept(isolated_env)
    assert table["client_secret"] == CLIENT_SECRET  # no secure keyring in the tests
    assert table["kept_secret_for"] == binding(f"{demo.base_url}/oauth2/token", "123abc")
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    value = f"{server.base_url}/token" if moved == "--token-url" else "mine"
    again = run_cli(*login_args(demo, redirect, moved, value), env=browser.env)
    assert again.returncode == 2, again.stderr  # nobody to ask: stdin is not a terminal
    assert "needs its client secret" in again.stderr.splitlines()[-1]
    assert server.credentials == []  # nothing was sent there
    # Where it was given, it is still used.
    assert run_cli(*login_args(demo, redirect), env=browser.env).returncode == 0


def test_a_kept_secret_stays_with_its_config_directory(
    demo: DemoServer,
    browser: Browser,
    server: Recording,
    secret_service: SecretService,  # noqa: F811 -- the fixture
    isolated_env: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    first = run_cli(*login_args(demo, redirect), env={**browser.env, **secret_service.env})
    assert first.returncode == 0, first.stderr
    assert "in the OS keyring" in first.stderr
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    # Another config directory (a project's, a sandbox's) with a profile of the same name
    # whose table says its secret is in the keyring, for its own token endpoint.
    other = tmp_path / "project-config"
    other.mkdir(mode=0o700)
    bound = binding(f"{server.base_url}/token", "mine")
    (other / "config.toml").write_text(
        "[profiles.home]\n"
        f'token_url = "{server.base_url}/token"\n'
        f'authorize_url = "{server.base_url}/authorize"\n'
        'client_id = "mine"\nclient_auth = "basic"\nkept_secret = "keyring"\n'
        f"[profiles.home.kept_secret_for]\n"
        f'token_origin = "{bound["token_origin"]}"\nclient_id = "mine"\n'
    )
    (other / "config.toml").chmod(0o600)
    result = run_cli(
        "login",
        "home",
        "--redirect-uri",
        "http://127.0.0.1:0/callback",
        env={**FOLLOWING_BROWSER, **secret_service.env, "LOOPBACK_LOGIN_CONFIG_DIR": str(other)},
    )
    assert result.returncode in (2, 4), result.stderr
    assert not server.received(CLIENT_SECRET), server.credentials

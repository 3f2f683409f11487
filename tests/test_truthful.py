"""Issue 11: every step tells the truth. Discovery that reads both metadata documents,
logout that says what it could not revoke, client-credentials profiles in status and
logout, the provider's error behind a missing iss, timeouts that say whether anything
came back, dropped scopes, and `basic-raw` client authentication (the seed's recipe)."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from support import (
    CLIENT_ID,
    HONEYWELL_BASIC_VECTORS,
    Browser,
    DemoServer,
    free_port,
    login_args,
    login_home,
    read_record,
    run_cli,
    token_path,
    token_record,
)

from loopback_login._errors import ConfigError, IssuerMismatch, ProviderError
from loopback_login._profiles.discovery import discover
from loopback_login._profiles.profile import resolve_profile
from loopback_login._protocol import (
    ClientAuth,
    missing_scopes,
    parse_callback,
    raw_basic_credentials,
    token_request,
)


def _last_line(result: subprocess.CompletedProcess[str]) -> str:
    return result.stderr.strip().splitlines()[-1]


# --- basic-raw: the seed's recipe ------------------------------------------------


@pytest.mark.parametrize(
    ("client_id", "secret", "header"),
    HONEYWELL_BASIC_VECTORS,
)
def test_basic_raw_matches_the_seed_vectors(client_id: str, secret: str, header: str) -> None:
    assert raw_basic_credentials(client_id, secret) == header
    request = token_request(
        "https://idp.example/t",
        [("grant_type", "client_credentials")],
        client_id=client_id,
        client_secret=secret,
        client_auth=ClientAuth.BASIC_RAW,
    )
    assert request.headers["Authorization"] == header


def test_basic_raw_sends_the_secret_as_it_is() -> None:
    header = raw_basic_credentials("app", "p+ss/w:rd%20x")
    assert base64.b64decode(header.removeprefix("Basic ")) == b"app:p+ss/w:rd%20x"
    assert ClientAuth.BASIC_RAW.value == "basic-raw"
    with pytest.raises(ConfigError, match="containing ':'"):
        raw_basic_credentials("my:app", "s")


def test_presets_and_urls_choose_their_client_authentication() -> None:
    honeywell = resolve_profile(
        "h", None, {"provider": "honeywell", "client_id": "c", "client_secret": "s"}
    )
    assert honeywell.client_auth is ClientAuth.BASIC_RAW
    demo = resolve_profile(
        "d",
        None,
        {"provider": "demo", "base_url": "http://127.0.0.1:1", "client_id": "c"},
        env_secret="s",
    )
    assert demo.client_auth is ClientAuth.BASIC_RAW
    by_url = resolve_profile(
        "u",
        None,
        {
            "authorize_url": "https://idp.example/a",
            "token_url": "https://idp.example/t",
            "client_id": "c",
            "client_secret": "s",
        },
    )
    assert by_url.client_auth is ClientAuth.BASIC  # RFC 6749 §2.3.1


def test_basic_raw_with_a_colon_in_the_client_id_is_a_config_error() -> None:
    result = run_cli(
        "client-credentials",
        "svc",
        "--provider",
        "honeywell",
        "--client-id",
        "my:app",
        "--client-auth",
        "basic-raw",
    )
    assert result.returncode == 2
    assert result.stderr.splitlines() == [
        "loopback-login: client authentication 'basic-raw' cannot send the client id 'my:app': "
        "it contains ':' (use --client-auth basic, which form-encodes it)"
    ]


def test_a_secret_full_of_specials_works_against_a_literal_provider(
    demo: DemoServer, browser: Browser, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The demo provider reads Basic literally, as Apigee does: basic-raw works, basic not."""
    secret = "p+ss/w:rd%20x"
    monkeypatch.setenv("LOOPBACK_LOGIN_CLIENT_SECRET", secret)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret=secret)
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 0, result.stderr
    assert read_record()["client_auth"] == "basic-raw"
    credentials = run_cli(
        "client-credentials", "svc", "--provider", "honeywell", "--base-url", demo.base_url,
        "--client-id", CLIENT_ID,
    )  # fmt: skip
    assert credentials.returncode == 0, credentials.stderr
    # Form-encoded (RFC 6749 §2.3.1), the secret no longer matches at a literal provider.
    encoded = run_cli(
        "client-credentials", "svc2", "--provider", "honeywell", "--base-url", demo.base_url,
        "--client-id", CLIENT_ID, "--client-auth", "basic",
    )  # fmt: skip
    assert encoded.returncode == 4
    assert "invalid_client" in _last_line(encoded)


# --- discovery: both documents ---------------------------------------------------

Documents = dict[str, Callable[[str], dict[str, Any] | None]]


@pytest.fixture
async def metadata_host() -> AsyncIterator[tuple[str, Documents]]:
    """An origin whose metadata documents the test sets: path -> issuer -> JSON."""
    documents: Documents = {}

    async def handler(request: web.Request) -> web.Response:
        make = documents.get(request.path)
        origin = f"http://127.0.0.1:{request.url.port}"
        body = make(origin) if make is not None else None
        return web.json_response(body) if body is not None else web.Response(status=404)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handler)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}", documents
    finally:
        await runner.cleanup()


def _document(issuer: str, **extra: object) -> dict[str, Any]:
    return {
        "issuer": issuer,
        "authorization_endpoint": f"{issuer}/authorize",
        "token_endpoint": f"{issuer}/token",
        **extra,
    }


async def test_discovery_merges_the_oidc_and_rfc8414_documents(
    metadata_host: tuple[str, Documents],
) -> None:
    origin, documents = metadata_host
    issuer = f"{origin}/tenant"
    # The OIDC document lists no revocation endpoint; the RFC 8414 one (§3.1: the
    # well-known suffix goes before the issuer's path) does.
    documents["/tenant/.well-known/openid-configuration"] = lambda o: _document(
        f"{o}/tenant", code_challenge_methods_supported=["S256"]
    )
    documents["/.well-known/oauth-authorization-server/tenant"] = lambda o: _document(
        f"{o}/tenant", revocation_endpoint=f"{o}/tenant/revoke"
    )
    metadata = await discover(issuer)
    assert metadata.revocation_endpoint == f"{issuer}/revoke"
    assert metadata.code_challenge_methods == ("S256",)
    assert metadata.token_endpoint == f"{issuer}/token"


async def test_a_document_naming_another_issuer_is_not_used(
    metadata_host: tuple[str, Documents],
) -> None:
    origin, documents = metadata_host
    issuer = f"{origin}/tenant"
    documents["/tenant/.well-known/openid-configuration"] = lambda o: _document(f"{o}/tenant")
    # RFC 8414 §3.3: someone else's document, with its own revocation endpoint.
    documents["/.well-known/oauth-authorization-server/tenant"] = lambda o: _document(
        "https://attacker.example", revocation_endpoint="https://attacker.example/revoke"
    )
    metadata = await discover(issuer)
    assert metadata.revocation_endpoint is None
    assert metadata.token_endpoint == f"{issuer}/token"
    # Only the other issuer's document: refused, naming it.
    del documents["/tenant/.well-known/openid-configuration"]
    with pytest.raises(
        ProviderError, match=r"names another issuer \('https://attacker\.example'\)"
    ):
        await discover(issuer)


async def test_a_trailing_slash_is_pointed_out(metadata_host: tuple[str, Documents]) -> None:
    origin, documents = metadata_host
    documents["/tenant/.well-known/openid-configuration"] = lambda o: _document(f"{o}/tenant")
    with pytest.raises(ProviderError) as caught:
        await discover(f"{origin}/tenant/")
    assert str(caught.value).endswith(
        f"give --issuer exactly as the provider spells it, '{origin}/tenant' (mind the slash)"
    )


def test_a_host_that_does_not_resolve_is_named() -> None:
    result = run_cli("login", "w", "--issuer", "https://idp.invalid", "--client-id", "c")
    assert result.returncode == 4
    assert _last_line(result) == (
        "loopback-login: could not read the metadata of https://idp.invalid: the host "
        "idp.invalid could not be resolved (DNS); check --issuer and your network"
    )


def test_a_token_endpoint_that_does_not_resolve_is_named() -> None:
    result = run_cli(
        "client-credentials", "x", "--token-url", "https://idp.invalid/t", "--client-id", "c"
    )
    assert result.returncode == 4
    assert _last_line(result) == (
        "loopback-login: could not connect to the token endpoint at idp.invalid: the host "
        "could not be resolved (DNS)"
    )


# --- logout ------------------------------------------------------------------------


def test_logout_without_a_revocation_endpoint_says_the_tokens_stay_valid(
    demo: DemoServer, browser: Browser
) -> None:
    record = login_home(demo, browser)  # honeywell: no revocation endpoint
    result = run_cli("logout", "home")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == (
        f"Logged out of profile 'home': tokens deleted here ({token_path()}), NOT revoked "
        "(no revocation endpoint is known for this provider)"
    )
    assert lines[1].startswith("  They stay valid at the provider: the access token until ")
    assert lines[1].endswith(", the refresh token until the provider ends the grant.")
    assert demo.provider.is_valid_refresh_token(record["refresh_token"])
    assert not token_path().exists()


def test_logout_when_the_provider_refuses_says_until_when(
    demo: DemoServer, browser: Browser
) -> None:
    record = login_home(demo, browser, provider="demo")
    demo.provider.faults.token_errors = [400]
    result = run_cli("logout", "home")
    assert result.returncode == 4
    line = _last_line(result)
    assert line.startswith(
        "loopback-login: deleted the tokens of profile 'home' here, but revoking them at the "
        "provider failed: the revocation endpoint answered 400"
    )
    assert f"{token_path()} stays valid at the provider: the access token until " in line
    assert demo.provider.is_valid_refresh_token(record["refresh_token"])
    assert not token_path().exists()


def _credentials_path(config: Path, name: str) -> Path:
    return config / "tokens" / "client-credentials" / f"{name}.json"


def test_client_credentials_profiles_in_status_and_logout(
    demo: DemoServer, isolated_env: Path
) -> None:
    demo.register("http://127.0.0.1:1/unused")
    flags = ("--provider", "demo", "--base-url", demo.base_url, "--client-id", CLIENT_ID)
    first = run_cli("client-credentials", "svc", *flags)
    assert first.returncode == 0, first.stderr
    access_token = first.stdout.strip()
    path = _credentials_path(isolated_env, "svc")

    status = run_cli("status")
    assert status.returncode == 0, status.stderr
    header, row = status.stdout.splitlines()
    assert "KIND" in header.split()
    assert row.split()[0] == "svc" and "client-credentials" in row.split()
    assert row.endswith(str(path))
    one = run_cli("status", "svc")
    assert one.returncode == 0 and one.stdout.splitlines()[1] == row

    api = f"{demo.base_url}/v2/locations?apikey={CLIENT_ID}"
    assert _get(api, access_token) == 200
    logout = run_cli("logout", "svc")
    assert logout.returncode == 0, logout.stderr
    assert logout.stdout.splitlines() == [
        f"Logged out of profile 'svc': client-credentials token revoked at the provider and "
        f"deleted ({path})"
    ]
    assert not path.exists()
    assert _get(api, access_token) == 401  # revoked at the provider
    assert demo.provider.requests["revoke"] == 1


def _get(url: str, token: str) -> int:
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


# --- the provider's error behind a missing iss ------------------------------------


def test_a_missing_iss_is_refused_but_the_providers_error_is_named() -> None:
    query = "state=s&error=access_denied&error_description=The+user+said+no"
    with pytest.raises(IssuerMismatch) as caught:
        parse_callback(
            query, expected_state="s", expected_issuer="https://idp.example", issuer_required=True
        )
    assert str(caught.value) == (
        "the provider answered access_denied: The user said no; but the callback has no iss "
        "although the provider always sends one, so it is refused (RFC 9207 §2.4)"
    )
    with pytest.raises(IssuerMismatch, match="answered invalid_scope;"):
        parse_callback(
            "state=s&error=invalid_scope",
            expected_state="s",
            expected_issuer="https://idp.example",
            issuer_required=True,
        )


# --- timeouts and scopes ------------------------------------------------------------


def test_a_timeout_with_nothing_back_names_the_usual_causes(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_ACTION": "nothing"}
    result = run_cli(*login_args(demo, redirect, "--timeout", "1"), env=env)
    assert result.returncode == 5
    line = _last_line(result)
    assert line.startswith(
        f"loopback-login: timed out after 1 s waiting for the browser to come back to "
        f"{redirect}; nothing reached it. Usually the provider showed its own error page"
    )
    assert f"the redirect URI is not registered exactly as {redirect}" in line


def test_a_timeout_after_a_stray_callback_says_what_came(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_ACTION": "nothing", "TEST_BROWSER_FIRST": "wrong-state"}
    result = run_cli(*login_args(demo, redirect, "--timeout", "2"), env=env)
    assert result.returncode == 5
    line = _last_line(result)
    assert "1 request(s) reached it, none this login's answer (last: the callback's state" in line
    assert "nothing reached it" not in line


def test_missing_scopes() -> None:
    assert missing_scopes("openid offline_access api", "api openid") == ["offline_access"]
    assert missing_scopes("openid", None) == []  # RFC 6749 §5.1: omitted means as asked
    assert missing_scopes(None, "x") == []


def test_dropped_scopes_are_named_with_the_usual_cause(demo: DemoServer, browser: Browser) -> None:
    demo.provider.faults.withheld_scopes = ("offline_access",)
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect, "--scope", "read offline_access"), env=browser.env)
    assert result.returncode == 0, result.stderr
    assert (
        "loopback-login: warning: the provider did not grant offline_access (granted: read); "
        "many providers grant offline_access only with --prompt consent; so there is no "
        "refresh token"
    ) in result.stderr.splitlines()
    assert "no refresh token" in result.stdout
    assert json.loads(token_path().read_text())["scope"] == "read"


async def test_logout_finds_a_revocation_endpoint_the_saved_record_lacks(
    metadata_host: tuple[str, Documents],
) -> None:
    """Tokens saved when only the OIDC document was read are still revoked at logout."""
    from loopback_login._store import Store
    from loopback_login._tokens.logout import logout

    origin, documents = metadata_host
    issuer = f"{origin}/tenant"
    documents["/.well-known/oauth-authorization-server/tenant"] = lambda o: _document(
        f"{o}/tenant", revocation_endpoint=f"{o}/revoke"
    )
    revoked: list[str] = []

    def revoke(o: str) -> dict[str, Any]:
        revoked.append(o)
        return {}

    documents["/revoke"] = revoke  # RFC 7009 §2.2: 200 (any method, in this stand-in)
    store = Store()
    record = token_record(
        access_token="a",
        refresh_token="r",
        expires_at=None,
        issuer=issuer,
        revocation_url=None,
        token_url=f"{issuer}/token",
        client_id="c",
        client_auth="none",
    )
    store.write_record("work", record)
    done = await logout(store, "work")
    assert [(entry.kind, entry.revoked) for entry in done] == [("login", True)]
    assert len(revoked) == 1
    assert not token_path("work").exists()

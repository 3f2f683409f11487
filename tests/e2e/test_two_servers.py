"""Every step against two real authorization servers, in headless Chromium.

panva's oidc-provider (npm, tests/e2e/provider.mjs) and jazzband's django-oauth-toolkit
(PyPI, tests/e2e/dot_provider.py), each configured strictly: PKCE required, rotating
refresh tokens, revocation. The toolkit's issuer has a path, and only its RFC 8414
document lists the revocation endpoint. Against both: login with 127.0.0.1 and
localhost redirects, token, refresh (the provider then refuses the old refresh token),
client credentials, logout (the provider then refuses the tokens) and a denied consent.
"""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus, urlencode, urlsplit

import pytest
from support import CLIENT_SECRET, expire, free_port, read_record, run_cli, start_cli, token_path

Catcher = tuple[dict[str, str], Callable[[], str]]
E2E = Path(__file__).parent
CLIENT_ID = "e2e"
SVC_CLIENT_ID = "e2e-svc"
USER = "alice"
PASSWORD = "correct horse battery staple"


@dataclass
class Server:
    """A running authorization server and how a person gets through its pages."""

    kind: str
    issuer: str
    metadata: dict[str, Any]
    #: The client that runs client credentials (the toolkit gives each client one grant).
    svc_client_id: str

    def sign_in(self, page: Any, camera: Any, url: str, *, allow: bool = True) -> None:
        page.goto(url)
        if self.kind == "oidc-provider":
            page.wait_for_selector("input[name=login]")
            camera.shot("login")
            if not allow:
                page.click("text=[ Cancel ]")
                return
            page.fill("input[name=login]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("text=Continue")
            camera.shot("consent")
            page.click("button[type=submit]")
        else:
            page.wait_for_selector("input[name=username]")
            camera.shot("login")
            page.fill("input[name=username]", USER)
            page.fill("input[name=password]", PASSWORD)
            page.click("button[type=submit]")
            page.wait_for_selector("input[name=allow]")
            camera.shot("consent")
            page.click("input[name=allow]" if allow else "input[value=Cancel]")


def _post(url: str, form: dict[str, str], client_id: str) -> tuple[int, dict[str, Any]]:
    """A form POST with RFC 6749 §2.3.1 Basic client authentication."""
    pair = f"{quote_plus(client_id)}:{quote_plus(CLIENT_SECRET)}"
    request = urllib.request.Request(
        url,
        data=urlencode(form).encode(),
        headers={
            "Authorization": "Basic " + base64.b64encode(pair.encode()).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    return _open(request)


def _open(request: urllib.request.Request) -> tuple[int, dict[str, Any]]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(request, timeout=20) as response:
            status, body = int(response.status), response.read()
    except urllib.error.HTTPError as exc:
        status, body = exc.code, exc.read()
    try:
        data = json.loads(body)
    except ValueError:
        data = {}
    return status, data if isinstance(data, dict) else {}


def _userinfo(server: Server, access_token: str) -> int:
    request = urllib.request.Request(
        server.metadata["userinfo_endpoint"], headers={"Authorization": f"Bearer {access_token}"}
    )
    return _open(request)[0]


def _refresh_status(server: Server, refresh_token: str) -> tuple[int, str | None]:
    status, body = _post(
        server.metadata["token_endpoint"],
        {"grant_type": "refresh_token", "refresh_token": refresh_token},
        CLIENT_ID,
    )
    return status, body.get("error")


def _active(server: Server, token: str, client_id: str) -> bool:
    status, body = _post(server.metadata["introspection_endpoint"], {"token": token}, client_id)
    assert status == 200, body
    return body.get("active") is True


def _read_metadata(issuer: str) -> dict[str, Any]:
    """Both documents, merged as a client would (the test's own view of the server)."""
    parts = urlsplit(issuer)
    merged: dict[str, Any] = {}
    for url in (
        f"{issuer}/.well-known/openid-configuration",
        f"{parts.scheme}://{parts.netloc}/.well-known/oauth-authorization-server{parts.path}",
    ):
        status, body = _open(urllib.request.Request(url))
        if status == 200:
            merged = {**body, **merged}
    return merged


@pytest.fixture(params=["oidc-provider", "django-oauth-toolkit"])
def server(
    request: pytest.FixtureRequest, oidc_provider: Callable[..., str], tmp_path: Path
) -> Iterator[tuple[Server, list[str]]]:
    """A server with both loopback redirects registered; yields it and the redirect URIs."""
    port = free_port()
    redirects = [f"http://127.0.0.1:{port}/callback", f"http://localhost:{port}/callback"]
    if request.param == "oidc-provider":
        issuer = oidc_provider(
            client_id=CLIENT_ID, client_secret=CLIENT_SECRET, redirect_uris=redirects
        )
        yield Server(request.param, issuer, _read_metadata(issuer), CLIENT_ID), redirects
        return
    process = subprocess.Popen(
        [sys.executable, str(E2E / "dot_provider.py")],
        env={
            **os.environ,
            "DATA_DIR": str(tmp_path / "dot"),
            "CLIENT_ID": CLIENT_ID,
            "SVC_CLIENT_ID": SVC_CLIENT_ID,
            "CLIENT_SECRET": CLIENT_SECRET,
            "REDIRECT_URIS": ",".join(redirects),
            "USER_NAME": USER,
            "PASSWORD": PASSWORD,
        },
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert line.startswith("READY "), f"django-oauth-toolkit did not start: {line!r}"
        issuer = line.split()[1]
        yield Server(request.param, issuer, _read_metadata(issuer), SVC_CLIENT_ID), redirects
    finally:
        process.terminate()
        process.wait(10)
        assert process.stdout is not None
        process.stdout.close()


def _login_args(server: Server, redirect: str, *extra: str) -> list[str]:
    return [
        "login", "home", "--issuer", server.issuer, "--client-id", CLIENT_ID,
        # A confidential client: the environment's secret is sent only when the profile
        # asks for client authentication where public clients are offered (issue 20).
        "--client-auth", "basic",
        "--redirect-uri", redirect, "--scope", "openid offline_access", "--prompt", "consent",
        *extra,
    ]  # fmt: skip


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def _log_in(server: Server, redirect: str, page: Any, url_catcher: Catcher) -> dict[str, Any]:
    browser_page, camera = page
    env, next_url = url_catcher
    process = start_cli(*_login_args(server, redirect), env=env)
    server.sign_in(browser_page, camera, next_url())
    browser_page.wait_for_selector("text=You are logged in")
    camera.shot("final")
    returncode, stdout, stderr = _finish(process)
    assert returncode == 0, stderr
    # Who logged in, from the id_token: oidc-provider's alice, the toolkit's user id.
    who = "alice" if server.kind == "oidc-provider" else "1"
    assert stdout.startswith(f"Logged in as {who}: profile 'home' (oidc)"), stdout
    record = read_record()
    assert record["issuer"] == server.issuer
    assert record["refresh_token"] and record["raw"]["id_token"]
    return record


def test_every_step(
    server: tuple[Server, list[str]], page: Any, url_catcher: Catcher, isolated_env: Path
) -> None:
    provider, redirects = server
    record = _log_in(provider, redirects[0], page, url_catcher)
    # Either document may list the revocation endpoint; the toolkit's OIDC one does not.
    assert record["revocation_url"] == provider.metadata["revocation_endpoint"]
    assert _userinfo(provider, record["access_token"]) == 200

    # token, then a refresh: the provider rotates and refuses the old refresh token.
    token = run_cli("token", "home")
    assert token.returncode == 0 and token.stdout == record["access_token"] + "\n"
    expire()
    refreshed = run_cli("token", "home")
    assert refreshed.returncode == 0, refreshed.stderr
    after = read_record()
    assert refreshed.stdout == after["access_token"] + "\n" != token.stdout
    assert after["refresh_token"] != record["refresh_token"]
    forced = run_cli("refresh", "home")
    assert forced.returncode == 0, forced.stderr
    current = read_record()

    # Client credentials, cached while valid, listed by status.
    cc_flags = ("--issuer", provider.issuer, "--client-id", provider.svc_client_id)
    credentials = run_cli("client-credentials", "svc", *cc_flags)
    assert credentials.returncode == 0, credentials.stderr
    assert run_cli("client-credentials", "svc", *cc_flags).stdout == credentials.stdout
    service_token = credentials.stdout.strip()
    assert _active(provider, service_token, provider.svc_client_id)
    status = run_cli("status")
    assert status.returncode == 0, status.stderr
    kinds = {row.split()[0]: row for row in status.stdout.splitlines()[1:]}
    assert "client-credentials" in kinds["svc"].split() and " login " in kinds["home"]

    # Logout revokes: the provider refuses both tokens afterwards.
    logout = run_cli("logout", "home")
    assert logout.returncode == 0, logout.stderr
    assert logout.stdout == (
        f"Logged out of profile 'home': tokens revoked at the provider and deleted "
        f"({token_path()})\n"
    )
    assert _userinfo(provider, current["access_token"]) == 401
    assert _refresh_status(provider, current["refresh_token"]) == (400, "invalid_grant")
    svc_path = isolated_env / "tokens" / "client-credentials" / "svc.json"
    logout_svc = run_cli("logout", "svc")
    assert logout_svc.returncode == 0, logout_svc.stderr
    assert logout_svc.stdout == (
        f"Logged out of profile 'svc': client-credentials token revoked at the provider and "
        f"deleted ({svc_path})\n"
    )
    assert not svc_path.exists()
    assert not _active(provider, service_token, provider.svc_client_id)
    # Checked last: oidc-provider answers a reused refresh token by revoking the grant.
    assert _refresh_status(provider, record["refresh_token"]) == (400, "invalid_grant")


def test_login_with_a_localhost_redirect(
    server: tuple[Server, list[str]], page: Any, url_catcher: Catcher
) -> None:
    provider, redirects = server
    record = _log_in(provider, redirects[1], page, url_catcher)
    assert _userinfo(provider, record["access_token"]) == 200
    assert run_cli("token", "home").stdout == record["access_token"] + "\n"


def test_denied_consent_names_the_providers_error(
    server: tuple[Server, list[str]], page: Any, url_catcher: Catcher
) -> None:
    provider, redirects = server
    browser_page, camera = page
    env, next_url = url_catcher
    process = start_cli(*_login_args(provider, redirects[0]), env=env)
    provider.sign_in(browser_page, camera, next_url(), allow=False)
    browser_page.wait_for_selector("text=Login failed")
    camera.shot("denied")
    page_text = browser_page.inner_text("body")
    returncode, stdout, stderr = _finish(process)
    assert returncode == 4, stderr
    last = stderr.strip().splitlines()[-1]
    # The toolkit promises RFC 9207 iss but leaves it out of error redirects: the
    # answer is refused all the same, and the line still says consent was denied.
    assert "access_denied" in last, last
    assert "access_denied" in page_text
    assert not token_path().exists()

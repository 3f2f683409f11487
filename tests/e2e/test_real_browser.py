"""The real login in headless Chromium, against the demo provider's own pages and against
a certified OpenID Connect provider (oidc-provider): login, token, refresh, client
credentials, logout with revocation, iss checking, and a redirect URI the provider refuses."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlencode, urljoin, urlsplit, urlunsplit

from support import (
    CLIENT_SECRET,
    DemoServer,
    expire,
    free_port,
    login_args,
    read_record,
    run_cli,
    start_cli,
    token_path,
)

Catcher = tuple[dict[str, str], Callable[[], str]]


def _finish(process: subprocess.Popen[str]) -> tuple[int, str, str]:
    stdout, stderr = process.communicate(timeout=60)
    return process.returncode, stdout, stderr


def test_demo_provider_pages_in_chromium(demo: DemoServer, page: Any, url_catcher: Catcher) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://localhost:{free_port()}/callback"
    demo.register(redirect)
    process = start_cli(*login_args(demo, redirect), env=env)

    browser_page.goto(next_url())
    assert browser_page.inner_text("h1") == "Sign in"
    camera.shot("login")
    browser_page.fill("input[name=username]", "demo")
    browser_page.fill("input[name=password]", "demo")
    browser_page.click("button[type=submit]")
    browser_page.wait_for_selector("text=Allow access?")
    camera.shot("consent")
    browser_page.click("button[value=allow]")
    browser_page.wait_for_selector("text=You are logged in")
    camera.shot("final")

    returncode, stdout, stderr = _finish(process)
    assert returncode == 0, stderr
    assert stdout.startswith("Logged in: profile 'home'")
    assert urlsplit(browser_page.url).netloc.startswith("localhost:")


def _oidc_login(issuer: str, redirect: str, *extra: str, profile: str = "home") -> list[str]:
    return [
        "login",
        profile,
        "--issuer",
        issuer,
        "--client-id",
        "e2e",
        # oidc-provider offers public clients too: the environment's secret is sent only
        # when the profile asks for client authentication (issue 20).
        "--client-auth",
        "basic",
        "--redirect-uri",
        redirect,
        "--scope",
        "openid offline_access",
        "--prompt",
        "consent",
        *extra,
    ]


def _sign_in_and_consent(browser_page: Any, camera: Any, url: str, user: str = "alice") -> None:
    browser_page.goto(url)
    browser_page.wait_for_selector("input[name=login]")
    camera.shot("login")
    browser_page.fill("input[name=login]", user)
    browser_page.fill("input[name=password]", "any password")
    browser_page.click("button[type=submit]")
    browser_page.wait_for_selector("text=Continue")
    camera.shot("consent")
    browser_page.click("button[type=submit]")


def test_certified_provider_full_lifecycle(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    issuer = oidc_provider(client_id="e2e", client_secret=CLIENT_SECRET, redirect_uris=[redirect])

    # Log in: discovery, PKCE, Basic auth with a secret full of + % : / and a space.
    process = start_cli(*_oidc_login(issuer, redirect), env=env)
    callbacks: list[str] = []
    browser_page.on(
        "request", lambda r: callbacks.append(r.url) if r.url.startswith(redirect) else None
    )
    _sign_in_and_consent(browser_page, camera, next_url())
    browser_page.wait_for_selector("text=You are logged in")
    camera.shot("final")
    returncode, stdout, stderr = _finish(process)
    assert returncode == 0, stderr
    # RFC 9207: the provider sent iss, and it was checked against the discovered issuer.
    assert parse_qs(urlsplit(callbacks[0]).query)["iss"] == [issuer]
    record = read_record()
    assert record["issuer"] == issuer and record["provider"] == "oidc"
    assert record["revocation_url"] == f"{issuer}/token/revocation"
    assert record["refresh_token"] and record["raw"]["id_token"]
    status = run_cli("status", "home")
    assert " alice " in status.stdout  # the id_token's subject

    # token, then a refresh with rotation.
    token = run_cli("token", "home")
    assert token.returncode == 0 and token.stdout == record["access_token"] + "\n"
    expire()
    refreshed = run_cli("token", "home")
    assert refreshed.returncode == 0, refreshed.stderr
    after = read_record()
    assert refreshed.stdout == after["access_token"] + "\n" != token.stdout
    assert after["refresh_token"] != record["refresh_token"]  # rotated by the provider

    # Client credentials, cached while valid.
    credentials = run_cli("client-credentials", "svc", "--issuer", issuer, "--client-id", "e2e")
    assert credentials.returncode == 0, credentials.stderr
    again = run_cli("client-credentials", "svc", "--issuer", issuer, "--client-id", "e2e")
    assert again.stdout == credentials.stdout

    # Logout revokes: the refresh token no longer works at the provider.
    kept = read_record()
    logout = run_cli("logout", "home")
    assert logout.returncode == 0, logout.stderr
    assert "revoked at the provider and deleted" in logout.stdout
    token_path().write_text(json.dumps({**kept, "expires_at": 0}))
    token_path().chmod(0o600)
    revoked = run_cli("token", "home")
    assert revoked.returncode == 3, revoked.stderr
    assert "no longer accepts the refresh token" in revoked.stderr


def test_certified_provider_iss_mix_up_is_refused(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    """A real browser whose callback arrives with another issuer's iss (RFC 9207 mix-up)."""
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    issuer = oidc_provider(client_id="e2e", client_secret=CLIENT_SECRET, redirect_uris=[redirect])

    def forge_iss(route: Any) -> None:
        # Follow the provider's redirects after each form ourselves (the browser's own
        # follow-ups cannot be intercepted); the one that leads back to us goes with
        # the provider's iss swapped for another issuer's.
        if route.request.method != "POST":
            route.continue_()
            return
        response = route.fetch(max_redirects=0)
        location = urljoin(route.request.url, response.headers.get("location", ""))
        for _ in range(5):
            if not location.startswith(issuer):
                break
            response = browser_page.request.get(location, max_redirects=0)
            location = urljoin(location, response.headers.get("location", ""))
        if not location.startswith(redirect + "?"):
            route.fulfill(status=303, headers={"location": location})  # on to the next page
            return
        parts = urlsplit(location)
        params = {k: v[0] for k, v in parse_qs(parts.query).items()}
        assert params["iss"] == issuer
        params["iss"] = "https://attacker.example"
        forged = urlunsplit(parts._replace(query=urlencode(params)))
        route.fulfill(status=303, headers={"location": forged})

    browser_page.route(lambda url: url.startswith(issuer), forge_iss)
    process = start_cli(*_oidc_login(issuer, redirect), env=env)
    _sign_in_and_consent(browser_page, camera, next_url())
    browser_page.wait_for_selector("text=Login failed")
    camera.shot("refused")
    returncode, stdout, stderr = _finish(process)
    assert returncode == 4
    assert "https://attacker.example" in stderr.splitlines()[-1]
    assert not token_path().exists()


def test_certified_provider_refuses_an_unregistered_redirect_uri(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    """The provider shows an error page and never redirects: we end with a clear timeout."""
    browser_page, camera = page
    env, next_url = url_catcher
    # (Any port of a registered loopback URI is fine by RFC 8252 §7.3; another path is not.)
    registered = f"http://127.0.0.1:{free_port()}/callback"
    unregistered = f"http://127.0.0.1:{free_port()}/elsewhere"
    issuer = oidc_provider(client_id="e2e", client_secret=CLIENT_SECRET, redirect_uris=[registered])
    process = start_cli(*_oidc_login(issuer, unregistered, "--timeout", "6"), env=env)
    browser_page.goto(next_url())
    browser_page.wait_for_selector("text=invalid_redirect_uri")
    camera.shot("provider-error")
    returncode, stdout, stderr = _finish(process)
    assert returncode == 5
    # Nothing came back: the line says so, and names the usual cause.
    assert stderr.splitlines()[-1].startswith(
        f"loopback-login: timed out after 6 s waiting for the browser to come back to "
        f"{unregistered}; nothing reached it. Usually the provider showed its own error page "
        f"instead of redirecting: the redirect URI is not registered exactly as {unregistered}"
    )

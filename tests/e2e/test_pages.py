"""The listener's pages in Chromium (a screenshot of each), and the client check against the
certified OpenID provider: a wrong secret ends the login before the consent."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from typing import Any

from support import (
    CLI,
    CLIENT_SECRET,
    NEUTRAL_CWD,
    DemoServer,
    free_port,
    login_args,
    start_cli,
    token_path,
)

Catcher = tuple[dict[str, str], Callable[[], str]]

PAGE_HEADERS = {"referrer-policy": "no-referrer", "cache-control": "no-store"}


def _check_page(response: Any, status: int) -> None:
    assert response.status == status
    headers = response.headers
    for name, value in PAGE_HEADERS.items():
        assert headers[name] == value
    assert "default-src 'none'" in headers["content-security-policy"]  # nothing from outside


def _sign_in(browser_page: Any, url: str) -> None:
    browser_page.goto(url)
    browser_page.fill("input[name=username]", "demo")
    browser_page.fill("input[name=password]", "demo")
    browser_page.click("button[type=submit]")
    browser_page.wait_for_selector("text=Allow access?")
    browser_page.click("button[value=allow]")


def test_every_page_of_the_listener(demo: DemoServer, page: Any, url_catcher: Catcher) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://localhost:{free_port()}/callback"
    demo.register(redirect)
    process = start_cli(*login_args(demo, redirect, "--scope", "read write"), env=env)
    url = next_url()

    # Another path of the listener: a styled 404, not aiohttp's plain text.
    origin = redirect.rsplit("/", 1)[0]
    response = browser_page.goto(f"{origin}/favicon.ico")
    _check_page(response, 404)
    assert browser_page.inner_text("h1") == "Not found"
    camera.shot("not-found")

    # A callback that is not this login's: styled, escaped, and the wait goes on.
    response = browser_page.goto(f"{redirect}?code=x&state=%3Cb%3Eforged%3C/b%3E")
    _check_page(response, 400)
    assert browser_page.inner_text("h1") == "Not this login's answer"
    assert browser_page.locator("b").count() == 0  # nothing echoed as markup
    camera.shot("not-this-login")

    _sign_in(browser_page, url)
    browser_page.wait_for_selector("text=You are logged in")
    text = browser_page.inner_text("body")
    assert "profile home" in text and "Granted: read write." in text
    assert "You can close this tab." in text
    camera.shot("success")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr

    # A failed exchange: the failure page says what went wrong, as a sentence, and how to retry.
    demo.provider.faults.token_errors = [502]
    process = start_cli(*login_args(demo, redirect, "--no-client-check"), env=env)
    _sign_in(browser_page, next_url())
    browser_page.wait_for_selector("text=Login failed")
    text = browser_page.inner_text("main")
    assert "The token endpoint answered 502 Bad Gateway." in text
    assert "Return to the terminal for details, and run the login again." in text
    camera.shot("failure")
    process.communicate(timeout=60)
    assert process.returncode == 4


def test_certified_provider_wrong_secret_is_caught_before_the_consent(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    issuer = oidc_provider(client_id="e2e", client_secret="the-real-one", redirect_uris=[redirect])
    args = ["login", "home", "--issuer", issuer, "--client-id", "e2e", "--redirect-uri", redirect]
    # oidc-provider offers public clients too: the environment's secret is sent only when
    # the profile asks for client authentication (issue 20).
    args += ["--client-auth", "basic"]
    process = subprocess.Popen(
        [CLI, *args, "--scope", "openid", "--timeout", "600"],
        env={**os.environ, **env, "LOOPBACK_LOGIN_CLIENT_SECRET": CLIENT_SECRET},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
    )
    # The login ends at once, and with it the private page the browser was handed
    # (issue 20): nobody has signed in.
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 4, stderr
    assert stderr.splitlines()[-1].startswith(
        "loopback-login: the provider refused the client id or secret of profile 'home' "
        "(invalid_client), before any sign-in"
    )
    assert not token_path().exists()

    # The right secret gets through the check; the summary says who logged in.
    process = start_cli(
        *args, "--scope", "openid", env={**env, "LOOPBACK_LOGIN_CLIENT_SECRET": "the-real-one"}
    )
    browser_page.goto(next_url())
    browser_page.wait_for_selector("input[name=login]")
    browser_page.fill("input[name=login]", "alice")
    browser_page.fill("input[name=password]", "any password")
    browser_page.click("button[type=submit]")
    browser_page.wait_for_selector("text=Continue")
    browser_page.click("button[type=submit]")
    browser_page.wait_for_selector("text=You are logged in")
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr
    assert stdout.startswith("Logged in as alice: profile 'home' (oidc)")

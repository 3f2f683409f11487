"""Using the tokens against a real authorization server's protected endpoint: oidc-provider's
userinfo (`/me`), through `loopback-login api` and the four Python forms, including the
refresh and retry after the server refuses a token."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from typing import Any

from support import (
    CLIENT_SECRET,
    NEUTRAL_CWD,
    free_port,
    read_record,
    run_cli,
    start_cli,
    token_path,
)
from test_real_browser import _finish, _oidc_login, _sign_in_and_consent

Catcher = tuple[dict[str, str], Callable[[], str]]

# Each Python form, as a user's script would use it; prints status and body.
SCRIPT = """
import asyncio, json, sys
import aiohttp, httpx, requests
import loopback_login

kind, url = sys.argv[1], sys.argv[2]

async def main():
    if kind == "session":
        async with loopback_login.session("home") as api, api.get("me") as r:
            return r.status, await r.json()
    if kind == "middleware":
        async with aiohttp.ClientSession(middlewares=[loopback_login.middleware("home")]) as s:
            async with s.get(url) as r:
                return r.status, await r.json()
    if kind == "httpx-async":
        async with httpx.AsyncClient(auth=loopback_login.HttpxAuth("home")) as client:
            r = await client.get(url)
            return r.status_code, r.json()
    if kind == "httpx":
        r = httpx.get(url, auth=loopback_login.HttpxAuth("home"))
        return r.status_code, r.json()
    r = requests.get(url, auth=loopback_login.RequestsAuth("home"), timeout=30)
    return r.status_code, r.json()

print(json.dumps(asyncio.run(main())))
"""


def _refused_token() -> str:
    """Store an access token the server does not know, valid by its expiry: the server says 401."""
    record = read_record()
    token_path().write_text(json.dumps({**record, "access_token": "not-a-token-it-issued"}))
    token_path().chmod(0o600)
    return str(record["refresh_token"])


def test_api_and_python_forms_against_a_real_userinfo_endpoint(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    browser_page, camera = page
    env, next_url = url_catcher
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    issuer = oidc_provider(client_id="e2e", client_secret=CLIENT_SECRET, redirect_uris=[redirect])
    process = start_cli(*_oidc_login(issuer, redirect, "--api-base-url", issuer), env=env)
    _sign_in_and_consent(browser_page, camera, next_url())
    browser_page.wait_for_selector("text=You are logged in")
    returncode, _, stderr = _finish(process)
    assert returncode == 0, stderr
    assert read_record()["api_base_url"] == issuer
    userinfo = f"{issuer}/me"

    # The shell: the body as the server sent it, piped.
    result = run_cli("api", "home", "/me")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sub"] == "alice"
    # The server refuses the token: one refresh (rotating the refresh token), one retry.
    old_refresh = _refused_token()
    result = run_cli("api", "home", userinfo)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["sub"] == "alice"
    after = read_record()
    assert after["access_token"] != "not-a-token-it-issued"
    assert after["refresh_token"] != old_refresh
    # Not the server's error, but a real one: the status on stderr, the body on stdout, exit 4.
    missing = run_cli("api", "home", "/no-such-endpoint")
    assert missing.returncode == 4 and "the API answered 404" in missing.stderr

    for kind in ("session", "middleware", "httpx", "httpx-async", "requests"):
        for refused in (False, True):
            if refused:
                _refused_token()
            ran = subprocess.run(
                [sys.executable, "-c", SCRIPT, kind, userinfo],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=NEUTRAL_CWD,
            )
            assert ran.returncode == 0, (kind, ran.stderr)
            status, body = json.loads(ran.stdout)
            assert (status, body["sub"]) == (200, "alice"), (kind, refused)
            assert read_record()["access_token"] != "not-a-token-it-issued"

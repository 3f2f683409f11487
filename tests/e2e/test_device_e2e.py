"""The device login (RFC 8628) against two real servers, the person played by headless Chromium.

panva's oidc-provider with ``features.deviceFlow`` (tests/e2e/provider.mjs: public and
confidential device clients, refresh tokens with offline_access, a code lifetime and a
test-only slow_down switch) and django-oauth-toolkit's device grant (tests/e2e/dot_provider.py:
its metadata lists no device endpoint, so ``--device-authorization-url`` is given). The CLI
shows the verification URI and the code on stderr; Chromium goes there and types the code.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Callable
from typing import Any

from support import CLIENT_SECRET, read_record, run_cli, start_cli, token_path
from test_two_servers import PASSWORD, USER, Server

# The fixture `server` of test_two_servers, under the name these tests ask for.
from test_two_servers import server as two_servers  # noqa: F401

Catcher = tuple[dict[str, str], Callable[[], str]]
CODE_LINE = re.compile(r"open (\S+) in any browser and enter the code (\S+)")


def _device_args(provider: Server, client_id: str, *extra: str) -> list[str]:
    args = ["login", "home", "--issuer", provider.issuer, "--client-id", client_id, "--device"]
    if provider.kind == "django-oauth-toolkit":
        # Neither of the toolkit's metadata documents lists its device endpoint.
        args += ["--device-authorization-url", f"{provider.issuer}/device-authorization/"]
    if client_id == "device-public":
        # A public client, though LOOPBACK_LOGIN_CLIENT_SECRET is set in the tests.
        args += ["--client-auth", "none"]
    else:
        # A confidential client at a provider that also has public ones: said, so that the
        # environment's secret is sent (SECURITY.md: it goes only where a secret is asked for).
        args += ["--client-auth", "basic"]
    scope = "openid offline_access api" if provider.kind == "oidc-provider" else "openid read"
    return [*args, "--scope", scope, *extra]


def _shown_code(process: subprocess.Popen[str]) -> tuple[str, str, list[str]]:
    """Read stderr up to the line with the verification URI and the user code."""
    lines: list[str] = []
    found = CODE_LINE.search(_read_until(process, CODE_LINE, lines))
    assert found is not None
    return found[1], found[2], lines


def _read_until(process: subprocess.Popen[str], pattern: re.Pattern[str], lines: list[str]) -> str:
    """Read stderr (into ``lines``) up to the first line that matches; that line."""
    assert process.stderr is not None
    for line in iter(process.stderr.readline, ""):
        lines.append(line)
        if pattern.search(line):
            return line
    raise AssertionError(f"never said {pattern.pattern!r}: {''.join(lines)}")


def _finish(process: subprocess.Popen[str], before: list[str]) -> tuple[int, str, str]:
    # Not communicate(): it would skip what the reads above left in stderr's buffer.
    process.wait(120)
    assert process.stdout is not None and process.stderr is not None
    stdout, stderr = process.stdout.read(), process.stderr.read()
    process.stdout.close()
    process.stderr.close()
    return process.returncode, stdout, "".join(before) + stderr


def _enter_code(provider: Server, page: Any, camera: Any, uri: str, code: str, allow: bool) -> None:
    """What the person does on the other device: open the URI, type the code, approve."""
    page.goto(uri)
    if provider.kind == "oidc-provider":
        page.fill("input[name=user_code]", code)
        camera.shot("code")
        page.click("button[form='op.deviceInputForm']")
        _confirm_oidc(page, camera, allow)
        return
    page.wait_for_selector("input[name=username]")  # the toolkit asks who you are first
    page.fill("input[name=username]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.fill("input[name=user_code]", code)
    camera.shot("code")
    page.click("button[type=submit]")
    page.click(f"button[name=action][value={'accept' if allow else 'deny'}]")
    page.wait_for_selector(f"text=Device {'Authorized' if allow else 'Denied'}")
    camera.shot("done")


def _confirm_oidc(page: Any, camera: Any, allow: bool) -> None:
    page.wait_for_selector("text=Confirm Device")
    camera.shot("confirm")
    if not allow:
        page.click("button[form='op.deviceConfirmForm'][name=abort]")
        page.wait_for_selector("text=The Sign-in request was interrupted")
        camera.shot("aborted")
        return
    page.click("button[form='op.deviceConfirmForm']:not([name=abort])")
    page.fill("input[name=login]", USER)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_selector("input[name=prompt][value=consent]", state="attached")
    page.click("button[type=submit]")
    page.wait_for_selector("text=Sign-in Success")
    camera.shot("done")


def test_a_confidential_device_client_at_both_servers(
    two_servers: tuple[Server, list[str]],  # noqa: F811 -- the fixture
    page: Any,
) -> None:
    provider, _redirects = two_servers
    browser_page, camera = page
    if provider.kind == "django-oauth-toolkit":
        # Without the flag: the metadata names no device endpoint, exit 2, nothing sent.
        bare = ["login", "home", "--issuer", provider.issuer, "--client-id", "device-conf"]
        refused = run_cli(*bare, "--device")
        assert refused.returncode == 2
        assert "no device_authorization_endpoint" in refused.stderr
        assert refused.stderr.count("\n") == 1
    process = start_cli(*_device_args(provider, "device-conf", "--no-browser"))
    uri, code, before = _shown_code(process)
    _enter_code(provider, browser_page, camera, uri, code, allow=True)
    returncode, stdout, stderr = _finish(process, before)
    assert returncode == 0, stderr
    assert stdout.count("\n") == 1 and "profile 'home' (oidc)" in stdout
    assert "refresh token saved" in stdout
    record = read_record()
    assert record["flow"] == "device" and record["refresh_token"]
    assert CLIENT_SECRET not in stdout + stderr
    status = run_cli("status", "home")
    assert "login (device)" in status.stdout
    refreshed = run_cli("refresh", "home")
    assert refreshed.returncode == 0, refreshed.stderr
    assert read_record()["access_token"] != record["access_token"]


def test_a_public_device_client_opens_the_page_with_the_code(
    oidc_provider: Callable[..., str], page: Any, url_catcher: Catcher
) -> None:
    issuer = oidc_provider(
        client_id="e2e", client_secret=CLIENT_SECRET, redirect_uris=["http://127.0.0.1/callback"]
    )
    browser_page, camera = page
    env, next_url = url_catcher
    args = [
        "login", "home", "--issuer", issuer, "--client-id", "device-public",
        "--client-auth", "none", "--scope", "openid offline_access", "--device",
    ]  # fmt: skip
    process = start_cli(*args, env=env)
    url = next_url()  # the CLI asked the browser to open verification_uri_complete
    assert "user_code=" in url
    browser_page.goto(url)
    _confirm_oidc(browser_page, camera, allow=True)
    stdout, stderr = process.communicate(timeout=120)
    assert process.returncode == 0, stderr
    assert read_record()["client_auth"] == "none" and read_record()["refresh_token"]
    assert run_cli("refresh", "home").returncode == 0


def test_denial_is_exit_4_at_both_servers(
    two_servers: tuple[Server, list[str]],  # noqa: F811 -- the fixture
    page: Any,
) -> None:
    provider, _redirects = two_servers
    browser_page, camera = page
    process = start_cli(*_device_args(provider, "device-public", "--no-browser"))
    uri, code, before = _shown_code(process)
    _enter_code(provider, browser_page, camera, uri, code, allow=False)
    returncode, stdout, stderr = _finish(process, before)
    assert returncode == 4, stderr
    assert "access_denied" in stderr.strip().splitlines()[-1]
    assert stdout == "" and not token_path().exists()


def test_slow_down_makes_the_polls_slower(oidc_provider: Callable[..., str], page: Any) -> None:
    # Polls every 5 s (no interval given); polled again within 6 s, the server says slow_down.
    issuer = oidc_provider(
        client_id="e2e",
        client_secret=CLIENT_SECRET,
        redirect_uris=["http://127.0.0.1/callback"],
        SLOW_DOWN="1",
        SLOW_DOWN_INTERVAL="6",
    )
    browser_page, camera = page
    provider = Server("oidc-provider", issuer, {}, "")
    process = start_cli(*_device_args(provider, "device-public", "--no-browser"))
    uri, code, before = _shown_code(process)
    # The second poll, 5 s after the first, is answered slow_down: from then on every 10 s.
    _read_until(process, re.compile(r"slow_down\): every 10 s now"), before)
    _enter_code(provider, browser_page, camera, uri, code, allow=True)
    returncode, _stdout, stderr = _finish(process, before)
    assert returncode == 0, stderr
    # The next poll waited the 10 s: had it come sooner, the server would have said slow_down again.
    assert stderr.count("(slow_down)") == 1, stderr  # (the tmp path has the words too)


def test_the_codes_lifetime_ends_the_login_exit_5(oidc_provider: Callable[..., str]) -> None:
    issuer = oidc_provider(
        client_id="e2e",
        client_secret=CLIENT_SECRET,
        redirect_uris=["http://127.0.0.1/callback"],
        DEVICE_CODE_TTL="3",
    )
    provider = Server("oidc-provider", issuer, {}, "")
    result = run_cli(*_device_args(provider, "device-public", "--no-browser"))
    assert result.returncode == 5, result.stderr
    assert result.stderr.splitlines()[-1] == (
        "loopback-login: the code expired after 3 s before the login was approved; run login again"
    )

"""End to end: the real `loopback-login` command in a subprocess, the demo provider
on a real socket, and a `$BROWSER` script that plays the person at the browser."""

from __future__ import annotations

import json
import os
import shlex
import socket
import stat
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from support import (
    CLIENT_ID,
    CLIENT_SECRET,
    Browser,
    DemoServer,
    exchanges,
    free_port,
    login_args,
    run_cli,
    start_cli,
    write_private,
)

from loopback_login._demo.browser import play_browser


def _stderr_lines(result: subprocess.CompletedProcess[str]) -> list[str]:
    return result.stderr.strip().splitlines()


def _assert_no_secrets(text: str, *secrets: str) -> None:
    for secret in secrets:
        assert secret and secret not in text


def _code_from(browser: Browser) -> str:
    url: str = browser.log["urls"][-1]
    return parse_qs(urlsplit(url).query)["code"][0]


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_full_login_then_token_status_logout(
    host: str, demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://{host}:{free_port()}/callback"
    demo.register(redirect)
    started = time.time()
    result = run_cli(*login_args(demo, redirect, "--scope", "read write"), env=browser.env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("Logged in: profile 'home'")
    assert "refresh token saved" in result.stdout
    # The browser saw the success page only after the exchange.
    assert browser.log["status"] == 200 and "You are logged in" in browser.log["body"]
    assert browser.log["urls"][-1].startswith(redirect + "?")

    path = isolated_env / "tokens" / "home.json"
    record = json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((isolated_env / "tokens").stat().st_mode) == 0o700
    assert stat.S_IMODE(isolated_env.stat().st_mode) == 0o700
    assert record["token_type"] == "Bearer"
    assert record["raw"]["token_type"] == "BearerToken"
    assert started + 1799 - 5 <= record["expires_at"] <= time.time() + 1799
    assert started - 1 <= record["obtained_at"] <= time.time()
    assert record["scope"] == "read write"
    assert record["refresh_token"] == record["raw"]["refresh_token"]
    assert {
        k: record[k] for k in ("profile", "provider", "client_id", "client_auth", "token_url")
    } == {
        "profile": "home",
        "provider": "honeywell",
        "client_id": CLIENT_ID,
        "client_auth": "basic-raw",  # the Honeywell preset: the seed's recipe
        "token_url": f"{demo.base_url}/oauth2/token",
    }
    assert CLIENT_SECRET not in path.read_text()  # the secret lives in config.toml only, if saved
    access, refresh, code = record["access_token"], record["refresh_token"], _code_from(browser)
    _assert_no_secrets(result.stdout + result.stderr, access, refresh, code, CLIENT_SECRET)
    assert exchanges(demo.provider) == 1

    token = run_cli("token", "home")
    assert (token.returncode, token.stdout, token.stderr) == (0, access + "\n", "")
    header = run_cli("token", "home", "--header")
    assert header.stdout == f"Authorization: Bearer {access}\n"
    shown = run_cli("token", "home", "--json")
    assert json.loads(shown.stdout)["access_token"] == access
    _assert_no_secrets(shown.stdout, refresh)
    shown_record = json.loads(shown.stdout)
    assert "refresh_token" not in shown_record and "refresh_token" not in shown_record["raw"]
    assert shown_record["raw"]["refresh_token_expires_in"] == "0"

    status = run_cli("status")
    assert status.returncode == 0
    rows = status.stdout.splitlines()
    assert rows[0].split()[:6] == ["PROFILE", "PROVIDER", "SUBJECT", "EXPIRES", "SCOPE", "REFRESH"]
    assert rows[1].startswith("home") and "honeywell" in rows[1] and str(path) in rows[1]
    _assert_no_secrets(status.stdout + status.stderr, access, refresh, CLIENT_SECRET)

    logout = run_cli("logout", "home")
    assert logout.returncode == 0 and not path.exists()
    gone = run_cli("token", "home")
    assert gone.returncode == 3 and gone.stdout == ""
    assert _stderr_lines(gone) == [
        "loopback-login: no tokens for profile 'home'; run `loopback-login login home`"
    ]


def test_second_login_on_the_same_fixed_port_right_after(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://localhost:{free_port()}/callback"
    demo.register(redirect)
    tokens = []
    for _ in range(2):
        result = run_cli(*login_args(demo, redirect), env=browser.env)
        assert result.returncode == 0, result.stderr
        tokens.append(
            json.loads((isolated_env / "tokens" / "home.json").read_text())["access_token"]
        )
    assert tokens[0] != tokens[1]
    assert exchanges(demo.provider) == 2


def test_saved_profile_and_secret_from_the_environment(
    demo: DemoServer, browser: Browser, isolated_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    monkeypatch.delenv("LOOPBACK_LOGIN_CLIENT_SECRET")
    env = {**browser.env, "LOOPBACK_LOGIN_CLIENT_SECRET": CLIENT_SECRET}
    saved = run_cli(*login_args(demo, redirect), "--save", env=env)
    assert saved.returncode == 0, saved.stderr
    config = isolated_env / "config.toml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600
    # No secure keyring in these tests: the secret the login used is kept in the file (0600).
    assert f'client_secret = "{CLIENT_SECRET}"' in config.read_text()
    assert f'client_id = "{CLIENT_ID}"' in config.read_text()
    # The saved profile alone is enough now, in a new shell without the variable.
    again = run_cli("login", "home", env=browser.env)
    assert again.returncode == 0, again.stderr
    # Without any secret, Basic auth cannot be done: one line, before anything else.
    config.write_text(config.read_text().replace(f'client_secret = "{CLIENT_SECRET}"\n', ""))
    no_secret = run_cli("login", "home", "--client-auth", "basic", env=browser.env)
    assert no_secret.returncode == 2
    assert _stderr_lines(no_secret) == [
        "loopback-login: profile 'home' needs its client secret: pass --client-secret or set $LOOPBACK_LOGIN_CLIENT_SECRET once (it is kept for the profile after one login)"
    ]


def test_access_denied_ends_the_login_promptly(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_DECISION": "deny"}
    # A wait until --timeout would overrun the subprocess timeout and fail the test.
    result = run_cli(*login_args(demo, redirect, "--timeout", "600"), env=env, timeout=60)
    assert result.returncode == 4
    last = _stderr_lines(result)[-1]
    assert last.startswith("loopback-login: ") and "access_denied" in last
    assert "The user denied access" in last
    assert "The user denied access" in browser.log["body"]
    assert result.stdout == ""


def test_wrong_state_does_not_end_the_wait(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_FIRST": "wrong-state"}
    result = run_cli(*login_args(demo, redirect), env=env)
    forged_status, forged_page = browser.log["forged"]
    assert forged_status == 400 and "still waiting" in forged_page
    assert result.returncode == 0, result.stderr
    assert "You are logged in" in browser.log["body"]


def test_failed_exchange_tells_browser_and_terminal(
    demo: DemoServer, browser: Browser, isolated_env: Path
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    demo.provider.faults.token_errors = [502]
    # Without the client check, whose request would meet the 502 instead.
    result = run_cli(*login_args(demo, redirect, "--no-client-check"), env=browser.env)
    assert result.returncode == 4
    assert (
        _stderr_lines(result)[-1] == "loopback-login: the token endpoint answered 502 Bad Gateway"
    )
    assert "Traceback" not in result.stderr and "<html>" not in result.stderr
    assert "Login failed" in browser.log["body"] and "502 Bad Gateway" in browser.log["body"]
    assert "You are logged in" not in browser.log["body"]
    assert not (isolated_env / "tokens" / "home.json").exists()
    # The code was sent once and never again (codes are single use).
    assert exchanges(demo.provider) == 1


def test_invalid_grant_on_exchange(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    demo.provider.faults.invalid_grant = True
    result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 4
    assert "(invalid_grant: Invalid Refresh Token)" in _stderr_lines(result)[-1]


def test_timeout_exits_5_and_frees_the_port(demo: DemoServer, browser: Browser) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    demo.register(redirect)
    env = {**browser.env, "TEST_BROWSER_ACTION": "nothing"}
    result = run_cli(*login_args(demo, redirect, "--timeout", "1"), env=env)
    assert result.returncode == 5
    assert _stderr_lines(result)[-1].startswith("loopback-login: timed out after 1 s")
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_ctrl_c_cancels_cleanly_and_frees_the_port(demo: DemoServer, browser: Browser) -> None:
    port = free_port()
    redirect = f"http://127.0.0.1:{port}/callback"
    demo.register(redirect)
    process = start_cli(
        *login_args(demo, redirect), env={**browser.env, "TEST_BROWSER_ACTION": "nothing"}
    )
    browser.wait_log()
    process.send_signal(2)  # SIGINT, as Ctrl-C sends
    _, stderr = process.communicate(timeout=30)
    assert process.returncode == 5
    assert stderr.strip().splitlines()[-1] == "loopback-login: cancelled"
    assert "Traceback" not in stderr
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", port))


def test_browser_alternatives_and_a_browser_that_keeps_running(
    demo: DemoServer, browser: Browser
) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    env = {
        **browser.env,
        # A missing program, then one that fails, then the one that works (webbrowser's order).
        "BROWSER": os.pathsep.join(["/nonexistent/browser", "false", browser.env["BROWSER"]]),
        # $BROWSER counts even in an SSH session.
        "SSH_CONNECTION": "10.0.0.1 22 10.0.0.2 22",
        # A browser that stays open must not hold the command open.
        "TEST_BROWSER_LINGER": "300",
    }
    result = run_cli(*login_args(demo, redirect), env=env, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "You are logged in" in browser.log["body"]


def test_no_browser_prints_the_url_and_still_listens(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    process = start_cli(*login_args(demo, redirect, "--no-browser"), env=browser.env)
    assert process.stderr is not None
    first = process.stderr.readline()
    assert first.startswith("Open this URL to log in: ")
    # The person opens the URL somewhere else.
    visit = play_browser(first.removeprefix("Open this URL to log in: ").strip())
    stdout, _ = process.communicate(timeout=30)
    assert process.returncode == 0 and stdout.startswith("Logged in")
    assert "You are logged in" in visit.body
    assert not browser.log_path.exists()  # $BROWSER was not used


def test_busy_port_is_reported_before_any_browser_opens(demo: DemoServer, browser: Browser) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        redirect = f"http://127.0.0.1:{port}/callback"
        demo.register(redirect)
        result = run_cli(*login_args(demo, redirect), env=browser.env)
    assert result.returncode == 4
    assert _stderr_lines(result) == [
        f"loopback-login: port {port} (127.0.0.1:{port}) is in use by another program; "
        "stop it, or log in with --paste"
    ]
    browser.assert_never_ran()  # no browser was opened


def test_client_secret_post(demo: DemoServer, browser: Browser, isolated_env: Path) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    result = run_cli(*login_args(demo, redirect, "--client-auth", "post"), env=browser.env)
    assert result.returncode == 0, result.stderr
    assert json.loads((isolated_env / "tokens" / "home.json").read_text())["client_auth"] == "post"


def test_wrong_secret_is_a_provider_error(demo: DemoServer, browser: Browser) -> None:
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect, secret="another")
    # Without the client check (tests/test_client_check.py): the exchange says it then.
    result = run_cli(*login_args(demo, redirect, "--no-client-check"), env=browser.env)
    assert result.returncode == 4
    last = _stderr_lines(result)[-1]
    assert "refused the client id or secret of profile 'home' (invalid_client), when the code" in (
        last
    )
    assert "check --client-id" in last  # what to fix, as the client check says it
    _assert_no_secrets(result.stderr, CLIENT_SECRET)


# A command line (split as a shell would) and what its one-line error says.
USAGE_ERRORS = """
login bad/name  =>  invalid profile name 'bad/name'
login home  =>  profile 'home' has no provider
login home --provider nope  =>  unknown provider 'nope'
login home --provider honeywell  =>  has no client id
login home --provider honeywell --client-id x  =>  has no redirect URI
login home --provider honeywell --client-id x --redirect-uri http://example.com:8080/cb  =>  not an http loopback address
login home --authorize-url http://idp.example/a --token-url https://idp.example/t --client-id x  =>  must use https
login home --timeout soon  =>  not a number of seconds
login home --bogus  =>  unrecognized arguments: --bogus
login home --authorize-param novalue  =>  expected KEY=VALUE
frobnicate  =>  invalid choice
login home --provider honeywell --client-id x --redirect-uri 'http://[::1/cb'  =>  is not a valid URL
login home --provider honeywell --client-id x --paste --redirect-uri http://localhost:99999/cb  =>  is not a valid URL
login home --authorize-url https://idp.example/a --client-id x --token-url 'https://[x/a'  =>  is not a valid URL
login home --authorize-url https://idp.example/a --client-id x --token-url https://me:pw@idp.example/t  =>  must not carry a user name or password
login home --provider honeywell --client-id x --redirect-uri http://127.0.0.1:8080/cb --authorize-param state=1 --save  =>  the authorize parameter 'state' is set by loopback-login itself
"""


@pytest.mark.parametrize(
    ("command", "message"),
    [tuple(case.split("  =>  ")) for case in USAGE_ERRORS.strip().splitlines()],
)
def test_usage_and_config_errors_are_one_line_exit_2(command: str, message: str) -> None:
    result = run_cli(*shlex.split(command))
    assert result.returncode == 2, result.stderr
    lines = _stderr_lines(result)
    assert len(lines) == 1 and message in lines[0], lines
    assert result.stdout == ""


def test_a_refused_save_writes_nothing(isolated_env: Path) -> None:
    result = run_cli(
        "login",
        "home",
        "--provider",
        "honeywell",
        "--client-id",
        "x",
        "--redirect-uri",
        "http://127.0.0.1:8080/cb",
        "--authorize-param",
        "scope=read",
        "--save",
    )
    assert result.returncode == 2 and "(use --scope)" in result.stderr
    assert not (isolated_env / "config.toml").exists()


def test_corrupt_token_file_is_login_required(isolated_env: Path) -> None:
    write_private(isolated_env / "tokens" / "home.json", "{not json")
    result = run_cli("token", "home")
    assert result.returncode == 3
    assert _stderr_lines(result) == [
        f"loopback-login: {isolated_env / 'tokens' / 'home.json'} is corrupt (not a JSON object); "
        "run `loopback-login login home` again"
    ]
    status = run_cli("status")
    assert status.returncode == 0 and "unreadable" in status.stdout


def test_expired_token_is_login_required(isolated_env: Path) -> None:
    record = {"access_token": "old", "token_type": "Bearer", "expires_at": time.time() - 10}
    write_private(isolated_env / "tokens" / "home.json", json.dumps(record))
    result = run_cli("token", "home")
    assert result.returncode == 3 and result.stdout == ""
    assert "has expired" in result.stderr


def test_providers_lists_honeywell() -> None:
    result = run_cli("providers")
    assert result.returncode == 0
    assert (
        "honeywell" in result.stdout
        and "https://api.honeywellhome.com/oauth2/accesstoken" in result.stdout
    )


def test_demo_without_a_browser_completes_by_itself(isolated_env: Path) -> None:
    result = run_cli("demo", "--timeout", "30")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("Logged in: profile 'demo' (demo)")
    assert "No browser can be opened here" in result.stderr
    assert "GET /v2/locations with the new token: 200" in result.stderr
    record = json.loads((isolated_env / "tokens" / "demo.json").read_text())
    _assert_no_secrets(
        result.stdout + result.stderr, record["access_token"], record["refresh_token"]
    )


def test_demo_with_a_browser(browser: Browser, isolated_env: Path) -> None:
    result = run_cli("demo", "--timeout", "30", env=browser.env)
    assert result.returncode == 0, result.stderr
    assert "You are logged in" in browser.log["body"]
    assert "No browser can be opened" not in result.stderr

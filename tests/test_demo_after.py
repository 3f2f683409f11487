"""The demo stays a good guide after it ends, and `demo --serve` keeps its provider running."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

from support import CLI, NEUTRAL_CWD, Browser, expire, read_record, run_cli

GONE = (
    "the demo provider runs only during `loopback-login demo`: run it again (or keep it running "
    "with `loopback-login demo --serve`), or clear the profile with "
    "`loopback-login logout demo --forget`"
)


def test_after_the_demo_each_command_says_what_to_do(isolated_env: Path) -> None:
    demo = run_cli("demo", "--timeout", "30")
    assert demo.returncode == 0, demo.stderr
    # Played the browser itself, said so every time, and showed no URL to open.
    assert "The demo played the browser itself: signed in as 'demo'" in demo.stderr
    assert "Open this URL" not in demo.stderr
    # While the access token is valid, `token demo` works without the provider.
    token = run_cli("token", "demo")
    assert token.returncode == 0 and token.stdout == read_record("demo")["access_token"] + "\n"
    expire("demo")
    for command in (["token", "demo"], ["refresh", "demo"]):
        result = run_cli(*command)
        assert result.returncode == 3  # log in again: run the demo again
        assert result.stderr.strip().splitlines() == [
            f"loopback-login: cannot refresh profile 'demo': {GONE}"
        ]
    logout = run_cli("logout", "demo")
    assert logout.returncode == 0, logout.stderr
    assert "NOT revoked (the demo provider that issued them has stopped, and they with it)" in (
        logout.stdout
    )
    assert "stay valid" not in logout.stdout
    assert not (isolated_env / "tokens" / "demo.json").exists()


def test_the_demo_says_when_a_real_browser_did_it(browser: Browser) -> None:
    result = run_cli("demo", "--timeout", "30", env=browser.env)
    assert result.returncode == 0, result.stderr
    assert "Opening your browser at the demo's login page" in result.stderr
    assert "Your browser completed the login (a real browser, not played)." in result.stderr
    assert "Open this URL to log in: " in result.stderr
    assert "played the browser itself" not in result.stderr


def test_demo_serve_runs_until_ctrl_c(isolated_env: Path) -> None:
    process = subprocess.Popen(
        [CLI, "demo", "--serve", "--timeout", "30"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
    )
    try:
        assert process.stderr is not None and process.stdout is not None
        said: list[str] = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            line = process.stderr.readline()
            assert line, "".join(said)
            said.append(line)
            if line.strip() == "loopback-login logout demo":
                break
        text = "".join(said)
        assert "keeps running at http://127.0.0.1:" in text and "until Ctrl-C" in text
        for command in ("token demo", "refresh demo", "status"):
            assert f"    loopback-login {command}\n" in text
        assert process.stdout.readline().startswith("Logged in: profile 'demo' (demo)")
        # From another terminal, the provider answers.
        expire("demo")
        token = run_cli("token", "demo")
        assert token.returncode == 0, token.stderr
        refreshed = run_cli("refresh", "demo")
        assert refreshed.returncode == 0, refreshed.stderr
        assert run_cli("status").stdout.count("demo") >= 1
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=30) == 0
        assert "Demo provider stopped." in process.stderr.read()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

"""Logging in where the browser cannot reach a listener: paste mode and the fallbacks."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from support import (
    CLI,
    NEUTRAL_CWD,
    DemoServer,
    exchanges,
    free_port,
    login_args,
    read_record,
    token_path,
)

from loopback_login._demo.browser import play_browser

URL_PREFIX = "Open this URL to log in: "


def _start(*args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [CLI, *args],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
        env=os.environ,
    )


def _read_url(process: subprocess.Popen[str]) -> tuple[str, list[str]]:
    """The authorize URL from stderr, and the lines before it."""
    assert process.stderr is not None
    seen: list[str] = []
    while line := _line(process.stderr.fileno()):
        if line.startswith(URL_PREFIX):
            return line.removeprefix(URL_PREFIX).strip(), seen
        seen.append(line.rstrip("\n"))
    raise AssertionError(f"no URL printed: {seen}")


def _line(fd: int) -> str:
    """One line, read a byte at a time: a buffered reader would swallow what follows it
    (the paste prompt), which communicate() then never sees."""
    data = b""
    while not data.endswith(b"\n"):
        byte = os.read(fd, 1)
        if not byte:
            break
        data += byte
    return data.decode()


def _args(demo: DemoServer, *extra: str, port: int | None = None) -> list[str]:
    redirect = f"http://127.0.0.1:{port or free_port()}/callback"
    demo.register(redirect)
    return login_args(demo, redirect, *extra)


def _finish(process: subprocess.Popen[str], pasted: str) -> tuple[str, str]:
    stdout, stderr = process.communicate(pasted + "\n", timeout=60)
    return stdout, stderr


def test_paste_the_address_the_browser_landed_on(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste"))
    url, _ = _read_url(process)
    visit = play_browser(url)
    assert visit.status == 0  # nothing listens: the browser shows an error page
    stdout, stderr = _finish(process, visit.urls[-1])
    assert process.returncode == 0, stderr
    assert stdout.startswith("Logged in: profile 'home'")
    assert "Address or code: " in stderr
    code = parse_qs(urlsplit(visit.urls[-1]).query)["code"][0]
    assert code not in stdout + stderr
    assert read_record()["access_token"]


def test_paste_a_bare_code(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste"))
    url, _ = _read_url(process)
    code = parse_qs(urlsplit(play_browser(url).urls[-1]).query)["code"][0]
    stdout, stderr = _finish(process, code)
    assert process.returncode == 0, stderr
    assert token_path().exists()


def test_bare_code_is_refused_without_pkce(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste", "--no-pkce"))
    url, _ = _read_url(process)
    code = parse_qs(urlsplit(play_browser(url).urls[-1]).query)["code"][0]
    stdout, stderr = _finish(process, code)
    assert process.returncode == 4
    assert "paste the whole address, not just the code" in stderr.splitlines()[-1]
    assert not token_path().exists()


def test_pasted_address_with_the_wrong_state_is_refused(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste"))
    url, _ = _read_url(process)
    landed = play_browser(url).urls[-1]
    params = parse_qs(urlsplit(landed).query)
    forged = landed.split("?")[0] + "?" + urlencode({"code": params["code"][0], "state": "forged"})
    stdout, stderr = _finish(process, forged)
    assert process.returncode == 4
    lines = stderr.strip().splitlines()
    refusal = "the callback's state is missing or is not this login's"
    assert lines[-3].startswith(f"Address or code: Refused: {refusal}")
    assert lines[-2] == "Address or code: "  # stdin ended: no second chance
    assert lines[-1].startswith(f"loopback-login: {refusal}")
    assert stdout == "" and not token_path().exists()
    assert exchanges(demo.provider) == 0  # never exchanged


def test_paste_accepts_a_corrected_address_after_a_refusal(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste"))
    url, _ = _read_url(process)
    landed = play_browser(url).urls[-1]
    stdout, stderr = _finish(process, "http://127.0.0.1/callback?code=x&state=stale\n" + landed)
    assert process.returncode == 0, stderr
    assert "Refused:" in stderr


def test_paste_without_input_times_out(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste", "--timeout", "1"))
    _read_url(process)
    # stdin stays open and silent: only the timeout can end this.
    assert process.wait(timeout=30) == 5
    assert process.stderr is not None and process.stdin is not None
    assert process.stderr.read().splitlines()[-1] == (
        "Address or code: loopback-login: timed out after 1 s waiting for the pasted address; "
        "run login again (--timeout sets the wait)"
    )
    process.stdin.close()
    process.stdout.close()  # type: ignore[union-attr]
    process.stderr.close()


def test_paste_with_stdin_closed_is_cancelled(demo: DemoServer) -> None:
    process = _start(*_args(demo, "--paste"))
    _read_url(process)
    stdout, stderr = process.communicate("", timeout=30)
    assert process.returncode == 5
    assert stderr.splitlines()[-1] == "loopback-login: cancelled: nothing was pasted"


def test_paste_allows_a_redirect_uri_that_is_not_loopback(demo: DemoServer) -> None:
    redirect = "https://app.example/oauth/callback"
    demo.register(redirect)
    process = _start(*login_args(demo, redirect, "--paste"))
    url, _ = _read_url(process)
    landed = play_browser(url).urls[-1]
    assert landed.startswith(redirect + "?")
    stdout, stderr = _finish(process, landed)
    assert process.returncode == 0, stderr


def test_busy_port_falls_back_to_paste(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", "true")  # a browser there is; the port is the problem
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = _start(*_args(demo, "--fallback", "paste", port=port))
        url, before = _read_url(process)
        assert before == [
            f"port {port} (127.0.0.1:{port}) is in use by another program; stop it, or log in "
            "with --paste: switching to paste mode."
        ]
    # (The port's owner is gone now, or the browser would wait on it.)
    stdout, stderr = _finish(process, play_browser(url).urls[-1])
    assert process.returncode == 0, stderr


def test_no_browser_here_falls_back_to_paste(demo: DemoServer) -> None:
    # The isolated environment has no BROWSER and no DISPLAY: no browser can open.
    process = _start(*_args(demo, "--fallback", "paste"))
    url, before = _read_url(process)
    assert before == [
        "No browser can be opened here (no graphical display: DISPLAY and WAYLAND_DISPLAY "
        "are unset): switching to paste mode."
    ]
    stdout, stderr = _finish(process, play_browser(url).urls[-1])
    assert process.returncode == 0, stderr


def test_no_browser_here_says_how_to_reach_the_listener(demo: DemoServer) -> None:
    port = free_port()
    process = _start(*_args(demo, port=port))
    url, _ = _read_url(process)
    assert process.stderr is not None
    advice = process.stderr.readline()
    assert advice.startswith("No browser can be opened here (no graphical display")
    assert f"ssh -L {port}:127.0.0.1:{port} " in advice and "--paste" in advice
    # Someone with a browser that reaches the port can still finish the login.
    play_browser(url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def test_no_browser_flag_prints_the_ssh_forwarding_line(
    demo: DemoServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BROWSER", "/nonexistent/should-not-run")
    port = free_port()
    process = _start(*_args(demo, "--no-browser", port=port))
    url, _ = _read_url(process)
    assert process.stderr is not None
    advice = process.stderr.readline()
    assert advice.startswith("Not opening a browser (--no-browser).")
    assert f"ssh -L {port}:127.0.0.1:{port} " in advice
    play_browser(url)
    stdout, stderr = process.communicate(timeout=60)
    assert process.returncode == 0, stderr


def test_paste_with_port_zero_is_a_config_error(demo: DemoServer) -> None:
    args = login_args(demo, "http://127.0.0.1:0/callback", "--paste")
    process = _start(*args)
    stdout, stderr = process.communicate(timeout=30)
    assert process.returncode == 2
    assert stderr.strip().splitlines() == [
        "loopback-login: --paste needs the redirect URI's real port, not port 0"
    ]


def test_python_login_with_paste(demo: DemoServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """paste=True in Python: the pasted address comes from stdin, as in a terminal."""
    redirect = f"http://127.0.0.1:{free_port()}/callback"
    demo.register(redirect)
    code = (
        "import sys, loopback_login\n"
        f"t = loopback_login.login_sync('home', paste=True, provider='honeywell', base_url={demo.base_url!r},"
        f" client_id='123abc', redirect_uri={redirect!r})\n"
        "print(t.token_type, t.refresh_token is not None)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=NEUTRAL_CWD,
        env=os.environ,
    )
    url, _ = _read_url(process)
    stdout, stderr = _finish(process, play_browser(url).urls[-1])
    assert process.returncode == 0, stderr
    assert stdout == "Bearer True\n"
    assert json.loads(token_path().read_text())["client_id"] == "123abc"

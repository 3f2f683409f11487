"""Secrets stay where they belong: not in a browser's environment, not at a dead demo port."""

from __future__ import annotations

import contextlib
import json
import shlex
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from support import CLIENT_SECRET, read_record, run_cli, token_path, write_private

from loopback_login._login import browser as _browser

# Every character PowerShell takes as a quote: ' and U+2018 to U+201B (single),
# " and U+201C to U+201E (double), and its escape character, the backtick.
POWERSHELL_QUOTES = "'\u2018\u2019\u201a\u201b\"\u201c\u201d\u201e`"


def test_browser_gets_no_secret_in_its_environment(tmp_path: Path) -> None:
    seen = tmp_path / "env.json"
    dump = "import json, os, sys; json.dump(dict(os.environ), open(sys.argv[1], 'w'))"
    command = f"{shlex.quote(sys.executable)} -c {shlex.quote(dump)} {shlex.quote(str(seen))} %s"
    result = run_cli(
        "login",
        "p",
        "--authorize-url",
        "https://idp.example/authorize",
        "--token-url",
        "https://idp.example/token",
        "--client-id",
        "app",
        "--redirect-uri",
        "http://127.0.0.1:0/cb",
        "--timeout",
        "2",
        env={"BROWSER": command, "KEEP_ME": "yes"},
    )
    assert result.returncode == 5, result.stderr
    environment = json.loads(seen.read_text())
    assert environment.get("KEEP_ME") == "yes"
    assert "LOOPBACK_LOGIN_CLIENT_SECRET" not in environment
    assert CLIENT_SECRET not in json.dumps(environment)


@pytest.mark.parametrize("quote_char", list(POWERSHELL_QUOTES))
def test_wsl_powershell_command_cannot_be_split_by_any_quote(
    monkeypatch: pytest.MonkeyPatch, quote_char: str
) -> None:
    monkeypatch.setattr(shutil, "which", lambda _name: None)  # no wslview
    url = f"https://idp.example/authorize{quote_char};Start-Process calc.exe;{quote_char}?a=1&b=é"
    command = _browser.wsl_command(url)
    assert command[:4] == ["powershell.exe", "-NoProfile", "-NonInteractive", "-Command"]
    script = command[4]
    assert script.startswith("Start-Process '") and script.endswith("'")
    inner = script[len("Start-Process '") : -1]
    assert inner.isascii() and not any(ch in inner for ch in POWERSHELL_QUOTES)
    # The same address for the browser, percent-encoded.
    assert urlsplit(inner).netloc == "idp.example" and "&b=%C3%A9" in inner


# --- the demo ------------------------------------------------------------------------


class Listener:
    """Whoever binds the dead demo port afterwards (another user could)."""

    def __init__(self, port: int) -> None:
        self.received: list[bytes] = []
        self.sock = socket.create_server(("127.0.0.1", port))
        self.sock.settimeout(0.2)
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        while not self.stop:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            with conn:
                conn.settimeout(2)
                with contextlib.suppress(OSError):
                    self.received.append(conn.recv(65536))

    def close(self) -> None:
        self.stop = True
        self.thread.join(5)
        self.sock.close()


def test_demo_profile_never_takes_a_secret_from_elsewhere() -> None:
    made = run_cli("demo", "--timeout", "30", env={"BROWSER": ""})
    assert made.returncode == 0, made.stderr
    port = urlsplit(read_record("demo")["token_url"]).port
    assert port is not None
    listener = Listener(port)
    try:
        for command in (["refresh", "demo"], ["refresh", "demo", "--client-secret", "typed"]):
            result = run_cli(*command)
            assert result.returncode == 3, result.stderr
            assert "loopback-login demo" in result.stderr.splitlines()[-1]
        # Logging out deletes, never revokes at the dead port.
        assert run_cli("logout", "demo").returncode == 0
    finally:
        listener.close()
    assert listener.received == []


def test_a_demo_serve_that_died_leaves_nothing_to_send_to(isolated_env: Path) -> None:
    """`demo --serve` killed without its cleanup: its demo.json names a process that is gone."""
    made = run_cli("demo", "--timeout", "30", env={"BROWSER": ""})
    assert made.returncode == 0, made.stderr
    base = read_record("demo")["token_url"].rsplit("/oauth2/", 1)[0]
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    write_private(
        isolated_env / "demo.json",
        json.dumps({"pid": gone.pid, "base_url": base, "client_secret": "demo-secret"}),
    )
    port = urlsplit(base).port
    assert port is not None
    listener = Listener(port)
    try:
        result = run_cli("refresh", "demo")
        assert result.returncode == 3, result.stderr
        assert "runs only during `loopback-login demo`" in result.stderr.splitlines()[-1]
        logout = run_cli("logout", "demo")
        assert logout.returncode == 0 and "NOT revoked" in logout.stdout
    finally:
        listener.close()
    assert listener.received == []


@pytest.mark.parametrize("kind", ["token file", "config table"])
def test_demo_never_replaces_a_profile_it_did_not_make(isolated_env: Path, kind: str) -> None:
    record = {"access_token": "real", "provider": "honeywell", "refresh_token": "r"}
    if kind == "token file":
        write_private(token_path("demo"), json.dumps(record))
    else:
        write_private(
            isolated_env / "config.toml",
            '[profiles.demo]\nprovider = "honeywell"\nclient_id = "x"\n',
        )
    result = run_cli("demo", "--timeout", "30", env={"BROWSER": ""})
    assert result.returncode == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and "demo" in lines[0] and "first" in lines[0], lines
    if kind == "token file":
        assert read_record("demo") == record
    else:
        assert not token_path("demo").exists()
    # The demo's own profile, though, it replaces.
    if kind == "token file":
        assert run_cli("logout", "demo", "--local-only").returncode == 0
        assert run_cli("demo", "--timeout", "30", env={"BROWSER": ""}).returncode == 0
        again = run_cli("demo", "--timeout", "30", env={"BROWSER": ""})
        assert again.returncode == 0, again.stderr

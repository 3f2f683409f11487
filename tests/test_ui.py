"""The person's side: the live wait line, WSL's browser, $BROWSER parsing."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path

import pytest

from loopback_login._login.browser import browser_command, is_wsl, no_browser_reason, wsl_command
from loopback_login._ui import Terminal


class FakeTty(io.StringIO):
    def isatty(self) -> bool:
        return True


async def test_countdown_is_a_live_line_on_a_terminal_only() -> None:
    tty = FakeTty()
    task = asyncio.ensure_future(Terminal(tty).countdown(300, "Waiting for the browser"))
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    text = tty.getvalue()
    assert text.startswith("\r\x1b[KWaiting for the browser: 5:00 left (Ctrl-C cancels)")
    assert text.endswith("\r\x1b[K")  # the line is cleared afterwards
    log = io.StringIO()  # not a terminal: nothing at all
    quiet = asyncio.ensure_future(Terminal(log).countdown(300, "Waiting"))
    await asyncio.sleep(0.01)
    assert quiet.done() and log.getvalue() == ""


def test_wsl_detection_and_its_browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    release = tmp_path / "osrelease"
    release.write_text("5.15.153.1-microsoft-standard-WSL2\n")
    assert is_wsl(str(release))
    release.write_text("6.1.0-18-amd64\n")
    assert not is_wsl(str(release))
    monkeypatch.setenv("PATH", str(tmp_path))  # no wslview: PowerShell, never cmd.exe
    url = "https://idp.example/a?x=1&state=it's"
    assert wsl_command(url) == [
        "powershell.exe",
        "-NoProfile",
        "-NonInteractive",
        "-Command",
        "Start-Process 'https://idp.example/a?x=1&state=it%27s'",  # no quote of any kind
    ]


def test_browser_variable_is_read_like_webbrowser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROWSER", "/opt/first:my-browser --new-tab %s:background %s &")
    assert browser_command("http://u") == [
        (["/opt/first", "http://u"], True),
        (["my-browser", "--new-tab", "http://u"], True),
        (["background", "http://u"], False),
    ]
    monkeypatch.setenv("SSH_CONNECTION", "1 2 3 4")
    assert no_browser_reason() is None  # a set $BROWSER always counts
    monkeypatch.delenv("BROWSER")
    assert no_browser_reason() == "this is an SSH session"

"""Opening the user's browser without ever blocking the login.

A browser command may run for as long as the browser does (``$BROWSER`` set to
a plain program is waited for by :mod:`webbrowser`), so it is started from a
daemon thread: never on the event loop, never in the default executor (which
``asyncio.run`` joins at exit).
"""

from __future__ import annotations

import os
import sys
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

if TYPE_CHECKING:
    from collections.abc import Callable

    from .page import LocalPage


def browser_command(url: str) -> list[tuple[list[str], bool]]:
    """The ``$BROWSER`` alternatives as ``(argv, wait)``, read as :mod:`webbrowser` reads it.

    ``$BROWSER`` is an ``os.pathsep``-separated list, tried in order; an entry
    with ``%s`` is a command line whose ``%s`` becomes the URL (a final ``&``
    runs it in the background), any other entry a program given the URL.
    """
    commands = []
    for entry in os.environ.get("BROWSER", "").split(os.pathsep):
        if not entry:
            continue
        if "%s" in entry:
            import shlex

            args = shlex.split(entry)
            background = bool(args) and args[-1] == "&"
            if background:
                args = args[:-1]
            commands.append(([arg.replace("%s", url) for arg in args], not background))
        else:
            commands.append(([entry, url], True))
    return commands


def is_wsl(osrelease: str = "/proc/sys/kernel/osrelease") -> bool:
    """Running under Windows Subsystem for Linux (its kernel names Microsoft)?"""
    if not sys.platform.startswith("linux"):
        return False
    try:
        with open(osrelease, encoding="ascii", errors="replace") as file:
            return "microsoft" in file.read().lower()
    except OSError:
        return False


def child_environment() -> dict[str, str]:
    """Our environment without the secrets we read from it, for the programs we start."""
    from .._profiles.profile import SECRET_ENVS

    return {key: value for key, value in os.environ.items() if key not in SECRET_ENVS}


def wsl_command(url: str) -> list[str]:
    """Open ``url`` in the Windows browser from WSL: wslview if installed, else PowerShell.

    Not ``cmd.exe /c start``: cmd.exe would split the URL at its ``&``.
    """
    import shutil

    from .page import URL_SAFE

    wslview = shutil.which("wslview")
    if wslview:
        return [wslview, url]
    # PowerShell takes ' and U+2018 to U+201B as single quotes (and U+201C to
    # U+201E as double ones), so doubling the ASCII ' is not enough: percent-
    # encode everything but unreserved and reserved ASCII (RFC 3986 §2), which
    # leaves no quote of any kind in the URL and means the same to the browser.
    quoted = quote(url, safe=URL_SAFE)
    return [
        "powershell.exe",
        "-NoProfile",
        "-NonInteractive",
        "-Command",
        f"Start-Process '{quoted}'",
    ]


def no_browser_reason() -> str | None:
    """Why no browser can be opened here, or ``None`` when one probably can.

    A set ``$BROWSER`` always counts as a browser. Otherwise an SSH session, or
    a Linux desktop-less session (no ``DISPLAY`` nor ``WAYLAND_DISPLAY``), has
    none: :mod:`webbrowser` would fall back to a text browser in this terminal.
    """
    if os.environ.get("BROWSER"):
        return None
    if os.environ.get("SSH_CONNECTION") or os.environ.get("SSH_TTY"):
        return "this is an SSH session"
    if is_wsl():
        return None  # the Windows browser, which reaches WSL's loopback ports
    if sys.platform.startswith("linux") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no graphical display: DISPLAY and WAYLAND_DISPLAY are unset"
    import webbrowser

    try:
        webbrowser.get()
    except webbrowser.Error:
        return "no web browser was found"
    return None


def _hand_over(url: str, page: LocalPage | None, confined: bool) -> str:
    """What the browser is given: the private page's ``file://`` URL where it can read it."""
    from .page import confined_base, private_base

    if page is None:
        return url
    base = confined_base() if confined else private_base()
    return (page.write(url, base) if base is not None else None) or url


def _launch(url: str, page: LocalPage | None = None) -> bool:
    import subprocess  # here, in the browser's thread, not on the way to it

    from .page import default_browser_is_confined, is_confined

    commands = browser_command(url)
    if commands:
        url = _hand_over(url, page, is_confined(commands[0][0]))
        commands = browser_command(url)
    elif is_wsl():
        # A Windows browser cannot read this machine's private directories: the URL.
        commands = [(wsl_command(url), True)]
    else:
        url = _hand_over(url, page, default_browser_is_confined())
    env = child_environment()
    if not commands:
        if len(env) == len(os.environ):
            import webbrowser

            return webbrowser.open(url)
        # webbrowser's commands inherit our environment, secrets included:
        # let a child Python, started without them, run it.
        commands = [([sys.executable, "-m", "webbrowser", "-t", url], True)]
    for args, wait in commands:
        try:
            # Our stdout carries only the command's result, and a browser that
            # outlives us must not hold a caller's pipe open: it gets neither.
            process = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                env=env,  # the browser has no business with our client secret
            )
        except OSError:
            continue
        # As webbrowser does, a command that fails makes way for the next one.
        # It may run as long as the browser does: it is waited for here, in a
        # daemon thread, which never holds the program open.
        if not wait or process.wait() == 0:
            return True
    return False


def open_browser(url: str, on_failure: Callable[[], None] | None = None) -> LocalPage:
    """Ask the browser to open ``url``, from a daemon thread; return at once.

    The browser is handed a private page that forwards to ``url`` (see
    :mod:`.page`) where it can read one; the caller removes it when the login
    ends. ``on_failure`` is called (from that thread) when no browser could be started.
    """
    from .page import LocalPage  # after the URL is shown: off the way to it

    page = LocalPage()

    def run() -> None:
        try:
            opened = _launch(url, page)
        except Exception:
            opened = False
        if not opened and on_failure is not None:
            on_failure()

    threading.Thread(target=run, name="loopback-login-browser", daemon=True).start()
    return page

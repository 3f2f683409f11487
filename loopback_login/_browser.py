"""Opening the user's browser without ever blocking the login.

A browser command may run for as long as the browser does (``$BROWSER`` set to
a plain program is waited for by :mod:`webbrowser`), so it is started from a
daemon thread: never on the event loop, never in the default executor (which
``asyncio.run`` joins at exit).
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
import threading
from collections.abc import Callable


def browser_command(url: str) -> list[list[str]]:
    """The ``$BROWSER`` alternatives as argument lists, read as :mod:`webbrowser` reads it.

    ``$BROWSER`` is a ``os.pathsep``-separated list; an entry with ``%s`` is a
    command line whose ``%s`` becomes the URL, any other entry a program that
    gets the URL as its one argument.
    """
    commands = []
    for entry in os.environ.get("BROWSER", "").split(os.pathsep):
        if not entry:
            continue
        if "%s" in entry:
            args = shlex.split(entry)
            if args and args[-1] == "&":
                args = args[:-1]
            commands.append([arg.replace("%s", url) for arg in args])
        else:
            commands.append([entry, url])
    return commands


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


def _launch(url: str) -> bool:
    commands = browser_command(url)
    if not commands:
        import webbrowser

        return webbrowser.open(url)
    for args in commands:
        try:
            # stdout is ours and carries only the command's result.
            process = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL)
        except OSError:
            continue
        # A browser command may run as long as the browser does: wait for it
        # here, in this daemon thread, which never holds the program open.
        process.wait()
        return True
    return False


def open_browser(url: str, on_failure: Callable[[], None] | None = None) -> None:
    """Ask the browser to open ``url``, from a daemon thread; return at once.

    ``on_failure`` is called (from that thread) when no browser could be started.
    """

    def run() -> None:
        try:
            opened = _launch(url)
        except Exception:
            opened = False
        if not opened and on_failure is not None:
            on_failure()

    threading.Thread(target=run, name="loopback-login-browser", daemon=True).start()

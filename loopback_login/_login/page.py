"""The private page handed to the browser instead of the authorize URL.

A program's command line is readable by every user of the machine
(``/proc/PID/cmdline``, ``ps``). The authorize URL carries the login's
``state``: another user who reads it from the browser's command line can
complete the login in their own browser and send their own code through any
forwarder the person runs (``ssh -L``, socat, an HTTP proxy), whose
connections the listener sees as the person's own. So the browser is given a
``file://`` page instead, mode 0600 in a directory only the person can enter,
that forwards to the authorize URL at once; its name says nothing, and it is
removed when the login ends. The ``Open this URL`` line on the terminal stays.

Confined browsers (snap, flatpak) cannot read every directory: the page goes
where they can (the download directory, which both let a browser read), else
the URL is handed over as before. A Windows browser started from WSL gets the
URL (it cannot read this machine's private directories).
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from html import escape
from urllib.parse import quote

#: RFC 3986 §2.2 and §2.3 without the quote-like "'", plus "%" to keep escapes as they are:
#: a URL quoted with it has no quote character of any kind, in HTML or in PowerShell.
URL_SAFE = ":/?#[]@!$&()*+,;=-._~%"

_PAGE = """<!doctype html>
<html><head><meta charset="utf-8">
<meta name="referrer" content="no-referrer">
<meta http-equiv="refresh" content="0; url={url}">
<title>loopback-login</title></head>
<body><p>Opening the sign-in page&hellip; <a href="{url}" rel="noreferrer">continue</a></p>
</body></html>
"""


def page_html(authorize_url: str) -> str:
    """The page: a refresh to the URL at once, and a link should refresh be off."""
    return _PAGE.format(url=escape(quote(authorize_url, safe=URL_SAFE), quote=True))


class LocalPage:
    """A page written for one login, removed by :meth:`remove` (from any thread, any time).

    :meth:`write` runs on the browser's thread; :meth:`remove` when the login
    ends. Whichever comes second cleans up: a page written after the login
    ended is removed at once and never handed over.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ended = False
        self._directory: str | None = None

    def write(self, authorize_url: str, base: str) -> str | None:
        """Write the page in a new private directory under ``base``; its ``file://`` URL.

        ``None`` when it cannot be written there (or the login has ended):
        the caller hands over the URL itself then.
        """
        name = "loopback-login-" + os.urandom(9).hex()
        directory = os.path.join(base, name)
        with self._lock:
            if self._ended:
                return None
            try:
                # 0700 from creation; an existing name (planted) fails instead of being reused.
                os.mkdir(directory, 0o700)
            except OSError:
                return None
            self._directory = directory
            path = os.path.join(directory, "login.html")
            try:
                flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
                fd = os.open(path, flags, 0o600)
                with os.fdopen(fd, "w", encoding="utf-8") as file:
                    file.write(page_html(authorize_url))
            except OSError:
                self._remove_locked()
                return None
        return file_url(path)

    def remove(self) -> None:
        with self._lock:
            self._ended = True
            self._remove_locked()

    def _remove_locked(self) -> None:
        directory, self._directory = self._directory, None
        if directory is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(directory, "login.html"))
        with contextlib.suppress(OSError):
            os.rmdir(directory)


def file_url(path: str) -> str:
    if sys.platform == "win32":
        return "file:///" + quote(path.replace("\\", "/"), safe="/:")
    return "file://" + quote(path, safe="/")


def private_base() -> str:
    """Where an unconfined browser can read a page that no other user can.

    ``$XDG_RUNTIME_DIR`` (the person's own 0700 tmpfs) where it is ours, else
    the temporary directory (the page gets its own 0700 directory there).
    """
    runtime = os.environ.get("XDG_RUNTIME_DIR")
    if runtime and _owned_private(runtime):
        return runtime
    import tempfile

    return tempfile.gettempdir()


def confined_base() -> str | None:
    """Where a snap or flatpak browser can read a page: the download directory, if any.

    Both let a browser read it (snap's ``home`` interface, flatpak's
    ``xdg-download``); the page's own directory there is 0700 all the same.
    """
    home = os.path.expanduser("~")
    directory = _xdg_download_dir(home) or os.path.join(home, "Downloads")
    return directory if os.path.isdir(directory) and _owned(directory) else None


def _xdg_download_dir(home: str) -> str | None:
    config = os.environ.get("XDG_CONFIG_HOME") or os.path.join(home, ".config")
    try:
        with open(os.path.join(config, "user-dirs.dirs"), encoding="utf-8") as file:
            lines = file.read().splitlines()
    except (OSError, UnicodeDecodeError):
        return None
    for line in lines:
        key, _, value = line.partition("=")
        if key.strip() == "XDG_DOWNLOAD_DIR":
            value = value.strip().strip('"').replace("$HOME", home)
            return value if os.path.isabs(value) and value != home else None
    return None


def _owned(path: str) -> bool:
    try:
        return not hasattr(os, "getuid") or os.stat(path).st_uid == os.getuid()
    except OSError:
        return False


def _owned_private(path: str) -> bool:
    try:
        info = os.stat(path)
    except OSError:
        return False
    return not hasattr(os, "getuid") or (info.st_uid == os.getuid() and info.st_mode & 0o077 == 0)


# --- is the browser confined? -------------------------------------------------------

_CONFINED_MARKS = (b"/snap/bin/", b"flatpak run", b"/flatpak/exports/", b"snap run")


def is_confined(argv: list[str]) -> bool:
    """Does this browser command start a snap or flatpak browser?

    The program itself (``/snap/bin/firefox``, ``flatpak run ...``), or a
    script that starts one (Ubuntu's ``/usr/bin/firefox`` and
    ``chromium-browser`` hand over to the snap).
    """
    if not argv:
        return False
    import shutil

    program = shutil.which(argv[0]) or argv[0]
    real = os.path.realpath(program)
    for path in (program, real):
        if os.path.basename(path) in ("snap", "flatpak") or any(
            mark.decode() in path for mark in _CONFINED_MARKS
        ):
            return True
    try:
        with open(real, "rb") as file:
            head = file.read(65536)
    except OSError:
        return False
    return head.startswith(b"#!") and any(mark in head for mark in _CONFINED_MARKS)


def default_browser_is_confined() -> bool:
    """Is the desktop's default web browser (``xdg-settings``) a snap or flatpak one?"""
    if not sys.platform.startswith("linux"):
        return False
    import shutil
    import subprocess

    settings = shutil.which("xdg-settings")
    if settings is None:
        return False
    try:
        desktop = subprocess.run(
            [settings, "get", "default-web-browser"],
            capture_output=True,
            text=True,
            timeout=5,
            stdin=subprocess.DEVNULL,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return False
    if not desktop.endswith(".desktop") or "/" in desktop:
        return False
    home = os.path.expanduser("~")
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    data_dirs = os.environ.get("XDG_DATA_DIRS") or "/usr/local/share:/usr/share"
    for directory in [data_home, *data_dirs.split(":")]:
        path = os.path.join(directory, "applications", desktop)
        try:
            with open(path, "rb") as file:
                text = file.read(65536)
        except OSError:
            continue
        return (
            "/snapd/" in path
            or "/flatpak/" in path
            or b"X-Flatpak" in text
            or b"X-SnapInstanceName" in text
            or any(mark in text for mark in _CONFINED_MARKS)
        )
    return False

"""A browser made of HTTP requests: plays the person on the demo provider's pages.

The demo uses it where no browser can be opened, and the tests as their browser.
Stdlib only.
"""

from __future__ import annotations

import html
import re
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urljoin

DEMO_USER = "demo"
DEMO_PASSWORD = "demo"


@dataclass
class BrowserVisit:
    """Where :func:`play_browser` went and what the last page said."""

    urls: list[str]
    status: int
    body: str


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), _NoRedirects())
_HIDDEN_REQUEST = re.compile(r"name=request value='([^']*)'")


def _fetch(url: str, form: Mapping[str, str] | None, timeout: float) -> tuple[int, str, str | None]:
    data = urlencode(form).encode() if form is not None else None
    try:
        # Only http(s) URLs of the demo provider and the receiver come here.
        request = urllib.request.Request(url, data=data)  # noqa: S310
        with _OPENER.open(request, timeout=timeout) as response:
            return response.status, response.read().decode("utf-8", "replace"), None
    except urllib.error.HTTPError as exc:
        body = exc.read().decode("utf-8", "replace")
        return exc.code, body, exc.headers.get("Location")


def play_browser(
    url: str,
    *,
    decision: str = "allow",
    username: str = DEMO_USER,
    password: str = DEMO_PASSWORD,
    timeout: float = 30.0,
) -> BrowserVisit:
    """Do what a person does in the browser: sign in, answer consent, follow redirects.

    Works against the demo provider's pages; the last URL is the redirect URI
    the provider sent the browser to, and the visit ends with its page.
    """
    urls = [url]
    status, body, location = _fetch(url, None, timeout)
    for form in (
        {"username": username, "password": password},
        {"decision": decision},
    ):
        match = _HIDDEN_REQUEST.search(body)
        if status != 200 or match is None:
            return BrowserVisit(urls, status, body)
        action = "/oauth2/login" if "username" in form else "/oauth2/consent"
        status, body, location = _fetch(
            urljoin(url, action), {"request": html.unescape(match.group(1)), **form}, timeout
        )
    while status in (301, 302, 303, 307, 308) and location and len(urls) < 10:
        urls.append(urljoin(urls[-1], location))
        try:
            status, body, location = _fetch(urls[-1], None, timeout)
        except urllib.error.URLError:
            # Nothing listens there (paste mode): the address bar still shows it.
            return BrowserVisit(urls, 0, "")
    return BrowserVisit(urls, status, body)


class ScriptedBrowser:
    """Plays the person at the browser over HTTP, from a daemon thread (:func:`play_browser`)."""

    #: It needs no URL shown: nobody is to open it (see _start.start_login).
    plays_itself = True

    def __init__(self) -> None:
        self.visit: BrowserVisit | None = None
        self._thread: threading.Thread | None = None

    def unavailable(self) -> str | None:
        return None

    def open(self, url: str, say: Callable[[str], None]) -> None:
        def run() -> None:
            self.visit = play_browser(url)

        self._thread = threading.Thread(target=run, name="loopback-login-demo-browser", daemon=True)
        self._thread.start()

    def outcome(self) -> str:
        """What it did, once the login is over (its last page came with the login's end)."""
        if self._thread is not None:
            self._thread.join(10)
        status = self.visit.status if self.visit is not None else "none"
        return (
            f"The demo played the browser itself: signed in as {DEMO_USER!r}, allowed access, "
            f"and was sent back to the redirect URI (page status {status})."
        )

"""The first moments of a login: check, bind, build the URL, open the browser.

Synchronous and light on imports, so that the browser is asked to open before
asyncio or aiohttp is imported; connections that arrive meanwhile wait in the
listen backlog. :mod:`.flow` takes over from :class:`Started`.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from .._errors import ConfigError, PortInUse
from .._protocol import AuthorizeRequest, authorize_request
from .bind import Listener, LoopbackTarget, bind, loopback_target
from .browser import no_browser_reason, open_browser

#: How long a login waits for the browser (or the pasted address) by default, in seconds.
LOGIN_TIMEOUT = 300.0

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType
    from typing import Protocol

    from .._profiles.profile import Profile
    from .._ui import Reporter

    Say = Callable[[str], None]

    class Browser(Protocol):
        """Something that opens a URL for the person; ``open`` returns at once."""

        def unavailable(self) -> str | None:
            """Why it cannot open anything here, or ``None``."""

        def open(self, url: str, say: Say) -> Callable[[], None] | None:
            """Open ``url``; what to call when the login ends (to remove a page handed over)."""


class SystemBrowser:
    """The person's browser: ``$BROWSER``, WSL's Windows browser, else the platform's default."""

    def unavailable(self) -> str | None:
        return no_browser_reason()

    def open(self, url: str, say: Say) -> Callable[[], None]:
        page = open_browser(
            url,
            on_failure=lambda: say("Could not start the browser: open the URL above yourself."),
        )
        return page.remove


class Started:
    """A login under way: its request, and the listener unless in paste mode.

    The one owner of the listener and of the page handed to the browser: a
    context manager that closes the one and removes the other when the login
    ends, on every path (the receiver serves the listener, and never closes it).
    """

    #: The authorization request, made once the listener's port is known.
    request: AuthorizeRequest

    def __init__(self, listener: Listener | None) -> None:
        self.listener = listener
        #: Removes the private page the browser was handed, if any.
        self.remove_page: Callable[[], None] | None = None
        #: Why no browser was opened here (``--no-browser``, no display), if none was.
        self.not_opened: str | None = None
        #: The demo played the browser itself (no person, no real browser).
        self.played = False

    def __enter__(self) -> Started:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        if self.remove_page is not None:
            self.remove_page()
        if self.listener is not None:
            self.listener.close()


def check_login(profile: Profile, *, paste: bool) -> LoopbackTarget | None:
    """Refuse a profile that cannot log in; the loopback target to listen on, unless pasting."""
    if not profile.redirect_uri:
        device = " (or log in with --device)" if profile.device_authorization_url else ""
        raise ConfigError(
            f"profile {profile.name!r} has no redirect URI: pass --redirect-uri with the one "
            f"registered for your app, e.g. http://localhost:8080/callback{device}"
        )
    if profile.authorize_url is None:
        raise ConfigError(
            f"profile {profile.name!r} has no authorize URL: pass --authorize-url or --provider"
        )
    if not paste:
        return loopback_target(profile.redirect_uri)
    if urlsplit(profile.redirect_uri).port == 0:
        raise ConfigError("--paste needs the redirect URI's real port, not port 0")
    return None


def use_device(
    profile: Profile,
    *,
    device: bool,
    paste: bool,
    open_browser: bool,
    reporter: Reporter,
    browser: Browser | None = None,
) -> bool:
    """Does this login use the device authorization grant (RFC 8628)?

    Asked for (``device``): yes, if the server has a device endpoint; a usage
    error before anything is sent otherwise. Not asked for: only when no
    browser can be opened here and the server has one (said in one line);
    ``paste`` and ``--no-browser`` keep their own modes.
    """
    if device:
        if paste:
            raise ConfigError("give either --device or --paste, not both")
        if profile.device_authorization_url is None:
            why = (
                "the provider's metadata lists no device_authorization_endpoint (RFC 8628 §4)"
                if profile.issuer
                else "the profile names none"
            )
            raise ConfigError(
                f"profile {profile.name!r} has no device authorization endpoint: {why}; "
                "pass --device-authorization-url, or log in without --device"
            )
        return True
    if paste or not open_browser or profile.device_authorization_url is None:
        return False
    reason = (browser or SystemBrowser()).unavailable()
    if reason is None:
        return False
    reporter.say(
        f"No browser can be opened here ({reason}): logging in with the device flow "
        "(RFC 8628) instead; --paste forces paste mode."
    )
    return True


def start_login(
    profile: Profile,
    *,
    browser: Browser | None = None,
    open_browser: bool = True,
    paste: bool = False,
    fallback_paste: bool = False,
    reporter: Reporter,
) -> Started:
    """Bind the redirect port (or choose paste mode), show the URL and open the browser."""
    browser = browser or SystemBrowser()
    target = check_login(profile, paste=paste)
    assert profile.redirect_uri is not None
    parts = urlsplit(profile.redirect_uri)
    if parts.port is None and parts.scheme == "http":
        reporter.say(
            f"Note: the redirect URI {profile.redirect_uri} has no port, which means port 80; "
            "the URI registered for your app usually has one "
            "(e.g. http://localhost:8080/callback)."
        )
    listener = None
    no_browser = browser.unavailable() if open_browser and not paste else None
    if target is not None:
        if no_browser is not None and fallback_paste:
            _check_paste_port(target)
            reporter.say(f"No browser can be opened here ({no_browser}): switching to paste mode.")
        else:
            # Bind before anything else: a busy port ends the login before a
            # browser opens (the program holding it would receive the code),
            # and a fast browser never meets a closed port.
            try:
                listener = bind(target)
            except PortInUse as exc:
                if not fallback_paste:
                    raise
                _check_paste_port(target)
                reporter.say(f"{exc}: switching to paste mode.")
    assert profile.authorize_url is not None and profile.redirect_uri is not None
    started = Started(listener)
    try:
        started.request = request = authorize_request(
            profile.authorize_url,
            client_id=profile.client_id,
            redirect_uri=listener.redirect_uri if listener else profile.redirect_uri,
            scope=profile.scope,
            pkce=profile.pkce,
            extra_params=profile.authorize_params,
            resource=profile.resource,
        )
        if listener is not None:
            if not getattr(browser, "plays_itself", False):  # the demo's scripted browser
                reporter.show_url(request.url)
            started.played = bool(getattr(browser, "plays_itself", False))
            if not open_browser:
                started.not_opened = "--no-browser"
                reporter.say(f"Not opening a browser (--no-browser). {_reach_advice(listener)}")
            elif no_browser is not None:
                started.not_opened = no_browser
                paste_advice = getattr(reporter, "paste_hint", "run again with --paste")
                reporter.say(
                    f"No browser can be opened here ({no_browser}). {_reach_advice(listener)}; "
                    f"or {paste_advice}."
                )
            else:
                started.remove_page = browser.open(request.url, reporter.say)
    except BaseException:
        started.close()
        raise
    return started


def _check_paste_port(target: LoopbackTarget) -> None:
    if target.port == 0:
        raise ConfigError(
            "cannot switch to paste mode: the redirect URI has port 0, which only the listener "
            "can fill in"
        )


def _reach_advice(listener: Listener) -> str:
    import socket

    target = listener.target
    where = f"{target.host}:{listener.port}"
    hostname = socket.gethostname()
    user = os.environ.get("USER") or os.environ.get("USERNAME")
    login_as = f"{user}@{hostname}" if user else hostname
    return (
        f"Open the URL in a browser that can reach {where}; from another machine, "
        f"forward the port first: ssh -L {listener.port}:{target.host}:{listener.port} {login_as}"
    )

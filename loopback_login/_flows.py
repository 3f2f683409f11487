"""The orchestration: log in, and read the stored token.

Order matters for how fast the login feels: the redirect port is bound and
the browser asked to open before aiohttp is imported; the receiver starts
serving while the person is still looking at the login page.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Callable
from typing import Protocol

from ._bind import bind, loopback_target
from ._browser import no_browser_reason, open_browser
from ._errors import ConfigError, LoginTimeout, LoopbackLoginError
from ._profile import Profile
from ._protocol import authorization_code_grant, authorize_request, token_request
from ._store import Store
from ._token import Token, record_from_token

DEFAULT_TIMEOUT = 300.0

Progress = Callable[[str], None]


def _stderr(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


class Browser(Protocol):
    """Something that opens a URL for the user; must return at once."""

    def open(self, url: str, progress: Progress) -> None: ...


class SystemBrowser:
    """The user's browser: ``$BROWSER``, else the platform's default."""

    def open(self, url: str, progress: Progress) -> None:
        reason = no_browser_reason()
        if reason is not None:
            progress(f"Cannot open a browser here ({reason}): open the URL above yourself.")
            return
        open_browser(
            url,
            on_failure=lambda: progress(
                "Could not start the browser: open the URL above yourself."
            ),
        )


class NoBrowser:
    """``--no-browser``: the URL is printed, nothing is opened."""

    def open(self, url: str, progress: Progress) -> None:
        pass


async def login(
    profile: Profile,
    *,
    store: Store | None = None,
    browser: Browser | None = None,
    timeout: float = DEFAULT_TIMEOUT,
    progress: Progress = _stderr,
) -> Token:
    """Log in through the browser and store the tokens under the profile's name."""
    store = store or Store()
    if not profile.redirect_uri:
        raise ConfigError(
            f"profile {profile.name!r} has no redirect URI: pass --redirect-uri with the one "
            "registered for your app, e.g. http://localhost:8080/callback"
        )
    if profile.authorize_url is None:
        raise ConfigError(f"profile {profile.name!r} has no authorize URL")
    target = loopback_target(profile.redirect_uri)
    # Bind before anything else: a busy port ends the login before a browser
    # opens (the program holding it would receive the code), and a fast
    # browser never meets a closed port.
    listener = bind(target)
    try:
        request = authorize_request(
            profile.authorize_url,
            client_id=profile.client_id,
            redirect_uri=listener.redirect_uri,
            scope=profile.scope,
            pkce=profile.pkce,
            extra_params=profile.authorize_params,
        )
        progress(f"Open this URL to log in: {request.url}")
        (browser or SystemBrowser()).open(request.url, progress)

        from ._http import post
        from ._protocol import parse_token_response
        from ._receiver import Receiver

        async with Receiver(listener, state=request.state, issuer=profile.issuer) as receiver:
            progress(
                f"Waiting for the browser to come back to {listener.redirect_uri} "
                f"(up to {timeout:g} s; Ctrl-C cancels)"
            )
            try:
                async with asyncio.timeout(timeout):
                    code = await receiver.wait()
            except TimeoutError:
                raise LoginTimeout(
                    f"timed out after {timeout:g} s waiting for the browser to come back to "
                    f"{listener.redirect_uri}; run login again (--timeout sets the wait)"
                ) from None
            try:
                exchange = token_request(
                    profile.token_url,
                    authorization_code_grant(code, request.redirect_uri, request.code_verifier),
                    client_id=profile.client_id,
                    client_secret=profile.client_secret,
                    client_auth=profile.client_auth,
                )
                now = time.time()
                response = await post(exchange)
                token = parse_token_response(
                    response.status,
                    response.reason,
                    response.content_type,
                    response.body,
                    now=now,
                    requested_scope=profile.scope,
                )
                store.write_record(
                    profile.name, record_from_token(token, profile.record_settings())
                )
            except LoopbackLoginError as exc:
                receiver.finish(exc, profile=profile.name)
                raise
            receiver.finish(None, profile=profile.name)
        return token
    finally:
        listener.close()

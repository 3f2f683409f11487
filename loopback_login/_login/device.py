"""The device login (RFC 8628): show a code, poll the token endpoint, store the tokens.

For machines whose browser cannot come back to them (SSH, containers, hosted
notebooks): the person opens the verification URI anywhere, types the user
code, and this side polls until the server answers. The forms and the meaning
of the answers are :mod:`.._protocol`'s; here are the requests, the waiting
and the clock. ``clock`` and ``sleep`` are parameters, as in
:class:`.._http.retry.RetryPolicy`, so a test runs the loop without waiting.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .._errors import AuthorizationDenied, ConfigError, LoginTimeout, TokenEndpointError
from .._http.retry import RetryPolicy
from .._protocol import (
    SLOW_DOWN_STEP,
    DeviceAuthorization,
    PollAnswer,
    device_authorization_request,
    device_token_request,
    parse_device_authorization,
    poll_answer,
)
from .._store import Store
from .._sync import in_daemon_thread
from .._tokens.endpoint import request_token
from .._ui import Reporter, default_reporter
from .start import LOGIN_TIMEOUT, SystemBrowser

if TYPE_CHECKING:
    from .._profiles.profile import Profile
    from .._tokens.token import Token
    from .start import Browser


async def device_login(
    profile: Profile,
    *,
    store: Store | None = None,
    browser: Browser | None = None,
    open_browser: bool = True,
    timeout: float = LOGIN_TIMEOUT,
    reporter: Reporter | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
) -> Token:
    """Log in with the device authorization grant and store the tokens under the profile's name.

    Ends with :class:`AuthorizationDenied` when the person refuses, and with
    :class:`LoginTimeout` when the code expires, ``timeout`` passes or the
    server says ``expired_token``.
    """
    from .flow import after_login, check_login_tokens, save_login

    store = store or Store()
    reporter = reporter or default_reporter()
    if profile.device_authorization_url is None:
        raise ConfigError(f"profile {profile.name!r} has no device authorization endpoint")
    if profile.secret_pending:
        from .._profiles.resolve import read_kept_secret

        profile = await in_daemon_thread(lambda: read_kept_secret(store, profile))
    started = clock()  # before the request: the code's lifetime is counted from here
    authorization = await _authorize(profile)
    where = authorization.verification_uri_complete or authorization.verification_uri
    show = getattr(reporter, "show_code", None)
    if show is not None:
        show(authorization.verification_uri, authorization.user_code, where)
    else:
        reporter.say(
            f"Open {authorization.verification_uri} and enter the code {authorization.user_code}"
        )
    if open_browser:
        browser = browser or SystemBrowser()
        if browser.unavailable() is None:
            browser.open(where, reporter.say)
    cancel = getattr(reporter, "cancel_hint", "Ctrl-C cancels")
    wait = min(timeout, authorization.expires_in or timeout)
    reporter.say(f"Waiting for the login to be approved there (up to {wait:g} s; {cancel})")
    countdown = asyncio.ensure_future(reporter.countdown(wait, "Waiting for the approval"))
    try:
        token = await _poll(profile, authorization, started, timeout, clock, sleep, reporter.say)
    finally:
        countdown.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await countdown
    check_login_tokens(profile, token, nonce=None)
    save_login(profile, store, token, flow="device")
    after_login(profile, store, token, reporter)
    return token


async def _authorize(profile: Profile) -> DeviceAuthorization:
    """The device authorization request (RFC 8628 §3.1)."""
    from .._http.client import send

    assert profile.device_authorization_url is not None
    request = device_authorization_request(
        profile.device_authorization_url,
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
        scope=profile.scope,
        resource=profile.resource,
    )
    # Sent again only when the connection failed: each answer is a new pair of codes.
    response = await send(request, policy=RetryPolicy())
    return parse_device_authorization(
        response.status, response.reason, response.content_type, response.body
    )


async def _poll(
    profile: Profile,
    authorization: DeviceAuthorization,
    started: float,
    timeout: float,
    clock: Callable[[], float],
    sleep: Callable[[float], Awaitable[None]],
    say: Callable[[str], None],
) -> Token:
    """Poll the token endpoint (RFC 8628 §3.4, §3.5) until it answers with tokens or a refusal.

    The code's ``expires_in`` is enforced here, not left to the server: some
    (django-oauth-toolkit) answer ``authorization_pending`` for ever.
    """
    request = device_token_request(
        profile.token_url,
        authorization.device_code,
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
        resource=profile.resource,
    )
    lifetime = authorization.expires_in
    expires = lifetime is not None and lifetime <= timeout
    deadline = started + (lifetime if expires and lifetime is not None else timeout)
    interval = authorization.interval
    while True:
        left = deadline - clock()
        if left > 0:
            # Never sooner than the interval (§3.5); never past the deadline.
            await sleep(min(interval, left))
        if clock() >= deadline:
            if expires:
                raise LoginTimeout(
                    f"the code expired after {lifetime:g} s before the login was approved; "
                    "run login again"
                )
            raise LoginTimeout(
                f"timed out after {timeout:g} s waiting for the login at "
                f"{authorization.verification_uri} to be approved; run login again "
                "(--timeout sets the wait)"
            )
        try:
            return await request_token(request, RetryPolicy(), requested_scope=profile.scope)
        except TokenEndpointError as exc:
            answer = poll_answer(exc)
            if answer is None:
                raise
            if answer is PollAnswer.SLOW_DOWN:
                interval += SLOW_DOWN_STEP
                say(f"The server asked to poll more slowly (slow_down): every {interval:g} s now")
            elif answer is PollAnswer.DENIED:
                raise AuthorizationDenied("access_denied", exc.description) from None
            elif answer is PollAnswer.EXPIRED:
                raise LoginTimeout(
                    "the code expired before the login was approved (expired_token); "
                    "run login again"
                ) from None

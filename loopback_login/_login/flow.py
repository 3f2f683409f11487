"""The login flow: receive the callback (or the pasted address), exchange the code, store.

A login's first moments (bind, URL, browser) are :mod:`.start`'s, done before
this module and aiohttp are imported; here the receiver serves while the
person is still on the login page, then the code is exchanged and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, TypeVar

from .._errors import (
    InvalidCallback,
    LoginTimeout,
    LoopbackLoginError,
    ProviderError,
    TokenEndpointError,
)
from .._http.retry import RetryPolicy
from .._protocol import (
    AuthorizeRequest,
    ClientAuth,
    authorization_code_grant,
    check_id_token,
    missing_scopes,
    parse_pasted,
    token_request,
)
from .._store import Store
from .._sync import in_daemon_thread
from .._tokens.endpoint import request_token
from .._tokens.record import made_by_demo, make_record
from .._ui import Reporter, default_reporter
from .start import LOGIN_TIMEOUT, Started, start_login, use_device

if TYPE_CHECKING:
    from .._profiles.profile import Profile
    from .._tokens.token import Token
    from .receiver import Receiver
    from .start import Browser

T = TypeVar("T")


async def login(
    profile: Profile,
    *,
    store: Store | None = None,
    browser: Browser | None = None,
    open_browser: bool = True,
    paste: bool = False,
    fallback_paste: bool = False,
    device: bool = False,
    timeout: float = LOGIN_TIMEOUT,
    reporter: Reporter | None = None,
) -> Token:
    """Log in through the browser and store the tokens under the profile's name.

    With ``paste`` there is no listener: the person pastes the address the
    browser landed on. ``fallback_paste`` switches to that when no browser can
    be opened here or the redirect port is taken. ``device`` logs in with the
    device authorization grant (RFC 8628), also chosen when no browser can be
    opened here and the server offers it.
    """
    reporter = reporter or default_reporter()
    if use_device(
        profile,
        device=device,
        paste=paste,
        open_browser=open_browser,
        reporter=reporter,
        browser=browser,
    ):
        from .device import device_login

        return await device_login(
            profile,
            store=store,
            browser=browser,
            open_browser=open_browser,
            timeout=timeout,
            reporter=reporter,
        )
    started = start_login(
        profile,
        browser=browser,
        open_browser=open_browser,
        paste=paste,
        fallback_paste=fallback_paste,
        reporter=reporter,
    )
    return await finish_login(profile, started, store=store, timeout=timeout, reporter=reporter)


async def finish_login(
    profile: Profile,
    started: Started,
    *,
    store: Store | None = None,
    timeout: float = LOGIN_TIMEOUT,
    reporter: Reporter | None = None,
) -> Token:
    """Wait for the callback (or the paste) of a started login, exchange the code, store."""
    store = store or Store()
    reporter = reporter or default_reporter()
    with started:
        if profile.secret_pending:
            # Read now, while the person is on the login page: the keyring stack
            # and D-Bus cost more than everything before the browser opened.
            from .._profiles.resolve import read_kept_secret

            profile = await in_daemon_thread(lambda: read_kept_secret(store, profile))
        check = _client_check(profile, started.request)
        probe = asyncio.ensure_future(_probe(profile.token_url, reporter))
        try:
            if started.listener is None:
                try:
                    code = await _unless_refused(
                        _pasted_code(profile, started.request, reporter, timeout), check
                    )
                except ProviderError as exc:
                    from .client_check import ClientRefused

                    if isinstance(exc, ClientRefused):
                        reporter.say("")  # end the unanswered prompt's line
                    raise
                token = await _exchange(profile, code, started.request)
                save_login(profile, store, token, flow="paste")
            else:
                token = await _receive(profile, store, started, reporter, timeout, check)
        finally:
            for task in (check, probe):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(BaseException):
                        await task
    after_login(profile, store, token, reporter)
    return token


def after_login(profile: Profile, store: Store, token: Token, reporter: Reporter) -> None:
    """Whatever the flow: say which scopes were not granted, remember the profile and the
    secret that worked."""
    _warn_dropped_scopes(profile, token, reporter)
    if not made_by_demo(profile.name, profile.provider):
        # The demo's provider, app and secret are thrown away with it (see run_demo).
        remember(store, profile, reporter.say)


def remember(store: Store, profile: Profile, say: Callable[[str], None]) -> None:
    """After a successful login: keep the profile's settings and the secret it used.

    The one place both the command line and Python save a profile, and only
    after success, so that a failed login leaves no half profile behind.
    """
    from .._profiles.profile import PROVIDER_CHOICE

    table = store.profile_table(profile.name) or {}
    changed = {k: v for k, v in profile.settings.items() if table.get(k) != v}
    # A provider chosen anew replaces the remembered one (see chosen_by_flags).
    changed.update((k, None) for k in PROVIDER_CHOICE if k in table and k not in profile.settings)
    if changed:
        store.save_profile(profile.name, changed)
        say(f"Remembered the settings of profile {profile.name!r} in {store.config_path}")
    if profile.client_secret and profile.client_auth is not ClientAuth.NONE:
        # The secret this login used is kept for the profile's later logins and refreshes.
        from .._profiles.secrets import binding, keep

        bound = binding(profile.token_url, profile.client_id)
        said = keep(store, profile.name, profile.client_secret, bound)
        if said:
            say(said)


def _warn_dropped_scopes(profile: Profile, token: Token, reporter: Reporter) -> None:
    """RFC 6749 §3.3: the provider may grant less than asked; say so, and the usual why."""
    missing = missing_scopes(profile.scope, token.scope)
    if not missing:
        return
    from .._text import clean as _clean

    line = (
        f"loopback-login: warning: the provider did not grant {' '.join(missing)} "
        f"(granted: {_clean(token.scope or '') or 'nothing named'})"
    )
    if "offline_access" in missing:
        # OIDC Core §11: offline_access is honoured only with prompt=consent.
        if profile.authorize_params.get("prompt") != "consent":
            line += "; many providers grant offline_access only with --prompt consent"
        if not token.refresh_token:
            line += "; so there is no refresh token"
    reporter.say(line)


async def _probe(token_url: str, reporter: Reporter) -> None:
    """Say at once, while the person is still signing in, when the token endpoint cannot
    be reached: the login could not finish, and the timeout would blame the browser.

    A connection (and a TLS handshake) only, no request: nothing is sent to the
    provider. Skipped where a proxy carries the requests (it may reach what we cannot).
    """
    import ssl
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(token_url)
    host, tls = parts.hostname or "", parts.scheme == "https"
    port = parts.port or (443 if tls else 80)
    proxies = urllib.request.getproxies()
    if parts.scheme in proxies and not urllib.request.proxy_bypass(host):
        return
    context = ssl.create_default_context() if tls else None
    try:
        async with asyncio.timeout(10):
            _, writer = await asyncio.open_connection(host, port, ssl=context)
    except TimeoutError:
        detail = "no answer within 10 s"
    except ssl.SSLError as exc:
        detail = f"TLS failed: {getattr(exc, 'verify_message', None) or exc.reason or 'error'}"
    except OSError as exc:  # asyncio's refusal has the errno but its own strerror
        detail = (os.strerror(exc.errno) if exc.errno else exc.strerror) or type(exc).__name__
    else:
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return
    reporter.say(
        f"loopback-login: warning: the provider's token endpoint at {parts.netloc} cannot be "
        f"reached ({detail}): the login cannot finish unless that changes. Still waiting."
    )


def _client_check(profile: Profile, request: AuthorizeRequest) -> asyncio.Task[None] | None:
    """Start checking the client at the token endpoint (see _client_check), unless turned off."""
    from .client_check import check_client, wanted

    if not wanted(profile):
        return None

    return asyncio.ensure_future(check_client(profile, request.redirect_uri, request.code_verifier))


async def _unless_refused(awaitable: Awaitable[T], check: asyncio.Task[None] | None) -> T:
    """Await ``awaitable``; if the client check refuses the client first, raise that at once."""
    if check is None:
        return await awaitable
    main = asyncio.ensure_future(awaitable)
    try:
        await asyncio.wait({main, check}, return_when=asyncio.FIRST_COMPLETED)
        if not main.done():
            check.result()  # ClientRefused ends the login; a passed check lets it go on
        return await main
    finally:
        if not main.done():
            main.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await main


async def _receive(
    profile: Profile,
    store: Store,
    started: Started,
    reporter: Reporter,
    timeout: float,
    check: asyncio.Task[None] | None = None,
) -> Token:
    # aiohttp is imported only now, while the person looks at the login page,
    # and the client side too, so that the code is exchanged without delay.
    from .._http import client as _http  # noqa: F401
    from .receiver import Receiver

    request, listener = started.request, started.listener
    assert listener is not None
    async with Receiver(
        listener,
        state=request.state,
        issuer=profile.issuer,
        issuer_required=profile.issuer_required,
        back_to=getattr(reporter, "place", "the terminal"),
        retry=getattr(reporter, "retry_hint", "run the login again"),
    ) as receiver:
        cancel = getattr(reporter, "cancel_hint", "Ctrl-C cancels")
        reporter.say(
            f"Waiting for the browser to come back to {listener.redirect_uri} "
            f"(up to {timeout:g} s; {cancel})"
        )
        countdown = asyncio.ensure_future(reporter.countdown(timeout, "Waiting for the browser"))
        try:
            async with asyncio.timeout(timeout):
                code = await _unless_refused(receiver.wait(), check)
        except TimeoutError:
            raise LoginTimeout(_timeout_line(timeout, started, receiver, reporter)) from None
        finally:
            countdown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await countdown
        try:
            token = await _exchange(profile, code, request)
        except LoopbackLoginError as exc:
            receiver.finish(exc, profile=profile.name)
            raise
        # The page tells what the exchange said while the tokens are written: the
        # write's fsyncs are the slowest step of all, and the terminal says where
        # they went (or why they could not).
        receiver.finish(None, profile=profile.name, scope=token.scope)
        await asyncio.to_thread(save_login, profile, store, token, flow="loopback")
        return token


def _timeout_line(timeout: float, started: Started, receiver: Receiver, reporter: Reporter) -> str:
    """The timeout, and whether anything came back: a silent listener has usual causes,
    and which ones depends on whether a browser was opened here at all."""
    assert started.listener is not None
    redirect_uri = started.listener.redirect_uri
    waited = f"timed out after {timeout:g} s waiting for the browser to come back to {redirect_uri}"
    again = "run login again (--timeout sets the wait)"
    if receiver.requests_seen == 0 and started.not_opened is not None:
        paste = getattr(reporter, "paste_hint", "run again with --paste")
        return (
            f"{waited}; nothing reached it, and no browser was opened here "
            f"({started.not_opened}): open the printed URL in a browser that can reach "
            f"{redirect_uri}, or {paste}"
        )
    if receiver.requests_seen == 0 and started.played:
        return (
            f"{waited}; the demo played the browser itself and it never came back: run "
            "`loopback-login demo` again (--timeout sets the wait)"
        )
    if receiver.requests_seen == 0:
        return (
            f"{waited}; nothing reached it. Usually the provider showed its own error page "
            "instead of redirecting: the redirect URI is not registered exactly as "
            f"{redirect_uri} (scheme, host, port and path byte for byte), or it refused a "
            f"parameter (such as --prompt). Look at the browser, then {again}"
        )
    if receiver.last_refusal is not None:
        return (
            f"{waited}; {receiver.requests_seen} request(s) reached it, none this login's "
            f"answer (last: {receiver.last_refusal}); {again}"
        )
    return f"{waited}; {receiver.requests_seen} request(s) reached it, none a callback; {again}"


async def _pasted_code(
    profile: Profile, request: AuthorizeRequest, reporter: Reporter, timeout: float
) -> str:
    """Paste mode: the person brings back the address the browser landed on."""
    reporter.show_url(request.url)
    reporter.say(
        f"Log in there. The browser then goes to {request.redirect_uri}, which may not load: "
        "copy the whole address from the address bar and paste it here (the code alone works "
        "too)."
    )
    refused: InvalidCallback | None = None
    try:
        async with asyncio.timeout(timeout):
            while True:
                try:
                    text = await in_daemon_thread(lambda: reporter.ask("Address or code: "))
                except EOFError:
                    if refused is not None:
                        raise refused from None
                    raise LoginTimeout("cancelled: nothing was pasted") from None
                try:
                    return parse_pasted(
                        text,
                        expected_state=request.state,
                        pkce=request.code_verifier is not None,
                        expected_issuer=profile.issuer,
                        issuer_required=profile.issuer_required,
                    )
                except InvalidCallback as exc:
                    refused = exc
                    reporter.say(f"Refused: {exc}. Paste the address the login ended on.")
    except TimeoutError as exc:
        if isinstance(exc, LoginTimeout):
            raise  # "cancelled", from inside
        raise LoginTimeout(
            f"timed out after {timeout:g} s waiting for the pasted address; run login again "
            "(--timeout sets the wait)"
        ) from None


async def _exchange(profile: Profile, code: str, request: AuthorizeRequest) -> Token:
    """Trade the code for tokens (RFC 6749 §4.1.3), the id_token checked."""
    exchange = token_request(
        profile.token_url,
        authorization_code_grant(
            code, request.redirect_uri, request.code_verifier, profile.resource
        ),
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
    )
    # Retried only when the connection failed: a sent code is spent.
    try:
        token = await request_token(exchange, RetryPolicy(), requested_scope=profile.scope)
    except TokenEndpointError as exc:
        from .client_check import ClientRefused, refusal_message, refused

        if refused(exc):
            # Said as the client check says it (what to fix), which --no-client-check skips.
            raise ClientRefused(
                refusal_message(profile, when="when the code was exchanged")
            ) from None
        raise
    check_login_tokens(profile, token, nonce=request.nonce)
    return token


def check_login_tokens(profile: Profile, token: Token, *, nonce: str | None) -> None:
    """The id_token of a login's answer, if any, checked (OIDC Core §3.1.3.7)."""
    if nonce is not None or "id_token" in token.raw:
        # OIDC Core §3.1.3.3: asked with openid, the answer carries an id_token.
        check_id_token(
            token.raw.get("id_token"),
            issuer=profile.issuer,
            client_id=profile.client_id,
            nonce=nonce,
            now=time.time(),
        )


def save_login(profile: Profile, store: Store, token: Token, *, flow: str) -> None:
    """Store the tokens of a login made by ``flow`` (``loopback``, ``paste``, ``device``)."""
    settings = {**profile.record_settings(), "flow": flow}
    store.write_record(profile.name, make_record(token, settings))

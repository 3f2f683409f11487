"""The orchestration: log in, refresh, client credentials, log out.

A login's first moments (bind, URL, browser) are :mod:`._start`'s, done before
this module and aiohttp are imported; here the receiver serves while the
person is still on the login page, then the code is exchanged and stored.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, NamedTuple, TypeVar

from .._errors import (
    ConfigError,
    InvalidCallback,
    LoginRequired,
    LoginTimeout,
    LoopbackLoginError,
    NetworkError,
    ProviderError,
    TokenEndpointError,
)
from .._http.retry import DEFAULT_RETRY, RetryPolicy
from .._profiles.profile import Profile
from .._protocol import (
    AuthorizeRequest,
    ClientAuth,
    TokenRequest,
    authorization_code_grant,
    check_id_token,
    client_credentials_grant,
    means_login_required,
    missing_scopes,
    parse_pasted,
    parse_token_response,
    refresh_grant,
    revocation_request,
    token_request,
)
from .._store import Store
from .._tokens.record import made_by_demo, record_skew, still_valid
from .._tokens.token import Token, record_from_token
from .._ui import Reporter, default_reporter
from .bind import Listener
from .start import LOGIN_TIMEOUT, Started, start_login

if TYPE_CHECKING:
    from .receiver import Receiver
    from .start import Browser

T = TypeVar("T")


#: Said by every command on the demo profile that needs the demo provider once it has stopped.
DEMO_GONE = (
    "the demo provider runs only during `loopback-login demo`: run it again (or keep it "
    "running with `loopback-login demo --serve`), or clear the profile with "
    "`loopback-login logout demo --forget`"
)


def _demo_gone(record: dict[str, object], exc: NetworkError) -> bool:
    """Is this the demo profile's provider, gone because `loopback-login demo` has ended?"""
    return record.get("provider") == "demo" and not exc.sent


def _running_demo_secret(store: Store, record: Mapping[str, object]) -> str | None:
    """The throwaway secret of the `loopback-login demo --serve` that issued ``record``.

    ``None`` once that demo has stopped: its provider lived only as long as it
    did, and its port may now be anyone's, so nothing is sent there again.
    """
    info = store.read_demo()
    if info is None:
        return None
    pid, base, secret = info.get("pid"), info.get("base_url"), info.get("client_secret")
    token_url = record.get("token_url")
    if not (
        isinstance(pid, int)
        and isinstance(base, str)
        and isinstance(secret, str)
        and isinstance(token_url, str)
        and token_url.startswith(base.rstrip("/") + "/")
    ):
        return None
    if os.name == "posix":  # (on Windows os.kill would end the process)
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None  # it died without saying so
        except PermissionError:
            return None  # the pid is another user's process now
    return secret


async def login(
    profile: Profile,
    *,
    store: Store | None = None,
    browser: Browser | None = None,
    open_browser: bool = True,
    paste: bool = False,
    fallback_paste: bool = False,
    timeout: float = LOGIN_TIMEOUT,
    reporter: Reporter | None = None,
) -> Token:
    """Log in through the browser and store the tokens under the profile's name.

    With ``paste`` there is no listener: the person pastes the address the
    browser landed on. ``fallback_paste`` switches to that when no browser can
    be opened here or the redirect port is taken.
    """
    reporter = reporter or default_reporter()
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
        check = _client_check(profile, started.request)
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
                token = await _exchange(profile, store, code, started.request)
            else:
                token = await _receive(
                    profile, store, started.request, started.listener, reporter, timeout, check
                )
        finally:
            if check is not None:
                check.cancel()
                with contextlib.suppress(BaseException):
                    await check
    _warn_dropped_scopes(profile, token, reporter)
    if (
        profile.client_secret
        and profile.client_auth is not ClientAuth.NONE
        # The demo's secret is thrown away with its provider (see run_demo).
        and not made_by_demo(profile.name, {"provider": profile.provider})
    ):
        # The secret this login used is kept for the profile's later logins and refreshes.
        from .._profiles.secrets import keep

        said = keep(store, profile.name, profile.client_secret)
        if said:
            reporter.say(said)
    return token


def _warn_dropped_scopes(profile: Profile, token: Token, reporter: Reporter) -> None:
    """RFC 6749 §3.3: the provider may grant less than asked; say so, and the usual why."""
    missing = missing_scopes(profile.scope, token.scope)
    if not missing:
        return
    from .._protocol import _clean

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


def _client_check(profile: Profile, request: AuthorizeRequest) -> asyncio.Task[None] | None:
    """Start checking the client at the token endpoint (see _client_check), unless turned off."""
    if not profile.client_check:
        return None
    from .client_check import check_client

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
    request: AuthorizeRequest,
    listener: Listener,
    reporter: Reporter,
    timeout: float,
    check: asyncio.Task[None] | None = None,
) -> Token:
    # aiohttp is imported only now, while the person looks at the login page,
    # and the client side too, so that the code is exchanged without delay.
    from .._http import client as _http  # noqa: F401
    from .receiver import Receiver

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
            raise LoginTimeout(_timeout_line(timeout, listener.redirect_uri, receiver)) from None
        finally:
            countdown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await countdown
        try:
            token = await _exchange(profile, store, code, request)
        except LoopbackLoginError as exc:
            receiver.finish(exc, profile=profile.name)
            raise
        receiver.finish(None, profile=profile.name, scope=token.scope)
        return token


def _timeout_line(timeout: float, redirect_uri: str, receiver: Receiver) -> str:
    """The timeout, and whether anything came back: a silent listener has usual causes."""
    waited = f"timed out after {timeout:g} s waiting for the browser to come back to {redirect_uri}"
    again = "run login again (--timeout sets the wait)"
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


async def _exchange(profile: Profile, store: Store, code: str, request: AuthorizeRequest) -> Token:
    """Trade the code for tokens (RFC 6749 §4.1.3) and store them."""
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
    token = await _request_token(exchange, RetryPolicy(), requested_scope=profile.scope)
    if request.nonce is not None or "id_token" in token.raw:
        # OIDC Core §3.1.3.3: asked with openid, the answer carries an id_token.
        check_id_token(
            token.raw.get("id_token"),
            issuer=profile.issuer,
            client_id=profile.client_id,
            nonce=request.nonce,
            now=time.time(),
        )
    store.write_record(profile.name, record_from_token(token, profile.record_settings()))
    return token


async def _request_token(
    request: TokenRequest,
    policy: RetryPolicy,
    *,
    retry_statuses: bool = False,
    resend_after_sent: bool = False,
    requested_scope: str | None = None,
    previous_refresh_token: str | None = None,
) -> Token:
    from .._http.client import send

    now = time.time()  # before sending: expires_at errs early, never late
    response = await send(
        request, policy=policy, retry_statuses=retry_statuses, resend_after_sent=resend_after_sent
    )
    return parse_token_response(
        response.status,
        response.reason,
        response.content_type,
        response.body,
        now=now,
        requested_scope=requested_scope,
        previous_refresh_token=previous_refresh_token,
    )


# --- profiles with an issuer --------------------------------------------------------


async def resolve(
    store: Store,
    name: str,
    flags: dict[str, object],
    *,
    register: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> Profile:
    """Resolve a profile, reading its issuer's metadata first when it names one (cached).

    A profile with a resource finds its issuer through the resource (RFC 9728);
    with ``register`` (a login) and no client id, it registers one (RFC 7591).
    The secret: given, stored, the environment, else asked for (see _secrets).
    """
    from .._profiles import secrets as _secrets
    from .._profiles.discovery import discover
    from .._profiles.profile import issuer_of, resource_of

    table = store.profile_table(name)
    resource = resource_of(table, flags)
    if resource is not None:
        from .._profiles.registration import prepare

        prepared = await prepare(store, name, resource, table, flags, register=register, say=say)
        return _secrets.resolve(
            store, name, prepared.table, prepared.flags, metadata=prepared.metadata
        )
    issuer = issuer_of(table, flags)
    metadata = await discover(issuer, store=store, name=name) if issuer else None
    return _secrets.resolve(store, name, table, flags, metadata=metadata)


# --- the stored token, refreshed -------------------------------------------------


def _client_secret(store: Store, name: str, given: str | None) -> str | None:
    """The secret for a stored profile: given (flag or argument), kept, the environment."""
    from .._profiles.secrets import choose

    return choose(store, name, given)[0]


def _record_client(
    store: Store, name: str, record: dict[str, object], given_secret: str | None
) -> tuple[str, ClientAuth, str | None]:
    """Client id, authentication and secret for the token endpoint, from a token record."""
    client_id = record.get("client_id")
    auth_name = str(record.get("client_auth") or "none")
    if not isinstance(client_id, str) or auth_name not in set(ClientAuth):
        raise LoginRequired(
            f"{store.token_path(name)} lacks the client settings; "
            f"run `loopback-login login {name}` again"
        )
    client_auth = ClientAuth(auth_name)
    secret = None
    if made_by_demo(name, record):
        # Only the running demo's own secret: never one from a flag, the
        # environment or the config for it.
        secret = _running_demo_secret(store, record)
        if secret is None:
            raise LoginRequired(f"cannot refresh profile {name!r}: {DEMO_GONE}")
    elif client_auth is not ClientAuth.NONE:
        secret = _client_secret(store, name, given_secret)
        if secret is None:
            from .._profiles.secrets import missing_message

            raise ConfigError(missing_message(name))
    return client_id, client_auth, secret


async def refresh_stored(
    store: Store,
    name: str,
    *,
    force: bool = False,
    client_secret: str | None = None,
    retry: RetryPolicy = DEFAULT_RETRY,
    rejected: str | None = None,
) -> Token:
    """The profile's access token, refreshed when it expires within its skew (or ``force``).

    ``rejected`` is an access token an API has just refused (401): it is
    refreshed unless the stored token is already another one, so that many
    requests refused at once cause one refresh.

    Single flight across processes and threads: under the profile's file lock
    the record is read again, and a token another process has just refreshed
    is used as it is. The rotated refresh token is on disk before we return.
    """
    if not force and rejected is None:
        token = store.valid_token(name)
        if token is not None:
            return token
    async with store.refresh_lock(name):
        token, record = store.load_token(name)
        if (
            not force
            and token.access_token != rejected
            and not token.is_expired(record_skew(record))
        ):
            return token  # another process refreshed while we waited for the lock
        if not token.refresh_token:
            what = "was refused by the API" if rejected else "has expired"
            raise LoginRequired(
                f"the access token of profile {name!r} {what} and there is no refresh "
                f"token; run `loopback-login login {name}`"
            )
        token_url = record.get("token_url")
        if not isinstance(token_url, str):
            raise LoginRequired(
                f"{store.token_path(name)} has no token URL; run `loopback-login login {name}`"
            )
        client_id, client_auth, secret = _record_client(store, name, record, client_secret)
        resource = record.get("resource")
        request = token_request(
            token_url,
            refresh_grant(
                token.refresh_token, resource=resource if isinstance(resource, str) else None
            ),
            client_id=client_id,
            client_secret=secret,
            client_auth=client_auth,
        )
        try:
            fresh = await _request_token(
                request,
                retry,
                retry_statuses=True,
                requested_scope=token.scope,
                previous_refresh_token=token.refresh_token,
            )
        except NetworkError as exc:
            if _demo_gone(record, exc):
                raise LoginRequired(f"cannot refresh profile {name!r}: {DEMO_GONE}") from None
            raise
        except TokenEndpointError as exc:
            if means_login_required(exc):
                raise LoginRequired(
                    f"the provider no longer accepts the refresh token of profile {name!r} "
                    f"({exc.error}); run `loopback-login login {name}` again"
                ) from None
            raise
        # Persist first, before anything can fail: a rotated refresh token that
        # is not saved strands the user at the next refresh.
        store.write_record(name, record_from_token(fresh, record))
        if "id_token" in fresh.raw:
            # OIDC Core §12.2: a refreshed id_token keeps its iss and aud.
            issuer = record.get("issuer")
            check_id_token(
                fresh.raw["id_token"],
                issuer=issuer if isinstance(issuer, str) else None,
                client_id=client_id,
                nonce=None,
                now=time.time(),
            )
        return fresh


# --- client credentials ------------------------------------------------------------


async def fetch_client_credentials(
    profile: Profile, store: Store, *, retry: RetryPolicy = DEFAULT_RETRY
) -> Token:
    """A client-credentials token (RFC 6749 §4.4), reused from the store while it is valid."""
    path = store.client_credentials_path(profile.name)
    try:
        cached, record = store.load_token(profile.name, path)
    except LoginRequired:
        pass  # none yet, or unreadable: fetched again
    else:
        # The cached token serves the same client, endpoint and requested scope only.
        same = (
            record.get("client_id"),
            record.get("client_credentials_url"),
            record.get("requested_scope"),
        ) == (profile.client_id, profile.client_credentials_url, profile.scope)
        if same and not cached.is_expired(profile.skew):
            return cached
    if profile.client_credentials_url is None:
        raise ConfigError(f"profile {profile.name!r} has no client credentials URL")
    request = token_request(
        profile.client_credentials_url,
        client_credentials_grant(profile.scope),
        client_id=profile.client_id,
        client_secret=profile.client_secret,
        client_auth=profile.client_auth,
    )
    # No refresh token is at stake: any transient failure may be retried.
    token = await _request_token(
        request,
        retry,
        retry_statuses=True,
        resend_after_sent=True,
        requested_scope=profile.scope,
    )
    fetched = record_from_token(token, profile.record_settings())
    fetched["requested_scope"] = profile.scope  # what the cache is keyed by, above
    store.write_record(profile.name, fetched, path)
    return token


# --- logout --------------------------------------------------------------------------


class LoggedOut(NamedTuple):
    """What ``logout`` did with one token file."""

    path: str
    #: "login" (``tokens/NAME.json``) or "client-credentials".
    kind: str
    revoked: bool
    #: Why the tokens were not revoked, when they were not.
    not_revoked: str | None
    #: Until when the provider still honours them, when they were not revoked.
    still_valid: str | None


async def logout(
    store: Store, name: str, *, client_secret: str | None = None, revoke: bool = True
) -> list[LoggedOut]:
    """Revoke the profile's tokens where the provider can (RFC 7009), then delete them here.

    Both kinds: the login's tokens and the client-credentials token. Returns
    one :class:`LoggedOut` per file deleted (empty when nothing was stored).
    When the provider refuses to revoke, the tokens are deleted all the same
    and the error says they stay valid there; when revoking cannot even be
    tried (no client secret), nothing is deleted and the error says how to proceed.
    """
    stored: list[tuple[str, str, dict[str, object] | None]] = []
    for kind, path in (
        ("login", store.token_path(name)),
        ("client-credentials", store.client_credentials_path(name)),
    ):
        try:
            record = store.read_record(name, path)
        except LoginRequired:
            record = None  # unreadable: nothing to revoke, still delete
        else:
            if record is None:
                continue  # none stored
        stored.append((kind, path, record))
    # Every request is built before anything is sent or deleted: a missing
    # secret stops the logout with all the tokens still in place.
    plans: list[tuple[str, str, dict[str, object] | None, TokenRequest | None, str | None]] = []
    for kind, path, record in stored:
        request, why_not = None, None
        if record is None:
            why_not = "the file was unreadable"
        elif not revoke:
            why_not = "--local-only"
        elif made_by_demo(name, record) and _running_demo_secret(store, record) is None:
            # Its tokens lived in the demo provider's memory and died with it;
            # its port may be anyone's now.
            why_not = "the demo provider that issued them has stopped, and they with it"
        else:
            url = await _revocation_url(record)
            if url is None:
                why_not = "no revocation endpoint is known for this provider"
            else:
                try:
                    request = _revocation(store, name, record, url, client_secret)
                except ConfigError as exc:
                    raise ConfigError(
                        f"{exc}; or log out with --local-only to delete the tokens without revoking"
                    ) from None
                if request is None:
                    why_not = "the file holds no token"
        plans.append((kind, path, record, request, why_not))
    done: list[LoggedOut] = []
    failures: list[str] = []
    for kind, path, record, request, why_not in plans:
        if request is not None:
            try:
                await _send_revocation(request)
            except ProviderError as exc:
                request, why_not = None, f"the provider refused: {exc}"
                failures.append(f"{exc}")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
        valid = (
            None
            if request is not None or record is None or made_by_demo(name, record)
            else still_valid(record)
        )
        done.append(LoggedOut(path, kind, request is not None, why_not, valid))
    if failures:
        unrevoked = "; ".join(
            f"{entry.path} stays valid at the provider: {entry.still_valid}"
            for entry in done
            if not entry.revoked and entry.still_valid
        )
        raise ProviderError(
            f"deleted the tokens of profile {name!r} here, but revoking them at the provider "
            f"failed: {failures[0]}; {unrevoked}"
        )
    return done


async def _revocation_url(record: Mapping[str, object]) -> str | None:
    """The record's revocation endpoint; for a discovered provider, read again if it had none.

    A token saved before the provider's metadata listed the endpoint (or by a
    version that read only one of its two documents) can still be revoked.
    """
    url = record.get("revocation_url")
    if isinstance(url, str):
        return url
    issuer = record.get("issuer")
    if not isinstance(issuer, str):
        return None
    from .._profiles.discovery import discover

    try:
        return (await discover(issuer)).revocation_endpoint
    except ProviderError:
        return None


def _revocation(
    store: Store, name: str, record: dict[str, object], url: str, client_secret: str | None
) -> TokenRequest | None:
    """RFC 7009: revoke the refresh token (which ends the grant), else the access token."""
    refresh_token, access_token = record.get("refresh_token"), record.get("access_token")
    token, hint = (
        (refresh_token, "refresh_token")
        if isinstance(refresh_token, str)
        else (access_token, "access_token")
    )
    if not isinstance(token, str):
        return None
    client_id, client_auth, secret = _record_client(store, name, record, client_secret)
    return revocation_request(
        url, token, hint, client_id=client_id, client_secret=secret, client_auth=client_auth
    )


async def _send_revocation(request: TokenRequest) -> None:
    from .._http.client import send
    from .._protocol import parse_error_response

    response = await send(
        request, policy=RetryPolicy(), retry_statuses=True, resend_after_sent=True
    )
    # RFC 7009 §2.2: 200 whether or not the token was still valid.
    if response.status != 200:
        raise parse_error_response(
            response.status,
            response.reason,
            response.content_type,
            response.body,
            endpoint="revocation endpoint",
        )


async def in_daemon_thread(function: Callable[[], T]) -> T:
    """Run a blocking call (the paste prompt) off the loop, in a daemon thread.

    Not the default executor: ``asyncio.run`` joins it at exit, so a prompt
    nobody answers would hold the program open after a timeout.
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(result: T | None, error: BaseException | None) -> None:
        if future.done():
            return
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)  # type: ignore[arg-type]

    def run() -> None:
        try:
            outcome: tuple[T | None, BaseException | None] = (function(), None)
        except BaseException as exc:
            outcome = (None, exc)
        # The loop may be gone by now (timed out and closed): nobody is waiting then.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(settle, *outcome)

    threading.Thread(target=run, name="loopback-login-prompt", daemon=True).start()
    return await future

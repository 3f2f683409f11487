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
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from ._bind import Listener
from ._errors import (
    ConfigError,
    InvalidCallback,
    LoginRequired,
    LoginTimeout,
    LoopbackLoginError,
    ProviderError,
    TokenEndpointError,
)
from ._profile import SECRET_ENV, Profile
from ._protocol import (
    AuthorizeRequest,
    ClientAuth,
    TokenRequest,
    authorization_code_grant,
    check_id_token,
    client_credentials_grant,
    means_login_required,
    parse_pasted,
    parse_token_response,
    refresh_grant,
    revocation_request,
    token_request,
)
from ._record import record_skew
from ._retry import RetryPolicy
from ._start import Started, start_login
from ._store import Store
from ._token import Token, record_from_token
from ._ui import Reporter, default_reporter

if TYPE_CHECKING:
    from ._start import Browser

T = TypeVar("T")

DEFAULT_TIMEOUT = 300.0


async def login(
    profile: Profile,
    *,
    store: Store | None = None,
    browser: Browser | None = None,
    open_browser: bool = True,
    paste: bool = False,
    fallback_paste: bool = False,
    timeout: float = DEFAULT_TIMEOUT,
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
    timeout: float = DEFAULT_TIMEOUT,
    reporter: Reporter | None = None,
) -> Token:
    """Wait for the callback (or the paste) of a started login, exchange the code, store."""
    store = store or Store()
    reporter = reporter or default_reporter()
    with started:
        if started.listener is None:
            code = await _pasted_code(profile, started.request, reporter, timeout)
            return await _exchange(profile, store, code, started.request)
        return await _receive(profile, store, started.request, started.listener, reporter, timeout)


async def _receive(
    profile: Profile,
    store: Store,
    request: AuthorizeRequest,
    listener: Listener,
    reporter: Reporter,
    timeout: float,
) -> Token:
    # aiohttp is imported only now, while the person looks at the login page,
    # and the client side too, so that the code is exchanged without delay.
    from . import _http  # noqa: F401
    from ._receiver import Receiver

    async with Receiver(
        listener,
        state=request.state,
        issuer=profile.issuer,
        issuer_required=profile.issuer_required,
    ) as receiver:
        reporter.say(
            f"Waiting for the browser to come back to {listener.redirect_uri} "
            f"(up to {timeout:g} s; Ctrl-C cancels)"
        )
        countdown = asyncio.ensure_future(reporter.countdown(timeout, "Waiting for the browser"))
        try:
            async with asyncio.timeout(timeout):
                code = await receiver.wait()
        except TimeoutError:
            raise LoginTimeout(
                f"timed out after {timeout:g} s waiting for the browser to come back to "
                f"{listener.redirect_uri}; run login again (--timeout sets the wait)"
            ) from None
        finally:
            countdown.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await countdown
        try:
            token = await _exchange(profile, store, code, request)
        except LoopbackLoginError as exc:
            receiver.finish(exc, profile=profile.name)
            raise
        receiver.finish(None, profile=profile.name)
        return token


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
    from ._http import send

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
    env_secret: str | None,
    register: bool = False,
    say: Callable[[str], None] = lambda line: None,
) -> Profile:
    """Resolve a profile, reading its issuer's metadata first when it names one (cached).

    A profile with a resource finds its issuer through the resource (RFC 9728);
    with ``register`` (a login) and no client id, it registers one (RFC 7591).
    """
    from ._discovery import discover
    from ._profile import issuer_of, resolve_profile, resource_of

    table = store.profile_table(name)
    resource = resource_of(table, flags)
    if resource is not None:
        from ._dynamic import prepare

        prepared = await prepare(store, name, resource, table, flags, register=register, say=say)
        return resolve_profile(
            name,
            prepared.table,
            prepared.flags,
            env_secret=env_secret,
            where=store.config_path,
            metadata=prepared.metadata,
        )
    issuer = issuer_of(table, flags)
    metadata = await discover(issuer, store=store, name=name) if issuer else None
    return resolve_profile(
        name, table, flags, env_secret=env_secret, where=store.config_path, metadata=metadata
    )


# --- the stored token, refreshed -------------------------------------------------


def _client_secret(store: Store, name: str, given: str | None) -> str | None:
    """The secret for a stored profile: given (flag or argument), config.toml, the environment."""
    if given:
        return given
    table = store.profile_table(name) or {}
    secret = table.get("client_secret")
    return secret if isinstance(secret, str) and secret else os.environ.get(SECRET_ENV) or None


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
    if client_auth is not ClientAuth.NONE:
        secret = _client_secret(store, name, given_secret)
        if secret is None:
            raise ConfigError(
                f"profile {name!r} was saved without its client secret: set ${SECRET_ENV} "
                "or pass --client-secret"
            )
    return client_id, client_auth, secret


async def refresh_stored(
    store: Store, name: str, *, force: bool = False, client_secret: str | None = None
) -> Token:
    """The profile's access token, refreshed when it expires within its skew (or ``force``).

    Single flight across processes and threads: under the profile's file lock
    the record is read again, and a token another process has just refreshed
    is used as it is. The rotated refresh token is on disk before we return.
    """
    if not force:
        token = store.valid_token(name)
        if token is not None:
            return token
    async with store.refresh_lock(name):
        token, record = store.load_token(name)
        if not force and not token.is_expired(record_skew(record)):
            return token  # another process refreshed while we waited for the lock
        if not token.refresh_token:
            raise LoginRequired(
                f"the access token of profile {name!r} has expired and there is no refresh "
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
                RetryPolicy(),
                retry_statuses=True,
                requested_scope=token.scope,
                previous_refresh_token=token.refresh_token,
            )
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


async def fetch_client_credentials(profile: Profile, store: Store) -> Token:
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
        RetryPolicy(),
        retry_statuses=True,
        resend_after_sent=True,
        requested_scope=profile.scope,
    )
    fetched = record_from_token(token, profile.record_settings())
    fetched["requested_scope"] = profile.scope  # what the cache is keyed by, above
    store.write_record(profile.name, fetched, path)
    return token


# --- logout --------------------------------------------------------------------------


async def logout(
    store: Store, name: str, *, client_secret: str | None = None, revoke: bool = True
) -> str | None:
    """Revoke the profile's tokens where the provider can (RFC 7009), then delete them here.

    Returns what was done ("revoked at the provider and deleted", "deleted"),
    or ``None`` when nothing was stored. When the provider fails to revoke, the
    tokens are deleted all the same and the error says so; when revoking cannot
    even be tried (no client secret), nothing is deleted and the error says how
    to proceed.
    """
    try:
        record = store.read_record(name)
    except LoginRequired:
        record = None  # unreadable: nothing to revoke, still delete
    revoking = revoke and record is not None and isinstance(record.get("revocation_url"), str)
    failure: ProviderError | None = None
    if revoking:
        assert record is not None
        try:
            await _revoke(store, name, record, client_secret)
        except ProviderError as exc:
            failure = exc
        except ConfigError as exc:
            raise ConfigError(
                f"{exc}; or log out with --local-only to delete the tokens without revoking"
            ) from None
    deleted = store.delete_record(name)
    if failure is not None:
        raise ProviderError(
            f"deleted the tokens of profile {name!r} here, but revoking them at the provider "
            f"failed: {failure}"
        )
    if not deleted:
        return None
    return "revoked at the provider and deleted" if revoking else "deleted"


async def _revoke(
    store: Store, name: str, record: dict[str, object], client_secret: str | None
) -> None:
    """RFC 7009: revoke the refresh token (which ends the grant), else the access token."""
    from ._http import send
    from ._protocol import parse_error_response

    refresh_token, access_token = record.get("refresh_token"), record.get("access_token")
    token, hint = (
        (refresh_token, "refresh_token")
        if isinstance(refresh_token, str)
        else (access_token, "access_token")
    )
    if not isinstance(token, str):
        return
    client_id, client_auth, secret = _record_client(store, name, record, client_secret)
    request = revocation_request(
        str(record["revocation_url"]),
        token,
        hint,
        client_id=client_id,
        client_secret=secret,
        client_auth=client_auth,
    )
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

"""The Python API: async functions and their synchronous twins.

>>> import loopback_login
>>> token = loopback_login.get_token_sync("home")        # or: await get_token("home")
>>> requests.get(url, headers=token.header)
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Mapping
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypedDict, TypeVar

from ._errors import python_errors
from ._login.start import LOGIN_TIMEOUT
from ._profiles.profile import Profile
from ._store import Store, check_profile_name
from ._sync import run_sync
from ._tokens.client_credentials import fetch_client_credentials
from ._tokens.current import fresh_token
from ._tokens.refresh import refresh_stored
from ._tokens.token import Token

if TYPE_CHECKING:
    from typing_extensions import Unpack  # typing.Unpack for **kwargs is Python 3.12+

P = ParamSpec("P")
T = TypeVar("T")


class ProfileSettings(TypedDict, total=False):
    """The profile keys a call may give, each winning over ``[profiles.NAME]`` in config.toml.

    The same names as the command's flags (``--client-id`` is ``client_id``).
    """

    provider: str
    base_url: str
    issuer: str
    resource: str
    api_base_url: str
    authorize_url: str
    token_url: str
    client_credentials_url: str
    revocation_url: str
    device_authorization_url: str
    client_id: str
    client_secret: str
    redirect_uri: str
    scope: str
    client_auth: Literal["basic", "basic-raw", "post", "none"]
    pkce: bool
    skew: float
    authorize_params: Mapping[str, str]
    client_check: bool
    client_metadata_url: str
    api_key_param: str


async def login(
    profile: str,
    *,
    paste: bool = False,
    fallback_paste: bool = False,
    device: bool = False,
    open_browser: bool = True,
    timeout: float = LOGIN_TIMEOUT,
    save: bool = False,
    config_dir: str | None = None,
    **settings: Unpack[ProfileSettings],
) -> Token:
    """Log in through the browser and store the tokens as ``profile``.

    ``settings`` are profile keys (``provider``, ``client_id``, ``redirect_uri``,
    ``scope``, ``resource``, ...) that win over the profile's table in ``config.toml``;
    ``resource="https://api.example.com/mcp"`` alone is enough for a server that
    publishes RFC 9728 metadata and lets clients register (RFC 7591);
    a successful login remembers them there (``save`` is kept for compatibility).
    ``paste=True`` needs no listener: the person
    pastes the address the browser landed on (in a notebook, into an input box).
    ``device=True`` logs in with a code typed in any browser (RFC 8628), as happens
    by itself where no browser can be opened and the provider offers it.
    In a notebook the login URL (or the device code's page and the code) is shown as a link.

        >>> token = await loopback_login.login("home", provider="honeywell", client_id="...",
        ...                                    redirect_uri="http://localhost:8080/callback")
    """
    from ._login.flow import login as login_flow

    with python_errors():
        store = Store(config_dir)
        resolved = await _resolve(store, profile, settings, login=True)
        return await login_flow(
            resolved,
            store=store,
            open_browser=open_browser,
            paste=paste,
            fallback_paste=fallback_paste,
            device=device,
            timeout=timeout,
        )


async def get_token(
    profile: str, *, client_secret: str | None = None, config_dir: str | None = None
) -> Token:
    """A valid access token for ``profile``, refreshed first when it expires within its skew.

    Raises :class:`LoginRequired` when there is no usable token (log in again).
    """
    with python_errors():
        store = Store(config_dir)
        name = check_profile_name(profile)
        return fresh_token(store, name) or await refresh_stored(
            store, name, client_secret=client_secret
        )


async def refresh(
    profile: str, *, client_secret: str | None = None, config_dir: str | None = None
) -> Token:
    """Refresh ``profile``'s access token now, whatever its expiry."""
    with python_errors():
        store = Store(config_dir)
        return await refresh_stored(
            store, check_profile_name(profile), force=True, client_secret=client_secret
        )


async def client_credentials(
    profile: str, *, config_dir: str | None = None, **settings: Unpack[ProfileSettings]
) -> Token:
    """A client-credentials token for ``profile``, reused while valid.

    ``settings`` are profile keys (``provider``, ``client_id``, ``client_secret``,
    ``scope``, ...) that win over the profile's table in ``config.toml``.
    """
    with python_errors():
        store = Store(config_dir)
        resolved = await _resolve(store, profile, settings, client_credentials=True)
        return await fetch_client_credentials(resolved, store)


async def _resolve(
    store: Store,
    profile: str,
    settings: ProfileSettings,
    *,
    login: bool = False,
    client_credentials: bool = False,
) -> Profile:
    from ._profiles.resolve import resolve
    from ._ui import default_reporter

    say = default_reporter().say
    flags = dict(settings)
    resolved = await resolve(
        store,
        profile,
        flags,
        register=login,
        say=say,
        defer_secret=login,
        client_credentials=client_credentials,
    )
    if resolved.unused_environment is not None:
        from ._profiles.secrets import warn_unused_environment

        warn_unused_environment(resolved.name, resolved.unused_environment)
    return resolved


def _sync_twin(coroutine_function: Callable[P, Coroutine[Any, Any, T]]) -> Callable[P, T]:
    """The synchronous twin of a coroutine function: the same signature, for type checkers too.

    It runs on a worker thread when an event loop is already running (Jupyter).
    """

    @functools.wraps(coroutine_function)
    def twin(*args: P.args, **kwargs: P.kwargs) -> T:
        return run_sync(coroutine_function(*args, **kwargs))

    twin.__name__ = twin.__qualname__ = f"{coroutine_function.__name__}_sync"
    twin.__doc__ = (
        f":func:`{coroutine_function.__name__}` for synchronous code; in Jupyter it runs on a "
        "worker thread. An interrupt (Ctrl-C, the kernel's stop button) cancels it and frees "
        "what it held (the redirect port) before it returns."
    )
    return twin


login_sync = _sync_twin(login)
refresh_sync = _sync_twin(refresh)
client_credentials_sync = _sync_twin(client_credentials)


def get_token_sync(
    profile: str, *, client_secret: str | None = None, config_dir: str | None = None
) -> Token:
    """:func:`get_token` for synchronous code; works inside a running loop (Jupyter) too."""
    # A valid token needs neither an event loop nor a thread.
    with python_errors():
        token = fresh_token(Store(config_dir), check_profile_name(profile))
    if token is not None:
        return token
    return run_sync(get_token(profile, client_secret=client_secret, config_dir=config_dir))

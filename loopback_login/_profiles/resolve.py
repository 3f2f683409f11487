"""The one profile resolution: flags, config table, presets, metadata, registration, secret.

Every entry point (the command line, the Python API, the demo) comes here:
the profile's table and the given settings are merged (:func:`.profile.resolve_profile`,
pure), after the issuer's metadata (RFC 8414) or the resource's (RFC 9728, with
a client registered by RFC 7591 when none is given) has been read, and with the
secret chosen by precedence (:mod:`.secrets`), asked for as a last resort.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._store import check_profile_name
from .profile import MissingSecret, chosen_by_flags, issuer_of, resolve_profile, resource_of
from .secrets import ask, choose, get, in_keyring, interactive, missing_message

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .._store import Store
    from .discovery import Metadata
    from .profile import Profile


def _quiet(line: str) -> None:
    pass


def needs_metadata(table: Mapping[str, Any] | None, flags: Mapping[str, Any]) -> bool:
    """Does resolving this profile read metadata over the network (an issuer, a resource)?"""
    return resource_of(table, flags) is not None or issuer_of(table, flags) is not None


async def resolve(
    store: Store,
    name: str,
    flags: Mapping[str, Any],
    *,
    register: bool = False,
    say: Callable[[str], None] = _quiet,
    defer_secret: bool = False,
) -> Profile:
    """Resolve a profile, reading its issuer's or its resource's metadata first (cached).

    With ``register`` (a login) and a resource but no client id, a client is
    registered (RFC 7591). With ``defer_secret`` (a login), a secret kept in
    the keyring is left for :func:`read_kept_secret`, once the browser is open.
    """
    name = check_profile_name(name)
    store.check_case(name)
    table = chosen_by_flags(store.profile_table(name), flags)
    resource = resource_of(table, flags)
    if resource is not None:
        from .registration import prepare

        prepared = await prepare(store, name, resource, table, flags, register=register, say=say)
        return with_secret(
            store, name, prepared.table, prepared.flags, prepared.metadata, defer=defer_secret
        )
    issuer = issuer_of(table, flags)
    metadata = None
    if issuer is not None:
        from .discovery import discover

        metadata = await discover(issuer, store=store, name=name)
    return with_secret(store, name, table, flags, metadata, defer=defer_secret)


def resolve_blocking(
    store: Store,
    name: str,
    flags: Mapping[str, Any],
    *,
    register: bool = False,
    say: Callable[[str], None] = _quiet,
    defer_secret: bool = False,
) -> Profile:
    """:func:`resolve` for the command line: an event loop only when metadata must be read.

    A profile given by URLs or a preset resolves without asyncio, so that the
    browser opens before it (or aiohttp) is imported.
    """
    name = check_profile_name(name)
    store.check_case(name)
    table = chosen_by_flags(store.profile_table(name), flags)
    if not needs_metadata(table, flags):
        return with_secret(store, name, table, flags, None, defer=defer_secret)
    import asyncio

    return asyncio.run(
        resolve(store, name, flags, register=register, say=say, defer_secret=defer_secret)
    )


def with_secret(
    store: Store,
    name: str,
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    metadata: Metadata | None,
    *,
    defer: bool = False,
) -> Profile:
    """Resolve with the secret chosen by precedence; ask for it as a last resort.

    Asked without echo when someone can answer (a terminal, a notebook), before
    any browser opens; otherwise the :class:`MissingSecret` configuration error
    (exit 2) names the flag and the environment variable.
    """
    given = flags.get("client_secret") or None
    if defer and not given and in_keyring(table):
        return resolve_profile(
            name, table, flags, where=store.config_path, metadata=metadata, secret_pending=True
        )
    secret, _source = choose(store, name, given if isinstance(given, str) else None)
    try:
        return resolve_profile(
            name, table, flags, env_secret=secret, where=store.config_path, metadata=metadata
        )
    except MissingSecret:
        if not interactive():
            raise
    return resolve_profile(
        name, table, flags, env_secret=ask(name), where=store.config_path, metadata=metadata
    )


def read_kept_secret(store: Store, profile: Profile) -> Profile:
    """The profile with the secret :func:`resolve` left in the keyring (blocking: D-Bus)."""
    if not profile.secret_pending:
        return profile
    secret, _where = get(store, profile.name)
    if secret is None:
        raise ConfigError(missing_message(profile.name))
    return profile._replace(client_secret=secret, secret_pending=False)

"""The one profile resolution: flags, config table, presets, metadata, registration, secret.

Every entry point (the command line, the Python API, the demo) comes here:
the profile's table and the given settings are merged (:func:`.profile.resolve_profile`,
pure), after the issuer's metadata (RFC 8414) or the resource's (RFC 9728, with
a client registered by RFC 7591 when none is given) has been read, and with the
secret chosen by precedence (:mod:`.secrets`), asked for as a last resort.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._store import check_profile_name
from .profile import MissingSecret, issuer_of, resolve_profile, resource_of
from .secrets import ask, choose, interactive

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
) -> Profile:
    """Resolve a profile, reading its issuer's or its resource's metadata first (cached).

    With ``register`` (a login) and a resource but no client id, a client is
    registered (RFC 7591).
    """
    name = check_profile_name(name)
    store.check_case(name)
    table = store.profile_table(name)
    resource = resource_of(table, flags)
    if resource is not None:
        from .registration import prepare

        prepared = await prepare(store, name, resource, table, flags, register=register, say=say)
        return with_secret(store, name, prepared.table, prepared.flags, prepared.metadata)
    issuer = issuer_of(table, flags)
    metadata = None
    if issuer is not None:
        from .discovery import discover

        metadata = await discover(issuer, store=store, name=name)
    return with_secret(store, name, table, flags, metadata)


def resolve_blocking(
    store: Store,
    name: str,
    flags: Mapping[str, Any],
    *,
    register: bool = False,
    say: Callable[[str], None] = _quiet,
) -> Profile:
    """:func:`resolve` for the command line: an event loop only when metadata must be read.

    A profile given by URLs or a preset resolves without asyncio, so that the
    browser opens before it (or aiohttp) is imported.
    """
    name = check_profile_name(name)
    store.check_case(name)
    table = store.profile_table(name)
    if not needs_metadata(table, flags):
        return with_secret(store, name, table, flags, None)
    import asyncio

    return asyncio.run(resolve(store, name, flags, register=register, say=say))


def with_secret(
    store: Store,
    name: str,
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    metadata: Metadata | None,
) -> Profile:
    """Resolve with the secret chosen by precedence; ask for it as a last resort.

    Asked without echo when someone can answer (a terminal, a notebook), before
    any browser opens; otherwise the :class:`MissingSecret` configuration error
    (exit 2) names the flag and the environment variable.
    """
    given = flags.get("client_secret") or None
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

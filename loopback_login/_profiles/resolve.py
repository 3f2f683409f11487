"""The one profile resolution: flags, config table, presets, metadata, registration, secret.

Every entry point (the command line, the Python API, the demo) comes here:
the profile's table and the given settings are merged (:func:`.profile.resolve_profile`,
pure), after the issuer's metadata (RFC 8414) or the resource's (RFC 9728, with
a client registered by RFC 7591 when none is given) has been read, and with the
secret chosen by precedence (:mod:`.secrets`), asked for as a last resort.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .._errors import ConfigError
from .._store import check_profile_name
from .profile import (
    MissingSecret,
    chosen_by_flags,
    env_secret_refusal,
    issuer_of,
    resolve_profile,
    resource_of,
)
from .secrets import (
    KEYRING,
    SECRET_ENV,
    ask,
    binding,
    choose,
    get,
    interactive,
    kept_where,
    missing_message,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any

    from .._store import Store
    from .discovery import Metadata
    from .profile import Profile


def _quiet(line: str) -> None:
    pass


def _table(store: Store, name: str, flags: Mapping[str, Any]) -> tuple[str, dict[str, Any] | None]:
    """The checked name and its ``[profiles.NAME]`` table (``None`` when there is none), less
    what the flags' choice of provider replaces (see :func:`.profile.chosen_by_flags`)."""
    name = check_profile_name(name)
    store.check_case(name)
    return name, chosen_by_flags(store.profile_table(name), flags)


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
    client_credentials: bool = False,
) -> Profile:
    """Resolve a profile, reading its issuer's or its resource's metadata first (cached).

    With ``register`` (a login) and a resource but no client id, a client is
    registered (RFC 7591). With ``defer_secret`` (a login), a secret kept in
    the keyring is left for :func:`read_kept_secret`, once the browser is open.
    ``client_credentials``: for a client-credentials request (which needs a secret).
    """
    name, table = _table(store, name, flags)
    resource = resource_of(table, flags)
    if resource is not None:
        from .registration import prepare

        prepared = await prepare(store, name, resource, table, flags, register=register, say=say)
        return with_secret(
            store,
            name,
            prepared.table,
            prepared.flags,
            prepared.metadata,
            defer=defer_secret,
            client_credentials=client_credentials,
        )
    issuer = issuer_of(table, flags)
    metadata = None
    if issuer is not None:
        from .discovery import discover

        metadata = await discover(issuer, store=store, name=name)
    return with_secret(
        store,
        name,
        table,
        flags,
        metadata,
        defer=defer_secret,
        client_credentials=client_credentials,
    )


def resolve_blocking(
    store: Store,
    name: str,
    flags: Mapping[str, Any],
    *,
    register: bool = False,
    say: Callable[[str], None] = _quiet,
    defer_secret: bool = False,
    client_credentials: bool = False,
) -> Profile:
    """:func:`resolve` for the command line: an event loop only when metadata must be read.

    A profile given by URLs or a preset resolves without asyncio, so that the
    browser opens before it (or aiohttp) is imported.
    """
    name, table = _table(store, name, flags)
    if not needs_metadata(table, flags):
        return with_secret(
            store,
            name,
            table,
            flags,
            None,
            defer=defer_secret,
            client_credentials=client_credentials,
        )
    import asyncio

    return asyncio.run(
        resolve(
            store,
            name,
            flags,
            register=register,
            say=say,
            defer_secret=defer_secret,
            client_credentials=client_credentials,
        )
    )


def with_secret(
    store: Store,
    name: str,
    table: Mapping[str, Any] | None,
    flags: Mapping[str, Any],
    metadata: Metadata | None,
    *,
    defer: bool = False,
    client_credentials: bool = False,
) -> Profile:
    """Resolve with the secret chosen by precedence; ask for it as a last resort.

    A kept secret counts only for the token endpoint and client it was given
    for; the environment's only where :func:`.profile.env_secret_refusal`
    allows it (else one warning line). Asked without echo when someone can
    answer (a terminal, a notebook), before any browser opens; otherwise the
    :class:`MissingSecret` configuration error (exit 2) names the flag and the
    environment variable.
    """
    given = flags.get("client_secret") or None
    where = store.config_path
    # The table's own secret is a kept one: it goes through the binding check below.
    bare = {key: value for key, value in (table or {}).items() if key != "client_secret"}
    # Where a secret would go: the profile as if it had one (token URL and client id
    # do not depend on the secret).
    target = resolve_profile(name, bare, flags, where=where, metadata=metadata, secret_pending=True)
    bound = binding(target.token_url, target.client_id)
    if defer and not given and kept_where(table, bound) == KEYRING:
        return target  # the kept secret is read by read_kept_secret, the browser open
    refusal = env_secret_refusal(table, flags, metadata, client_credentials=client_credentials)
    secret, _source = choose(
        store, name, given if isinstance(given, str) else None, bound, env=refusal is None
    )
    # Said once the configuration is accepted: set, and would have been used before.
    unused = refusal if secret is None and os.environ.get(SECRET_ENV) else None
    try:
        profile = resolve_profile(
            name, bare, flags, env_secret=secret, where=where, metadata=metadata
        )
    except MissingSecret:
        if not interactive():
            raise
        profile = resolve_profile(
            name, bare, flags, env_secret=ask(name), where=where, metadata=metadata
        )
    # Said by the caller once the rest of the configuration is accepted too (a usage
    # error is the only line it prints).
    return profile._replace(unused_environment=unused)


def read_kept_secret(store: Store, profile: Profile) -> Profile:
    """The profile with the secret :func:`resolve` left in the keyring (blocking: D-Bus)."""
    if not profile.secret_pending:
        return profile
    secret, _where = get(store, profile.name, binding(profile.token_url, profile.client_id))
    if secret is None:
        raise ConfigError(missing_message(profile.name))
    return profile._replace(client_secret=secret, secret_pending=False)

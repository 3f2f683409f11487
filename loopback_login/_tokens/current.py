"""The profile's current token, as every reader in a running process gets it.

:func:`get_token` and the API sessions ask for a token many times; the file
is parsed again only when it has changed (another process refreshed it: a new
file, so a new inode, mtime and size), and a token is handed out only while
:func:`.record.is_fresh` says so.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .record import is_fresh
from .token import token_from_record

if TYPE_CHECKING:
    from .._store import Store
    from .record import TokenRecord
    from .token import Token

    Signature = tuple[int, int, int]

# (config root, profile) -> (the token file's stat signature, its record, its token)
_remembered: dict[tuple[str, str], tuple[Signature, TokenRecord, Token]] = {}


def current(store: Store, name: str) -> tuple[TokenRecord, Token] | None:
    """The profile's stored record and token (``None`` when there is none), one ``stat`` a call.

    :class:`LoginRequired` when the file cannot be read or parsed.
    """
    path = store.token_path(name)
    try:
        info = os.stat(path)
    except OSError:
        _remembered.pop((store.root, name), None)
        return None  # none stored (the refresh that follows says so, or why)
    signature = (info.st_ino, info.st_mtime_ns, info.st_size)
    remembered = _remembered.get((store.root, name))
    if remembered is None or remembered[0] != signature:
        record = store.read_record(name)
        if record is None:
            return None
        remembered = _remembered[(store.root, name)] = (
            signature,
            record,
            token_from_record(record),
        )
    return remembered[1], remembered[2]


def fresh_token(store: Store, name: str) -> Token | None:
    """The profile's stored token while it is fresh, else ``None`` (refresh, or log in)."""
    found = current(store, name)
    if found is None or not is_fresh(found[0]):
        return None
    return found[1]

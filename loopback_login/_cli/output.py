"""What the commands print: the summary line, the token, the status table, progress.

stdout carries only the result; progress and warnings go to stderr. Every
piece of text from a provider, a metadata document or the config goes
through :func:`.._text.shown` (control characters escaped).
"""

from __future__ import annotations

import sys
import time

from .._text import shown

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Sequence
    from typing import Any

    from .._tokens.record import TokenRecord
    from .._tokens.token import Token


def progress(line: str) -> None:
    print(shown(line), file=sys.stderr, flush=True)


def resource_column(table: dict[str, Any], record: TokenRecord | None) -> str:
    """The RFC 8707 resource, and whether the client was registered by us (RFC 7591)."""
    resource = (record["resource"] if record is not None else None) or table.get("resource")
    if not isinstance(resource, str):
        return "-"
    dynamic = isinstance(table.get("dynamic_registration"), dict) and (
        record is None or record["client_id"] == table.get("client_id")
    )
    return f"{resource} (registered client)" if dynamic else resource


def print_table(rows: Sequence[Sequence[str]]) -> None:
    rows = [[shown(cell) for cell in row] for row in rows]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print(
            "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
        )


def expiry_text(expires_at: float | None, now: float) -> str:
    if expires_at is None:
        return "no expiry given"
    left = expires_at - now
    try:
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires_at))
    except (OverflowError, OSError, ValueError):  # beyond what the C library can show
        return "no usable expiry"
    if left <= 0:
        return f"{when} (expired)"
    return f"{when} (in {duration(left)})"


def duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    if minutes < 1:
        return f"{int(seconds)} s"
    if minutes < 120:
        return f"{minutes} min"
    return f"{minutes // 60} h"


def who(token: Token) -> str:
    """`` as NAME`` when the provider's id_token says who logged in (OIDC Core §5.1)."""
    from .._tokens.record import jwt_claims

    claims = jwt_claims(token.raw.get("id_token")) or {}
    for claim in ("preferred_username", "email", "sub"):
        value = claims.get(claim)
        if isinstance(value, str) and value:
            return f" as {shown(value[:100])}"
    return ""


def summary(what: str, name: str, provider: str, token: Token, path: str) -> str:
    refresh = "refresh token saved" if token.refresh_token else "no refresh token"
    expiry = expiry_text(token.expires_at, time.time())
    scope = f", scope {token.scope!r}" if token.scope else ""
    return (
        f"{what}: profile {name!r} ({provider}), access token until {expiry}, "
        f"{refresh}{scope}; saved to {path}"
    )


def print_token(record: TokenRecord, shape: str | None) -> None:
    """Print the access token alone, as a header (``header``), or the record (``json``)."""
    from .._tokens.record import authorization

    if shape == "json":
        import json

        from .._tokens.record import public_record

        print(json.dumps(public_record(record), indent=2))
    elif shape == "header":
        print(f"Authorization: {authorization(record['token_type'], record['access_token'])}")
    else:
        print(record["access_token"])

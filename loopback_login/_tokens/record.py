"""The token record on disk, read without ceremony.

``loopback-login token NAME`` with a valid token goes through this module
alone: stdlib only, no dataclasses, no typing at run time.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False  # `token` reads through here: typing only for the type checker
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any, TypeGuard

DEFAULT_SKEW = 60
#: A lifetime longer than this (ten years) is nonsense, and is taken as unknown.
MAX_LIFETIME = 10 * 365 * 86400
#: Expiry times beyond the year 9999 do not fit a calendar (nor C's time_t everywhere).
_LAST_TIME = 253_402_300_799


def is_token_value(value: object) -> TypeGuard[str]:
    """Can ``value`` go into an ``Authorization`` header as it is?

    RFC 6750 §2.1: a Bearer token is a b64token, visible ASCII without
    spaces. Stricter than that is left to the provider; what is refused here
    is what would split a header (CR, LF) or a shell word (spaces, controls).
    """
    return (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and " " not in value
        and value != ""
    )


def usable_expiry(value: object) -> float | None:
    """A stored ``expires_at`` as a time, or ``None`` (unknown) when it is none, or nonsense."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    try:
        number = float(value)
    except OverflowError:
        return None
    return number if 0 <= number <= _LAST_TIME else None  # NaN fails both


def expiring(expires_at: float | None, skew: float, now: float | None = None) -> bool:
    """Does a token that expires at ``expires_at`` expire within ``skew`` seconds?

    A token without a known lifetime is taken as valid.
    """
    if expires_at is None:
        return False
    return (time.time() if now is None else now) + skew >= expires_at


def authorization(token_type: str, access_token: str) -> str:
    """The ``Authorization`` header value (RFC 6750 §2.1)."""
    return f"{token_type} {access_token}"


#: The non-secret profile settings a token record carries, so that ``token``,
#: ``refresh``, ``status`` and ``logout`` work from the token file alone.
RECORD_SETTINGS = (
    "profile",
    "provider",
    "token_url",
    "client_credentials_url",
    "revocation_url",
    "issuer",
    "client_id",
    "client_auth",
    "skew",
    "resource",
    "api_base_url",
)


def jwt_claims(jwt: object) -> dict[str, Any] | None:
    """The claims of a JWT (an ``id_token``), decoded without checking its signature."""
    if not isinstance(jwt, str) or jwt.count(".") != 2:
        return None
    import base64
    import json

    payload = jwt.split(".")[1]
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None
    return claims if isinstance(claims, dict) else None


#: The profile `loopback-login demo` logs in as.
DEMO_PROFILE = "demo"


def made_by_demo(name: str, record: Mapping[str, Any]) -> bool:
    """Is this the record `loopback-login demo` wrote (profile ``demo``, demo provider)?

    Its provider and app lived only while the demo ran: its port may now be
    anyone's, so nothing (no secret, no token) is ever sent there again.
    """
    return name == DEMO_PROFILE and record.get("provider") == "demo"


def record_skew(record: Mapping[str, Any]) -> float:
    """The refresh skew a record was saved with."""
    skew = record.get("skew")
    if isinstance(skew, (int, float)) and not isinstance(skew, bool):
        return float(skew)
    return DEFAULT_SKEW


def public_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """The record as ``token --json`` shows it: without the refresh token, here or in ``raw``."""
    shown = {key: value for key, value in record.items() if key != "refresh_token"}
    raw = shown.get("raw")
    if isinstance(raw, dict):
        shown["raw"] = {key: value for key, value in raw.items() if key != "refresh_token"}
    return shown


def still_valid(record: Mapping[str, Any], now: float | None = None) -> str:
    """How long a provider keeps honouring a record's tokens that were not revoked."""
    now = time.time() if now is None else now
    expires_at = record.get("expires_at")
    if isinstance(expires_at, (int, float)) and not isinstance(expires_at, bool):
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(expires_at))
        access = (
            f"the access token until {when}"
            if expires_at > now
            else f"the access token expired at {when}"
        )
    else:
        access = "the access token until the provider lets it expire (no lifetime was given)"
    if isinstance(record.get("refresh_token"), str):
        # RFC 6749 gives refresh tokens no lifetime the client can see.
        return f"{access}, the refresh token until the provider ends the grant"
    return access

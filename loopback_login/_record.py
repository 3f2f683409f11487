"""The token record on disk, read without ceremony.

``loopback-login token NAME`` with a valid token goes through this module
alone: stdlib only, no dataclasses, no typing at run time.
"""

from __future__ import annotations

import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any

DEFAULT_SKEW = 60


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

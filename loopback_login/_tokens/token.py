"""The token value, and the conversion between it and its on-disk record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .record import (
    DEFAULT_SKEW,
    RECORD_SETTINGS,
    authorization,
    expiring,
    is_token_value,
    usable_expiry,
)


@dataclass(frozen=True, repr=False)
class Token:
    """An access token, with what is needed to use and renew it.

    >>> token.header
    {'Authorization': 'Bearer ...'}
    """

    access_token: str
    token_type: str = "Bearer"
    #: Unix seconds by the local clock; ``None`` when the provider gave no lifetime.
    expires_at: float | None = None
    refresh_token: str | None = None
    scope: str | None = None
    obtained_at: float = 0.0
    #: The provider's response as received (it holds the tokens too).
    raw: Mapping[str, Any] = field(default_factory=dict)

    def is_expired(self, skew: float = DEFAULT_SKEW, *, now: float | None = None) -> bool:
        """True when the access token expires within ``skew`` seconds.

        A token without a known lifetime is taken as valid.
        """
        return expiring(self.expires_at, skew, now)

    @property
    def header(self) -> dict[str, str]:
        """The header to send with API requests (RFC 6750 §2.1)."""
        return {"Authorization": authorization(self.token_type, self.access_token)}

    def __repr__(self) -> str:
        # Tokens never appear in a repr: reprs end up in logs and tracebacks.
        refresh = "present" if self.refresh_token else None
        return (
            f"Token(access_token='***', token_type={self.token_type!r}, "
            f"expires_at={self.expires_at!r}, refresh_token={refresh!r}, scope={self.scope!r})"
        )


def record_from_token(token: Token, settings: Mapping[str, Any]) -> dict[str, Any]:
    """The JSON object stored in ``tokens/NAME.json``."""
    record: dict[str, Any] = {
        "access_token": token.access_token,
        "token_type": token.token_type,
        "expires_at": token.expires_at,
        "scope": token.scope,
        "obtained_at": token.obtained_at,
    }
    if token.refresh_token:
        record["refresh_token"] = token.refresh_token
    record.update((key, settings.get(key)) for key in RECORD_SETTINGS)
    record["raw"] = dict(token.raw)
    return record


def token_from_record(record: Mapping[str, Any]) -> Token:
    """Rebuild a :class:`Token` from a stored record; ``ValueError`` when it is not one."""
    access_token = record.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise ValueError("it has no access_token")
    if not is_token_value(access_token):
        raise ValueError("its access_token has spaces or control characters")
    expires_at = record.get("expires_at")
    if expires_at is not None and not isinstance(expires_at, (int, float)):
        raise ValueError("its expires_at is not a number")
    refresh_token = record.get("refresh_token")
    if refresh_token is not None and not isinstance(refresh_token, str):
        raise ValueError("its refresh_token is not a string")
    scope = record.get("scope")
    obtained_at = record.get("obtained_at") or 0.0
    raw = record.get("raw") or {}
    if not isinstance(obtained_at, (int, float)) or not isinstance(raw, dict):
        raise ValueError("its obtained_at or raw field is malformed")
    return Token(
        access_token=access_token,
        token_type=str(record.get("token_type") or "Bearer"),
        expires_at=usable_expiry(expires_at),
        refresh_token=refresh_token or None,
        scope=scope if isinstance(scope, str) else None,
        obtained_at=float(obtained_at),
        raw=raw,
    )

"""The public token value, and how it is made from a stored record."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .record import DEFAULT_SKEW, authorization, expires_within

if TYPE_CHECKING:
    from .record import TokenRecord


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
        import time

        return expires_within(self.expires_at, skew, time.time() if now is None else now)

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


def token_from_record(record: TokenRecord) -> Token:
    """The :class:`Token` of a stored record (checked already by :func:`.record.parse_record`)."""
    return Token(
        access_token=record["access_token"],
        token_type=record["token_type"],
        expires_at=record["expires_at"],
        refresh_token=record.get("refresh_token"),
        scope=record["scope"],
        obtained_at=record["obtained_at"],
        raw=record["raw"],
    )

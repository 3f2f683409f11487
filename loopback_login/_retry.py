"""When to try a token request again, and after how long: pure, clock and randomness passed in."""

from __future__ import annotations

import random
from dataclasses import dataclass

#: Statuses that say "not now" rather than "no": rate limiting and gateways.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded in count and in total time; exponential backoff with full jitter."""

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    budget: float = 30.0


NO_RETRY = RetryPolicy(attempts=1)


def retry_after_seconds(value: str | None, *, now: float) -> float | None:
    """``Retry-After`` as seconds to wait: delta-seconds or an HTTP-date (RFC 9110 §10.2.3)."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    from email.utils import parsedate_to_datetime

    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - now)


def backoff(
    policy: RetryPolicy,
    attempt: int,
    *,
    elapsed: float,
    retry_after: float | None = None,
    rand: random.Random | None = None,
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

    ``attempt`` counts from 1. A ``Retry-After`` is honoured as a floor; a wait
    that would overrun the policy's time budget means giving up now.
    """
    if attempt >= policy.attempts:
        return None
    ceiling = min(policy.cap, policy.base * 2 ** (attempt - 1))
    delay = (rand or random).uniform(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay > policy.budget:
        return None
    return delay

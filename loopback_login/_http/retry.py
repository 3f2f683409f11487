"""When to try a token request again, and after how long.

The decisions are pure; the waiting, the jitter and the clock belong to the
policy, so a caller (a test) can pass fakes and nothing waits in real time.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

#: Statuses that say "not now" rather than "no": rate limiting and gateways.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded in count and in total time; exponential backoff with full jitter.

    ``sleep`` waits, ``jitter(low, high)`` draws a delay, ``clock`` measures the
    time spent (monotonic): the real ones unless a caller passes others.
    """

    attempts: int = 4
    base: float = 0.5
    cap: float = 8.0
    budget: float = 30.0
    sleep: Callable[[float], Awaitable[None]] = field(default=asyncio.sleep, repr=False)
    jitter: Callable[[float, float], float] = field(default=random.uniform, repr=False)
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)


#: What token requests use unless told otherwise.
DEFAULT_RETRY = RetryPolicy()
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
) -> float | None:
    """Seconds to wait before attempt ``attempt + 1``, or ``None`` to give up.

    ``attempt`` counts from 1. A ``Retry-After`` is honoured as a floor; a wait
    that would overrun the policy's time budget means giving up now.
    """
    if attempt >= policy.attempts:
        return None
    ceiling = min(policy.cap, policy.base * 2 ** (attempt - 1))
    delay = policy.jitter(0, ceiling)
    if retry_after is not None:
        delay = max(delay, retry_after)
    if elapsed + delay > policy.budget:
        return None
    return delay

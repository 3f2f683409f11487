"""The retry decisions, without sockets or waiting: backoff, budget, Retry-After."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from email.utils import format_datetime

import pytest
from support import FakeTime, free_port

from loopback_login._errors import NetworkError
from loopback_login._http.client import send
from loopback_login._http.retry import (
    DEFAULT_RETRY,
    NO_RETRY,
    RETRY_STATUSES,
    RetryPolicy,
    backoff,
    retry_after_seconds,
)
from loopback_login._protocol import ClientAuth, refresh_grant, token_request


def _longest(low: float, high: float) -> float:
    return high


def test_backoff_doubles_up_to_the_cap_then_gives_up_after_the_last_attempt() -> None:
    policy = RetryPolicy(attempts=6, base=0.5, cap=3.0, budget=100, jitter=_longest)
    delays = [backoff(policy, attempt, elapsed=0) for attempt in range(1, 7)]
    assert delays == [0.5, 1.0, 2.0, 3.0, 3.0, None]


def test_full_jitter_draws_between_zero_and_the_ceiling() -> None:
    drawn: list[tuple[float, float]] = []

    def jitter(low: float, high: float) -> float:
        drawn.append((low, high))
        return (low + high) / 2

    policy = RetryPolicy(jitter=jitter)
    assert backoff(policy, 1, elapsed=0) == 0.25
    assert backoff(policy, 3, elapsed=0) == 1.0
    assert drawn == [(0, 0.5), (0, 2.0)]


def test_the_real_jitter_stays_in_range() -> None:
    rng = random.Random(7)
    policy = RetryPolicy(jitter=rng.uniform)
    for attempt in (1, 2, 3):
        delay = backoff(policy, attempt, elapsed=0)
        assert delay is not None and 0 <= delay <= DEFAULT_RETRY.base * 2 ** (attempt - 1)


def test_retry_after_is_a_floor() -> None:
    policy = RetryPolicy(jitter=_longest)
    assert backoff(policy, 1, elapsed=0, retry_after=5.0) == 5.0
    assert backoff(policy, 1, elapsed=0, retry_after=0.1) == 0.5


def test_a_wait_past_the_budget_means_giving_up_now() -> None:
    policy = RetryPolicy(budget=10, jitter=_longest)
    assert backoff(policy, 1, elapsed=9.5) == 0.5
    assert backoff(policy, 1, elapsed=9.6) is None
    assert backoff(policy, 1, elapsed=0, retry_after=11) is None


def test_no_retry_never_waits() -> None:
    assert backoff(NO_RETRY, 1, elapsed=0) is None


def test_production_defaults() -> None:
    import asyncio
    import time

    assert (DEFAULT_RETRY.attempts, DEFAULT_RETRY.base, DEFAULT_RETRY.cap) == (4, 0.5, 8.0)
    assert DEFAULT_RETRY.budget == 30.0
    assert DEFAULT_RETRY.sleep is asyncio.sleep
    assert DEFAULT_RETRY.jitter == random.uniform
    assert DEFAULT_RETRY.clock is time.monotonic
    assert sorted(RETRY_STATUSES) == [429, 502, 503, 504]


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), ("120", 120.0), (" 7 ", 7.0), ("soon", None), ("-3", None)],
)
def test_retry_after_delta_seconds(value: str | None, seconds: float | None) -> None:
    assert retry_after_seconds(value, now=0) == seconds


def test_retry_after_http_date() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC).timestamp()
    later = format_datetime(datetime(2026, 1, 1, 12, 0, 30, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(later, now=now) == 30.0
    earlier = format_datetime(datetime(2026, 1, 1, 11, 0, 0, tzinfo=UTC), usegmt=True)
    assert retry_after_seconds(earlier, now=now) == 0.0  # already past: no wait
    assert retry_after_seconds("Wed, 01 Jan 2026 12:00:30", now=now) is None  # no zone


async def test_send_waits_with_the_policy_it_is_given() -> None:
    """A refused connection is retried, waiting with the policy's sleep, never in real time."""
    url = f"http://127.0.0.1:{free_port()}/token"  # nothing listens there
    request = token_request(
        url, refresh_grant("r"), client_id="c", client_secret=None, client_auth=ClientAuth.NONE
    )
    waits = FakeTime()
    with pytest.raises(NetworkError, match="could not connect"):
        await send(request, policy=waits.policy())
    assert waits.slept == [0.5, 1.0, 2.0]

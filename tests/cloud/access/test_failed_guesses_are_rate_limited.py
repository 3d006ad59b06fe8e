"""Failed token guesses from one address are limited by a token bucket: a burst, then one try per refill
period; other addresses are not affected, and waiting refills the bucket. Time is passed in."""

from __future__ import annotations

from edgefleet.cloud.access.limiting import GuessLimiter


def test_a_burst_of_failures_then_a_wait() -> None:
    limiter = GuessLimiter(burst=3, rate_per_s=0.5)
    for _ in range(3):
        assert limiter.retry_after("10.0.0.9", now=100.0) is None
        limiter.failed("10.0.0.9", now=100.0)
    assert limiter.retry_after("10.0.0.9", now=100.0) == 2
    assert limiter.retry_after("10.0.0.8", now=100.0) is None
    assert limiter.retry_after("10.0.0.9", now=101.0) == 1
    assert limiter.retry_after("10.0.0.9", now=102.0) is None
    limiter.failed("10.0.0.9", now=102.0)
    assert limiter.retry_after("10.0.0.9", now=102.0) == 2


def test_the_bucket_refills_no_higher_than_the_burst() -> None:
    limiter = GuessLimiter(burst=2, rate_per_s=1.0)
    limiter.failed("a", now=0.0)
    for _ in range(2):
        assert limiter.retry_after("a", now=1000.0) is None
        limiter.failed("a", now=1000.0)
    assert limiter.retry_after("a", now=1000.0) == 1


def test_the_addresses_kept_are_bounded() -> None:
    limiter = GuessLimiter(burst=2, rate_per_s=0.001, max_addresses=3)
    for n in range(10):
        limiter.failed(f"10.0.0.{n}", now=0.0)
        limiter.failed(f"10.0.0.{n}", now=0.0)
    assert len(limiter._buckets) <= 3
    assert limiter.retry_after("10.0.0.9", now=0.0) is not None

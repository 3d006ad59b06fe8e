"""The rate limit on failed token guesses, per source address: a token bucket in memory.

Each address holds up to ``burst`` tries, refilled at ``rate_per_s``; a failed guess takes one. An address with
none left is answered 429 with ``Retry-After`` until the bucket refills, whether its next token is good or not
(so that a guesser cannot learn from the answer while refused). In memory on purpose: the controller is one
process (one leader per database), and a restart forgetting the counts costs a guesser nothing it could use.
Pure of the clock: ``now`` is passed in.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Final

# Ten quick mistakes are a person mistyping; beyond that, one try per six seconds is plenty for a person and
# hopeless for a guesser.
BURST: Final = 10.0
RATE_PER_S: Final = 1.0 / 6.0
# Addresses tracked at most; the fullest buckets (those that guessed least) are forgotten first.
MAX_ADDRESSES: Final = 10_000


@dataclass
class _Bucket:
    tries: float
    at: float


@dataclass
class GuessLimiter:
    burst: float = BURST
    rate_per_s: float = RATE_PER_S
    max_addresses: int = MAX_ADDRESSES
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    def _level(self, address: str, now: float) -> _Bucket:
        bucket = self._buckets.get(address)
        if bucket is None:
            return _Bucket(self.burst, now)
        tries = min(self.burst, bucket.tries + max(0.0, now - bucket.at) * self.rate_per_s)
        return _Bucket(tries, now)

    def retry_after(self, address: str, *, now: float) -> int | None:
        """Whole seconds until ``address`` may try again, or None when it may try now."""
        bucket = self._level(address, now)
        if bucket.tries >= 1.0:
            return None
        return max(1, math.ceil((1.0 - bucket.tries) / self.rate_per_s))

    def failed(self, address: str, *, now: float) -> None:
        """Count a failed guess from ``address``."""
        bucket = self._level(address, now)
        bucket.tries = max(0.0, bucket.tries - 1.0)
        self._buckets[address] = bucket
        if len(self._buckets) > self.max_addresses:
            # Never the address just counted: a new guesser would otherwise be forgotten at once.
            others = (key for key in self._buckets if key != address)
            fullest = max(others, key=lambda key: self._level(key, now).tries)
            del self._buckets[fullest]

"""When each simulated box sends its next heartbeat: phases spread evenly over the interval, optional jitter.

Pure: one heap of (due time, box index) for the whole fleet, so 2,000 boxes need one timer, not 2,000, and
the heartbeats of boxes that share an interval arrive evenly (200/s for 2,000 boxes at 10 s) instead of in
bursts. Times are the caller's (``loop.time()`` in ``simulator.running``, plain numbers in tests).
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Sequence
from typing import Final

# Past 90% an interval could come out near zero and beats of one box would pile up; nothing needs more.
MAX_JITTER: Final = 0.9


class HeartbeatSchedule:
    """Box ``i`` beats every ``intervals[i]`` seconds (times 1 +- ``jitter``), first at ``start`` plus its phase."""

    def __init__(
        self, intervals: Sequence[float], *, start: float, jitter: float = 0.0, rng: random.Random | None = None
    ) -> None:
        if not 0.0 <= jitter <= MAX_JITTER:
            raise ValueError(f"jitter must be from 0 to {MAX_JITTER} (a fraction of the interval), got {jitter}")
        if any(interval <= 0 for interval in intervals):
            raise ValueError("every heartbeat interval must be more than 0 seconds")
        self._intervals = list(intervals)
        self._jitter = jitter
        self._rng = rng or random.Random(0)
        count = len(intervals)
        # Box i of n starts i/n of its interval late: equal gaps between boxes of equal intervals.
        self._heap = [(start + interval * index / count, index) for index, interval in enumerate(intervals)]
        heapq.heapify(self._heap)

    def __len__(self) -> int:
        return len(self._heap)

    def next_due(self) -> float | None:
        return self._heap[0][0] if self._heap else None

    def step(self, index: int) -> float:
        """The next gap of box ``index``: its interval, jittered."""
        interval = self._intervals[index]
        if not self._jitter:
            return interval
        return interval * (1.0 + self._rng.uniform(-self._jitter, self._jitter))

    def pop_due(self, now: float) -> list[int]:
        """The boxes due by ``now``, each rescheduled. A box that fell a whole interval behind (the loop was
        blocked) skips the beats it missed instead of sending them in a burst, as a real agent's timer does."""
        due: list[int] = []
        heap = self._heap
        while heap and heap[0][0] <= now:
            at, index = heapq.heappop(heap)
            due.append(index)
            following = at + self.step(index)
            if following <= now:
                following = now + self.step(index)
            heapq.heappush(heap, (following, index))
        return due

"""Writes the live fleet state to the database in batches, off the ingest's hot path.

Every ``flush_interval_s`` an APScheduler job copies the boxes that changed and their new health points under
the fleet lock (a few hundred small copies: well under a millisecond), then saves them in one transaction
outside it. A failed save keeps everything it held for the next try, so nothing the ingest accepted is lost
while the database is away (health points beyond ``MAX_PENDING_SAMPLES`` excepted: they are counted), and
logs once per streak of failures. The history in the database is trimmed here too, every ``trim_interval_s``:
samples older than ``FULL_RESOLUTION_S`` are folded into 5-minute buckets (``store.DOWNSAMPLE_S``), samples
and buckets older than the retention window go, and per box all but the newest ``history_max_points`` samples.
That bounds the database (docs/operations.md, "Disk"). Started and stopped by the controller; ``stop`` makes a
last flush.

Only the leader saves; every replica hears the whole fleet. A standby's persister follows the leader instead
(``stand_by``): every ``interval_s`` it takes what changed, as a flush would, and forgets the health points and box
states the leader has saved meanwhile (``not_saved_by_leader``, ``box_saved_by_leader``, against each box row's
``last_seen``: a box row and its points are saved in one transaction). So a standby always holds what the database lacks, within the same bound as a
leader: when the leader is deposed with points it could not save (a database outage cuts both off), whichever
replica leads next saves them. A replica that takes over does the same once more (``take_over``) before its first
flush, so it saves what the old leader had not, not its whole memory again. While the database cannot be read,
nothing is forgotten (the bound drops the oldest).
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter, deque
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, Protocol

from apscheduler.schedulers.background import BackgroundScheduler

from edgefleet.clock import Clock
from edgefleet.cloud.fleet import BoxLive, FleetState, UnknownBox, copy_box
from edgefleet.cloud.saving import WriterHealth
from edgefleet.cloud.scheduling import start_interval_job
from edgefleet.cloud.store import DOWNSAMPLE_S, Sample
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId

log = logging.getLogger(__name__)

JOB_ID: Final = "edgefleet-flush"
FOLLOW_JOB_ID: Final = "edgefleet-follow"
# Trimming deletes by index, but there is no need to do it at every flush: once a minute keeps the table
# within a minute's worth of samples of its bound.
TRIM_INTERVAL_S: Final = 60.0
# Samples younger than this stay as received: the hour that memory holds too (``fleet.HISTORY_POINTS`` at 10 s),
# charted at full resolution; older ones are kept as 5-minute buckets.
FULL_RESOLUTION_S: Final = 3600.0
# Health points held while the database is away: ~10 minutes of a 2,000-box fleet at 10 s (~20 MB); older
# ones are dropped first (the box state itself is always kept, it is one entry a box).
MAX_PENDING_SAMPLES: Final = 120_000
# Two replicas receive one heartbeat milliseconds apart (one broker, two subscriptions), and a box beats at most
# once an interval: a point within this fraction of its box's interval after the leader's last saved one is that
# same heartbeat, heard here, and was saved. Replicas' clocks must agree within it too (NTP keeps them within ms).
SAME_HEARTBEAT_FRACTION: Final = 0.5


def not_saved_by_leader(
    samples: Iterable[Sample], saved_last_seen: Mapping[BoxId, float], intervals: Mapping[BoxId, float]
) -> list[Sample]:
    """The samples the leader has not saved: those received after their box's saved ``last_seen`` (plus
    ``SAME_HEARTBEAT_FRACTION`` of the box's heartbeat interval). A box with no saved row keeps all its samples."""
    kept: list[Sample] = []
    for box, point in samples:
        saved = saved_last_seen.get(box)
        if saved is None or point.at > saved + SAME_HEARTBEAT_FRACTION * intervals.get(box, 0.0):
            kept.append((box, point))
    return kept


def box_saved_by_leader(box: BoxLive, saved_last_seen: float | None, interval_s: float) -> bool:
    """Whether the leader's saved row of the box says all this copy says: its newest heartbeat is the leader's
    last saved one (the rule of ``not_saved_by_leader``) and it took no status after that. A status taken later
    is kept whatever the leader did with it (the row says nothing of when its status came): writing a box row
    again is harmless, forgetting one the leader never saved is not."""
    if saved_last_seen is None:
        return False
    if box.status_taken_at is not None and box.status_taken_at > saved_last_seen:
        return False
    return (box.last_seen or 0.0) <= saved_last_seen + SAME_HEARTBEAT_FRACTION * interval_s


class FleetSink(Protocol):
    """What the persister needs of the database (``store.Store`` is one)."""

    def save(self, boxes: Sequence[BoxLive], samples: Sequence[Sample], unknown: Sequence[UnknownBox]) -> None: ...

    def saved_last_seen(self) -> dict[BoxId, float]: ...

    def trim_history(
        self,
        *,
        older_than: float,
        boxes: Collection[BoxId] = (),
        keep: int | None = None,
        downsample_before: float | None = None,
    ) -> int: ...


@dataclass(frozen=True, slots=True)
class PersisterStats:
    flushes: int
    failed_flushes: int
    failure_streak: int
    last_error: str | None
    last_saved_at: float | None
    pending_boxes: int
    pending_samples: int
    dropped_samples: int


class Persister:
    def __init__(
        self,
        state: FleetState,
        store: FleetSink,
        *,
        clock: Clock,
        interval_s: float,
        history_retention_s: float,
        history_max_points: int,
        trim_interval_s: float = TRIM_INTERVAL_S,
        full_resolution_s: float = FULL_RESOLUTION_S,
    ) -> None:
        self.state = state
        self.store = store
        self.clock = clock
        self.interval_s = interval_s
        self.history_retention_s = history_retention_s
        self.history_max_points = history_max_points
        self.trim_interval_s = trim_interval_s
        self.full_resolution_s = full_resolution_s
        self._flush_lock = threading.Lock()
        self._boxes: dict[BoxId, BoxLive] = {}
        self._samples: deque[Sample] = deque(maxlen=MAX_PENDING_SAMPLES)
        self._unknown: dict[str, UnknownBox] = {}
        self._dropped_samples = 0
        # Samples saved per box since its count was last trimmed; a box is trimmed once it has a tenth of its
        # bound more, so the per-box delete runs rarely.
        self._saved_since_trim: Counter[BoxId] = Counter()
        self._trim_slack = max(1, history_max_points // 10)
        self._last_trim: float | None = None
        self._flushes = 0
        self._failed = 0
        self._streak = 0
        self._trim_failing = False
        self._last_error: str | None = None
        self._last_saved_at: float | None = None
        self._scheduler: BackgroundScheduler | None = None
        self._follower: BackgroundScheduler | None = None
        self._follow_failing = False

    def start(self) -> None:
        if self._scheduler is not None:
            return
        self._scheduler = start_interval_job(self.flush, seconds=self.interval_s, job_id=JOB_ID)

    def stop(self) -> None:
        """Stop the job (waiting for a running flush) and save what is left."""
        if self._scheduler is not None:
            self._scheduler.shutdown(wait=True)
            self._scheduler = None
        self.flush()

    def stand_by(self) -> None:
        """Follow the leader every ``interval_s`` (``follow``) until ``stop_standing_by``: a standby's part."""
        if self._follower is None:
            self._follower = start_interval_job(self.follow, seconds=self.interval_s, job_id=FOLLOW_JOB_ID)

    def stop_standing_by(self) -> None:
        if self._follower is not None:
            self._follower.shutdown(wait=True)
            self._follower = None

    def follow(self) -> bool:
        """A standby's step: take what changed and forget the points the leader has saved; False when the database
        could not be read (everything is kept). Never raises: it runs in the scheduler's thread."""
        with self._flush_lock:
            self._collect()
            try:
                saved = self.store.saved_last_seen()
            except Exception as exc:  # the database away: keep everything, forget at a later step
                if not self._follow_failing:
                    log.warning(
                        "Failed to read what the leader saved; keeping every health point heard",
                        extra={"error": str(exc)[:500], "samples": len(self._samples)},
                    )
                self._follow_failing = True
                return False
            if self._follow_failing:
                log.info("Read what the leader saved again", extra={"samples": len(self._samples)})
            self._follow_failing = False
            self._forget(saved)
            return True

    def take_over(self) -> bool:
        """Before a new leader's first flush: forget the points the previous leader saved (``follow``), so that
        the first flush saves what it had not, each point once. False when the database could not be read."""
        return self.follow()

    def _forget(self, saved_last_seen: Mapping[BoxId, float]) -> None:
        inventory = self.state.inventory
        intervals = {
            box: inventory.sites[b.site].interval_s
            for box, b in inventory.boxes.items()
            if box in saved_last_seen and b.site in inventory.sites
        }
        kept = not_saved_by_leader(self._samples, saved_last_seen, intervals)
        if len(kept) != len(self._samples):
            self._samples.clear()
            self._samples.extend(kept)
        for box, copy in list(self._boxes.items()):
            if box_saved_by_leader(copy, saved_last_seen.get(box), intervals.get(box, 0.0)):
                del self._boxes[box]

    @property
    def stats(self) -> PersisterStats:
        return PersisterStats(
            flushes=self._flushes,
            failed_flushes=self._failed,
            failure_streak=self._streak,
            last_error=self._last_error,
            last_saved_at=self._last_saved_at,
            pending_boxes=len(self._boxes),
            pending_samples=len(self._samples),
            dropped_samples=self._dropped_samples,
        )

    @property
    def saving(self) -> WriterHealth:
        """The flushes as one writer to the database (``saving``: for /healthz and /metrics); pending: the boxes
        and health points waiting for the next flush."""
        return WriterHealth(
            saves=self._flushes,
            failed_saves=self._failed,
            failure_streak=self._streak,
            last_error=self._last_error,
            last_saved_at=self._last_saved_at,
            pending=len(self._boxes) + len(self._samples),
        )

    def flush(self) -> bool:
        """Save what changed since the last flush; False when the database refused (it is kept for the next).
        Never raises: it runs in the scheduler's thread."""
        with self._flush_lock:
            self._collect()
            if not (self._boxes or self._samples or self._unknown):
                self._trim_if_due()
                return True
            try:
                self.store.save(list(self._boxes.values()), list(self._samples), list(self._unknown.values()))
            except Exception as exc:  # whatever the database does, the next flush tries again
                self._failed_to_save(exc)
                return False
            self._saved()
            self._trim_if_due()
            return True

    def _collect(self) -> None:
        boxes: list[BoxLive] = []
        samples: list[Sample] = []
        unknown: list[UnknownBox] = []
        with self.state.lock:
            for live in self.state.boxes.values():
                if not live.dirty:
                    continue
                live.dirty = False
                boxes.append(copy_box(live))
                if live.unsaved_points:
                    history = live.history
                    for i in range(max(0, len(history) - live.unsaved_points), len(history)):
                        samples.append((live.box, history[i]))
                    live.unsaved_points = 0
            for entry in self.state.unknown.values():
                if entry.dirty:
                    entry.dirty = False
                    unknown.append(
                        UnknownBox(entry.box, entry.claimed_site, entry.first_seen, entry.last_seen, entry.messages)
                    )
        for box in boxes:
            self._boxes[box.box] = box
        for entry in unknown:
            self._unknown[entry.box] = entry
        # The deque drops the oldest points itself past its bound; count them.
        self._dropped_samples += max(0, len(self._samples) + len(samples) - MAX_PENDING_SAMPLES)
        self._samples.extend(samples)

    def _saved(self) -> None:
        for box, _point in self._samples:
            self._saved_since_trim[box] += 1
        if self._streak:
            log.info(
                "Saved fleet state again after failed flushes",
                extra={"failed_flushes": self._streak, "boxes": len(self._boxes), "samples": len(self._samples)},
            )
        self._boxes.clear()
        self._samples.clear()
        self._unknown.clear()
        self._flushes += 1
        self._streak = 0
        self._last_error = None
        self._last_saved_at = self.clock.now()

    def _failed_to_save(self, exc: Exception) -> None:
        self._failed += 1
        self._streak += 1
        self._last_error = str(exc)[:500]
        if self._streak == 1:
            # Once per streak: a database that is away for an hour must not fill the log with one line a flush.
            log.warning(
                "Failed to save fleet state; keeping it for the next flush",
                extra={
                    "error": self._last_error,
                    "boxes": len(self._boxes),
                    "samples": len(self._samples),
                    "retry_in_s": self.interval_s,
                },
                exc_info=not isinstance(exc, EdgefleetError),
            )

    def _trim_if_due(self) -> None:
        now = self.clock.monotonic()
        if self._last_trim is not None and now - self._last_trim < self.trim_interval_s:
            return
        self._last_trim = now
        crowded = [box for box, count in self._saved_since_trim.items() if count >= self._trim_slack]
        wall = self.clock.now()
        # At a bucket's start, so that a bucket is folded once, whole (a late sample is merged into it still).
        downsample_before = math.floor((wall - self.full_resolution_s) / DOWNSAMPLE_S) * DOWNSAMPLE_S
        try:
            deleted = self.store.trim_history(
                older_than=wall - self.history_retention_s,
                boxes=crowded,
                keep=self.history_max_points,
                downsample_before=downsample_before,
            )
        except Exception as exc:  # a failed trim only delays it; the next one catches up
            if not self._trim_failing:
                log.warning("Failed to trim health history", extra={"error": str(exc)[:500]})
            self._trim_failing = True
            return
        self._trim_failing = False
        for box in crowded:
            del self._saved_since_trim[box]
        if deleted:
            log.debug("Trimmed health history", extra={"deleted": deleted, "boxes_over_bound": len(crowded)})

"""Standbys follow the leader's inventory reloads (issue 19): every replica ends up on the inventory the leader put
in force, with no operator reaching each pod.

Why: a reload (``POST /api/v1/inventory/reload``, ``edgefleet sites apply``) is a write, answered by the leader
only; in Kubernetes each replica reads its own copy of the sites directory (a ConfigMap mount), so a standby kept
the inventory it started with, and a takeover brought it back. The leader's reload is already recorded once, in
the audit log (``audit_log.inventory_reloaded``: its target is the version put in force). A standby reads the
newest such entry every ``FOLLOW_EVERY_S`` and, when its version is not the one in force here, takes its own sites
directory again with ``expect_version`` set to it: whole, or not at all.

- Its directory does not hold that version yet (a ConfigMap update reaches each pod's mount at its own moment, up
  to a minute or two apart): nothing changes, it says so once per version, and tries again at the next pass, so it
  follows as soon as its files arrive.
- Its directory holds a version that is refused (a bad file): the inventory in force stays, said once per version.
- The leader does not follow (its own reloads are what is recorded; an entry that waits in memory for the database
  would look older than what it runs). A standby that takes over leads with what it followed.
- The database away: the pass fails quietly and the next one tries again (/healthz already says the database is
  away). No record at all (a database nobody has reloaded on): nothing to follow.

A standby's reload writes no audit entry: the leader's is the one. Started by ``Controller.start`` on PostgreSQL
(replicas share a database there only), stopped by ``Controller.stop``. Pure: ``to_follow``; I/O: the pass and its
thread.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Final, Protocol

from edgefleet.cloud.fleet import InventoryChange
from edgefleet.errors import EdgefleetError, InventoryError, InventoryVersionMismatch

log = logging.getLogger(__name__)

# A standby reads the newest reload entry this often: one indexed query on a pooled session; a ConfigMap takes far
# longer than this to reach a pod, so following adds little to the wait.
FOLLOW_EVERY_S: Final = 5.0


class Reloading(Protocol):
    """What the follower needs of the controller."""

    @property
    def inventory_version(self) -> str: ...

    def reload_inventory(self, *, expect_version: str | None = None) -> InventoryChange: ...


def to_follow(*, recorded: str | None, in_force: str, leading: bool) -> str | None:
    """The version a replica should take, or None: standbys follow the newest recorded reload when it is not the
    version in force."""
    if leading or recorded is None or recorded == in_force:
        return None
    return recorded


class InventoryFollowing:
    """The follower's pass (``follow``, tests call it) and its thread (``start``/``stop``)."""

    def __init__(
        self,
        controller: Reloading,
        last_recorded: Callable[[], str | None],
        leading: Callable[[], bool],
        *,
        every_s: float = FOLLOW_EVERY_S,
    ) -> None:
        self._controller = controller
        self._last_recorded = last_recorded
        self._leading = leading
        self._every_s = every_s
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        # The version last said not to be followable (and why), so each is said once, not every pass.
        self._told: tuple[str, str] | None = None

    def follow(self) -> InventoryChange | None:
        """One pass: take the leader's newest recorded version when this standby runs another; the change taken,
        or None (nothing to follow, or not followable now: logged once)."""
        if self._leading():
            return None
        try:
            recorded = self._last_recorded()
        except EdgefleetError:
            return None  # the database is away: /healthz says so; the next pass tries again
        version = to_follow(recorded=recorded, in_force=self._controller.inventory_version, leading=self._leading())
        if version is None:
            return None
        try:
            change = self._controller.reload_inventory(expect_version=version)
        except InventoryVersionMismatch as exc:
            self._tell(
                version, "mismatch", "Cannot follow the leader's inventory yet: the sites directory differs", exc
            )
            return None
        except InventoryError as exc:
            problems = [str(p) for p in exc.problems]
            self._tell(version, "refused", "Refused the sites directory whole while following the leader", problems)
            return None
        self._told = None
        log.info(
            "Followed the leader's inventory reload",
            extra={"version": change.version, "previous_version": change.previous_version},
        )
        return change

    def _tell(self, version: str, why: str, message: str, detail: object) -> None:
        if self._told == (version, why):
            return
        self._told = (version, why)
        log.warning(
            message,
            extra={
                "leader_version": version,
                "version": self._controller.inventory_version,
                "detail": str(detail),
                "retry_every_s": self._every_s,
            },
        )

    def start(self) -> None:
        if self._thread is None:
            self._stopping.clear()
            self._thread = threading.Thread(target=self._run, name="edgefleet-inventory-following", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(self._every_s * 2)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.wait(self._every_s):
            try:
                self.follow()
            except Exception:  # the thread must outlive whatever one pass does
                log.exception("Failed to follow the leader's inventory")

"""What the API asks of rollouts: start one, read them, the release manager's commands, site holds.

``RolloutService`` is built by the controller beside the reconciler and read by the API's rollout routes (through
``FleetReader.rollouts``). Starting a rollout checks the release (the loader, against the inventory in force),
refuses one older than what runs unless it says ``rollback: true``, plans it over the fleet now (holds included),
pins each image by digest through its registry (``edgefleet.cloud.registry``; refused when a registry has no such
image or cannot be asked) and stores it with its idempotency key, the manifest stored with the pinned images in
place of the tags: every site the reconciler reaches, now, later or after a restart, and every revert to it, gets
those digests. The store keeps one active rollout per app. Commands are desired state
(``deciding.Commands``): each sets a field of the stored spec and writes its audit row, then wakes the reconciler,
which does the rest on its tick. Nothing here talks to a cluster.

Blackout windows are overridden with a reason (``Commands.blackout_override``): at the start (``start(...,
override_blackout=reason)``, when the rollout is known to be urgent before it runs) or later
(``override_blackout``, when its status shows sites blocked). The reason is audited and shown; a blank one is
refused (``BadOverride``): an override is a release manager's decision that the audit must explain.
"""

from __future__ import annotations

import logging
import re
import secrets
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, Literal

from edgefleet.clock import Clock
from edgefleet.cloud.access.audit_log import Actor
from edgefleet.cloud.fleet import FleetState
from edgefleet.cloud.registry import (
    ImagePin,
    RegistryClient,
    RegistryConfigError,
    load_registry_hosts,
    pin_images,
)
from edgefleet.cloud.rollouts.deciding import Commands, initial_status
from edgefleet.cloud.rollouts.facts import site_facts
from edgefleet.cloud.rollouts.planning import plan_rollout, rollout_spec
from edgefleet.cloud.rollouts.reconciling import Reconciler
from edgefleet.cloud.rollouts.store import (
    ENDED_STATES,
    ActiveRolloutExists,
    AuditEntry,
    Hold,
    RolloutNotFound,
    RolloutStore,
    StoredRollout,
)
from edgefleet.errors import EdgefleetError
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory
from edgefleet.releases import Release, load_release_text, parse_image, pin_release_text

__all__ = [
    "COMMANDS",
    "ActiveRolloutExists",
    "BadOverride",
    "Command",
    "Hold",
    "ImagesNotPinned",
    "RolloutNotFound",
    "RolloutRefused",
    "RolloutService",
    "StoredRollout",
]

log = logging.getLogger(__name__)

Command = Literal["pause", "resume", "promote", "abort", "rollback"]
COMMANDS: Final[tuple[Command, ...]] = ("pause", "resume", "promote", "abort", "rollback")


class RolloutRefused(EdgefleetError):
    """A rollout that cannot start as asked (a release older than what runs), or a command its state forbids."""


class BadOverride(EdgefleetError):
    """A blackout override without a reason."""


def override_reason(reason: str) -> str:
    """The reason of a blackout override, stripped; a blank one is refused."""
    stripped = reason.strip()
    if not stripped:
        raise BadOverride(
            "overriding the blackout windows needs a reason (a ticket, the emergency), for the audit and the "
            "rollout's status; give it, e.g. --override-blackout 'INC-4711: fix for the label printer crash'"
        )
    return stripped


class ImagesNotPinned(EdgefleetError):
    """A rollout not started because an image could not be pinned; ``unavailable`` when only because a registry
    could not be asked (try again later), else a registry said it has no such image (fix the release)."""

    def __init__(self, problems: list[str], *, unavailable: bool) -> None:
        self.problems = problems
        self.unavailable = unavailable
        super().__init__("the rollout was not started: " + "; ".join(problems))


def version_key(version: str) -> tuple[tuple[int, int | str], ...]:
    """A version as comparable parts: numbers as numbers, other runs as text ("1.10.0" > "1.9.2")."""
    return tuple((0, int(part)) if part.isdigit() else (1, part) for part in re.findall(r"\d+|[A-Za-z]+", version))


def older_than_running(release: Release, running: set[str]) -> str | None:
    """The newest version that runs when it is newer than the release's, else None."""
    newer = [v for v in running if version_key(v) > version_key(release.version)]
    return max(newer, key=version_key) if newer else None


class RolloutService:
    def __init__(
        self,
        store: RolloutStore,
        state: FleetState,
        reconciler: Reconciler,
        *,
        clock: Clock,
        registry_config: Path | None = None,
        registry_client: RegistryClient | None = None,
    ) -> None:
        self.store = store
        self.state = state
        self.reconciler = reconciler
        self.clock = clock
        # The registry hosts directory (EDGEFLEET_REGISTRY_CONFIG), read at every start; None: no registry is
        # asked and images go out as the release gives them.
        self.registry_config = registry_config
        self.registry_client = registry_client or RegistryClient()

    def pins(self, release: Release) -> list[ImagePin]:
        """What each image of ``release`` would be pinned to now (the plan shows it; the start does it)."""
        try:
            hosts = load_registry_hosts(self.registry_config) if self.registry_config is not None else None
        except RegistryConfigError as exc:
            return [
                ImagePin(container, image, "", problem=f"cannot pin the images: {exc}")
                for container, image in sorted(release.images.items())
            ]
        return pin_images(release, hosts, self.registry_client)

    def _new_id(self, now: float) -> str:
        return f"r-{datetime.fromtimestamp(now, UTC):%Y%m%d}-{secrets.token_hex(3)}"

    def start(
        self,
        text: str,
        *,
        by: str,
        idempotency_key: str | None = None,
        override_blackout: str | None = None,
        actor: Actor | None = None,
    ) -> tuple[StoredRollout, bool]:
        """Start a rollout of the release ``text``; (the rollout, True when it was started now). With
        ``override_blackout``, the reason its sites may start inside their blackout windows. Raises
        ``ReleaseError`` / ``PlanRefused`` (the release or its plan refused), ``RolloutRefused`` (older than what
        runs), ``ActiveRolloutExists`` (another rollout of the app is active), ``BadOverride`` (a blank reason)."""
        override = override_reason(override_blackout) if override_blackout is not None else None
        if idempotency_key is not None:
            earlier = self.store.by_idempotency_key(idempotency_key)
            if earlier is not None:
                return earlier, False
        inventory = self.state.inventory
        release = load_release_text(text, "release", inventory)
        if self.reconciler.gateway is None:
            raise RolloutRefused(
                "the inventory declares no Kubernetes cluster: a rollout would have nothing to apply to; add the "
                "sites' clusters (docs/inventory.md) and restart the controller"
            )
        now = self.clock.now()
        facts = site_facts(self.state, release.app, now=now)
        running = {v for f in facts.values() for v in f.versions}
        newer = older_than_running(release, running)
        if newer is not None and not release.rollback:
            raise RolloutRefused(
                f"{release.name} ({release.app} {release.version}) is older than {newer}, which runs in the fleet; "
                "set 'rollback: true' in the release to roll back to it"
            )
        active = self.store.active_for(release.app)
        if active is not None:
            raise ActiveRolloutExists(active)
        held = frozenset(self.store.holds())
        plan = plan_rollout(release, inventory, facts, held=held, now=now)
        spec = rollout_spec(plan, release)
        if override is not None:
            spec = replace(spec, commands=replace(spec.commands, blackout_override=override))
        pins = self.pins(release)
        problems = [pin.problem for pin in pins if pin.problem]
        if problems:
            # Refused before anything is stored: no site is touched.
            unavailable = all(pin.unknown is False for pin in pins if pin.problem)
            raise ImagesNotPinned(problems, unavailable=unavailable)
        for pin in pins:
            if pin.warning:
                log.warning(
                    "Left image unpinned",
                    extra={"release": release.name, "container": pin.container, "reason": pin.warning},
                )
        rollout = StoredRollout(
            id=self._new_id(now),
            app=release.app,
            release_name=release.name,
            release_yaml=_pinned_text(text, release, pins, inventory),
            spec=spec,
            status=initial_status(spec),
            gates={},
            active=True,
            created_at=now,
            created_by=by,
            updated_at=now,
            idempotency_key=idempotency_key,
        )
        actor = actor or Actor(by)
        what = f"start rollout of {release.name}"
        if override is not None:
            what += f", overriding blackout windows: {override}"
        audit = _entry(now, actor, by, what, None, release.name, rollout.id, action="start-rollout")
        stored, created = self.store.create(rollout, audit)
        if created:
            self.reconciler.wake()
        return stored, created

    def get(self, rollout_id: str) -> StoredRollout:
        return self.store.get(rollout_id)

    def page(self, *, after: tuple[float, str] | None = None, limit: int = 100) -> list[StoredRollout]:
        return self.store.page(after=after, limit=limit)

    def command(self, rollout_id: str, command: Command, *, by: str, actor: Actor | None = None) -> StoredRollout:
        """Record the release manager's ``command`` as the spec's desired state; the next tick acts on it."""
        rollout = self.store.get(rollout_id)
        commands = rollout.spec.commands
        state = rollout.status.state
        ended = state in ENDED_STATES
        activate = False
        if command == "rollback":
            if state in ("aborted", "rolled-back"):
                raise RolloutRefused(f"rollout {rollout_id} is {state}: its sites were reverted already")
            new = replace(commands, rolled_back=True)
            activate = ended  # a done rollout: revert every site it changed
        elif ended:
            raise RolloutRefused(f"rollout {rollout_id} is {state}; only 'rollback' applies to a rollout that ended")
        elif command == "pause":
            new = replace(commands, paused=True)
        elif command == "resume":
            new = replace(commands, paused=False)
        elif command == "abort":
            new = replace(commands, aborted=True)
        else:
            waiting = [i for i, w in enumerate(rollout.status.waves) if w == "awaiting-approval"]
            waves = rollout.spec.waves
            if not waiting:
                # Promote ahead: the next wave that needs a promotion and has not started.
                waiting = [
                    i
                    for i, w in enumerate(waves)
                    if w.needs_approval and i not in commands.promoted and rollout.status.waves[i] == "waiting"
                ][:1]
            if not waiting:
                raise RolloutRefused(f"rollout {rollout_id}: no wave waits for a promotion")
            new = replace(commands, promoted=commands.promoted | {waiting[0]})
        now = self.clock.now()
        audit = _entry(
            now, actor or Actor(by), by, f"{command} rollout", _commands(commands), _commands(new), rollout_id,
            action=f"{command}-rollout",
        )  # fmt: skip
        self.store.set_commands(rollout_id, new, activate=activate, audit=audit)
        self.reconciler.wake()
        return self.store.get(rollout_id)

    def override_blackout(self, rollout_id: str, *, reason: str, by: str, actor: Actor | None = None) -> StoredRollout:
        """From now on the rollout may start sites inside their blackout windows, for ``reason`` (audited, shown
        on the rollout and on each site it starts so). A second override replaces the reason."""
        given = override_reason(reason)
        rollout = self.store.get(rollout_id)
        state = rollout.status.state
        if state in ENDED_STATES:
            raise RolloutRefused(
                f"rollout {rollout_id} is {state}: no site starts any more, so no blackout to override"
            )
        commands = rollout.spec.commands
        new = replace(commands, blackout_override=given)
        audit = _entry(
            self.clock.now(), actor or Actor(by), by, f"override blackout windows: {given}", _commands(commands),
            _commands(new), rollout_id, action="override-blackout",
        )  # fmt: skip
        self.store.set_commands(rollout_id, new, activate=False, audit=audit)
        self.reconciler.wake()
        return self.store.get(rollout_id)

    def hold(self, site: SiteId, *, reason: str, by: str, actor: Actor | None = None) -> Hold:
        if site not in self.state.inventory.sites:
            raise KeyError(site)
        held = self.store.hold(Hold(site, reason, by, self.clock.now()), actor=actor)
        self.reconciler.wake()
        return held

    def release_hold(self, site: SiteId, *, by: str, actor: Actor | None = None) -> Hold | None:
        released = self.store.release_hold(site, by=by, now=self.clock.now(), actor=actor)
        self.reconciler.wake()
        return released

    def holds(self) -> dict[SiteId, Hold]:
        return self.store.holds()


def _pinned_text(text: str, release: Release, pins: list[ImagePin], inventory: Inventory) -> str:
    """The manifest ``text`` with each image pinned in place; checked by loading it again, so what the reconciler
    reads on every tick is the release with exactly these images."""
    pinned = {pin.container: pin.pinned for pin in pins if pin.pinned and pin.pinned != pin.image}
    if not pinned:
        return text
    try:
        out = pin_release_text(text, "release", pinned)
    except ValueError as exc:  # an image written across lines: the release's author can put it on one
        raise ImagesNotPinned([str(exc)], unavailable=False) from None
    again = load_release_text(out, "release", inventory)
    expected = dict(release.pin({c: str(parse_image(i).digest) for c, i in pinned.items()}).images)
    if dict(again.images) != expected:
        raise EdgefleetError(f"pinning the images changed more than the images: {dict(again.images)} != {expected}")
    return out


def _entry(
    at: float,
    actor: Actor,
    by: str,
    what: str,
    before: str | None,
    after: str | None,
    rollout_id: str,
    *,
    action: str,
) -> AuditEntry:
    """The audit entry of a person's action on a rollout: the principal ``actor`` acted; ``by``, the name the
    request gave, is added when it is another."""
    what += "" if by == actor.name else f" (as {by!r})"
    return AuditEntry(
        at, actor.name, what, before, after, rollout_id, action=action, role=actor.role, source=actor.source
    )


def _commands(commands: Commands) -> str:
    parts = [
        *(["paused"] if commands.paused else []),
        *(["promoted " + ",".join(str(i) for i in sorted(commands.promoted))] if commands.promoted else []),
        *(["aborted"] if commands.aborted else []),
        *(["rolled back"] if commands.rolled_back else []),
        *([f"blackouts overridden: {commands.blackout_override}"] if commands.blackout_override else []),
    ]
    return ", ".join(parts) or "none"

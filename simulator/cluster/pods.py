"""Pods in a simulated cluster: what the API server's admission adds when one is created (``admit_pod``), what a
node's kubelet reports as it pulls, starts and restarts the containers (``plan_kubelet``), and what the node
lifecycle controller marks when the kubelet goes silent (``mark_not_ready``).

A bound pod on a Ready node goes Pending (ContainerCreating; event ``Pulling``) -> after the image pull
(``PodTiming.pull_s``, or what the pod's ``PodFate`` says) Running with every container ready (``Pulled``,
``Created``, ``Started``), conditions PodReadyToStartContainers, Initialized, ContainersReady, Ready and
PodScheduled True, ``podIP``, ``hostIP``, ``startTime`` and ``containerStatuses`` as the kubelet writes them. A
fate may fail the pull (``ErrImagePull``, then ``ImagePullBackOff``, retried with the kubelet's back-off) or crash
the container (``CrashLoopBackOff``, ``restartCount`` climbing, back-off 10 s doubling to 5 min). The kubelet's
memory of each pod (``KubeletProgress``) is the shell's to keep; the functions here are pure.

A pod that runs to completion (``restartPolicy`` Never or OnFailure: a Job's) exits after its run time: the
``sim.edgefleet.io/run-seconds`` annotation, else ``PodTiming.run_s``, with the ``sim.edgefleet.io/exit-code``
annotation's code (0 unless it says). Exit 0 ends it Succeeded (``Completed``); another code ends it Failed
(``Error``) under Never and restarts the container with the back-off under OnFailure. A finished pod is left as
it is. Pods with ``restartPolicy: Always`` (every Deployment's and DaemonSet's) never exit unless their fate
crashes them; the annotations do not apply to them.

``PodFate`` is the seam the fault layer uses; ``HealthyPods`` (the default) pulls in ``pull_s`` and never fails.
Called by ``controlling``; ``admit_pod`` by the server too, on every pod created through the API.
"""

from __future__ import annotations

import copy
import hashlib
from dataclasses import dataclass, replace
from typing import Final, Literal, Protocol

from edgefleet.clock import format_utc
from simulator.cluster.matching import Obj, condition, safe_hash

NOT_READY_TAINT: Final = "node.kubernetes.io/not-ready"
UNREACHABLE_TAINT: Final = "node.kubernetes.io/unreachable"
# The API server's DefaultTolerationSeconds admission plugin (--default-not-ready-toleration-seconds and
# --default-unreachable-toleration-seconds).
DEFAULT_TOLERATION_S: Final = 300
# The simulator's seams on a pod that runs to completion: how long its containers run, and the code they exit with.
RUN_SECONDS_ANNOTATION: Final = "sim.edgefleet.io/run-seconds"
EXIT_CODE_ANNOTATION: Final = "sim.edgefleet.io/exit-code"
# The kubelet's container restart back-off: 10 s, doubling, at most 5 minutes.
BACKOFF_S: Final = 10.0
MAX_BACKOFF_S: Final = 300.0


@dataclass(frozen=True, slots=True)
class PodTiming:
    """How long the simulated kubelet takes. ``scaled(0.1)`` keeps the ratios for tests."""

    pull_s: float = 1.5
    # How long a crashing container runs before it exits.
    crash_after_s: float = 2.0
    backoff_s: float = BACKOFF_S
    max_backoff_s: float = MAX_BACKOFF_S
    # How long a pod that runs to completion runs when its template does not say (RUN_SECONDS_ANNOTATION).
    run_s: float = 5.0

    def scaled(self, factor: float) -> PodTiming:
        return PodTiming(
            *(
                value * factor
                for value in (self.pull_s, self.crash_after_s, self.backoff_s, self.max_backoff_s, self.run_s)
            )
        )

    def backoff(self, attempt: int) -> float:
        return float(min(self.max_backoff_s, self.backoff_s * 2 ** max(0, attempt - 1)))


@dataclass(frozen=True, slots=True)
class Fate:
    """What happens to one pod's containers: the pull takes ``pull_s`` (None: the timing's), fails with
    ``pull_error`` (None: it succeeds), or the containers start and crash (``crashes``)."""

    pull_s: float | None = None
    pull_error: str | None = None
    crashes: bool = False


class PodFate(Protocol):
    """Consulted for every pull and every start, so a fault cleared in between takes effect at the next try."""

    def fate(self, pod: Obj, node: Obj) -> Fate: ...


class HealthyPods:
    def fate(self, pod: Obj, node: Obj) -> Fate:
        return Fate()


Stage = Literal["pulling", "pull-failed", "pull-backoff", "running", "crashed", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class KubeletProgress:
    """The kubelet's memory of one pod: its stage, since when, how many failed tries or restarts."""

    stage: Stage
    since: float
    started: float
    attempts: int = 0
    restarts: int = 0
    # The container's last run that ended: when it started and when it exited (lastState.terminated).
    last_run: float = 0.0
    last_exit: float = 0.0


@dataclass(frozen=True, slots=True)
class KubeletEvent:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str
    field_path: str = ""


@dataclass(frozen=True, slots=True)
class KubeletStep:
    """What the kubelet writes now (``status``: None for nothing), records, and when it next has work."""

    progress: KubeletProgress
    status: Obj | None = None
    events: tuple[KubeletEvent, ...] = ()
    wake_at: float | None = None


# --- admission --------------------------------------------------------------------------------------------------


def _tolerates_default(tolerations: list[Obj], key: str) -> bool:
    return any((t.get("key") in (key, None, "")) and (t.get("effect") in ("NoExecute", None, "")) for t in tolerations)


def default_pod_spec(spec: Obj) -> None:
    """The API server's defaults for a pod spec (also a template's), filled in place."""
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("securityContext", {})
    for container in spec.get("containers") or []:
        if not isinstance(container, dict):
            continue
        tag = str(container.get("image", "")).rsplit("/", 1)[-1]
        latest = ":" not in tag or tag.endswith(":latest")
        container.setdefault("imagePullPolicy", "Always" if latest and "@" not in tag else "IfNotPresent")
        container.setdefault("terminationMessagePath", "/dev/termination-log")
        container.setdefault("terminationMessagePolicy", "File")
        container.setdefault("resources", {})


def admit_pod(pod: Obj) -> Obj:
    """A new pod as the API server stores it: the defaults it fills in and DefaultTolerationSeconds' 300 s
    NoExecute tolerations of ``not-ready`` and ``unreachable`` for a pod that does not tolerate them already."""
    admitted = copy.deepcopy(pod)
    spec = admitted.setdefault("spec", {})
    if not isinstance(spec, dict):
        return admitted  # the store refuses what is not an object; nothing to default
    default_pod_spec(spec)
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    tolerations = list(spec.get("tolerations") or [])
    for key in (NOT_READY_TAINT, UNREACHABLE_TAINT):
        if not _tolerates_default(tolerations, key):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": DEFAULT_TOLERATION_S}
            )
    spec["tolerations"] = tolerations
    status = admitted.setdefault("status", {})
    if isinstance(status, dict):
        status.setdefault("phase", "Pending")
        status.setdefault("qosClass", _qos_class(spec))
    return admitted


def _qos_class(spec: Obj) -> str:
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    if not any(
        (c.get("resources") or {}).get("requests") or (c.get("resources") or {}).get("limits") for c in containers
    ):
        return "BestEffort"
    guaranteed = all(
        (limits := (c.get("resources") or {}).get("limits") or {}).get("cpu")
        and limits.get("memory")
        and all(
            ((c.get("resources") or {}).get("requests") or {}).get(r, limits[r]) == limits[r] for r in ("cpu", "memory")
        )
        for c in containers
    )
    return "Guaranteed" if guaranteed else "Burstable"


# --- the kubelet ------------------------------------------------------------------------------------------------


def pod_ip(pod: Obj) -> str:
    """A pod IP from the pod's uid, in a 10.244.0.0/16 pod network (stable for the pod's life)."""
    digest = hashlib.sha256(str(pod["metadata"].get("uid", pod["metadata"]["name"])).encode()).digest()
    return f"10.244.{digest[0]}.{max(2, digest[1])}"


def host_ip(node: Obj) -> str:
    for address in (node.get("status") or {}).get("addresses") or []:
        if address.get("type") == "InternalIP":
            return str(address.get("address"))
    return ""


def _image_id(image: str) -> str:
    name, _, digest = image.partition("@")
    # A tag's ':' sits after the last '/'; a registry's port before it.
    repository = name.rsplit(":", 1)[0] if ":" in name.rsplit("/", 1)[-1] else name
    if "/" not in repository:
        repository = f"docker.io/library/{repository}"
    elif "." not in repository.split("/")[0]:
        repository = f"docker.io/{repository}"
    # A pinned image runs the digest it names; a tag stands for a digest of its own (no registry is asked here).
    return f"{repository}@{digest or 'sha256:' + hashlib.sha256(image.encode()).hexdigest()}"


def _conditions(pod: Obj, *, ready: bool, now: float, not_ready: list[str], ended: str = "") -> list[Obj]:
    """The five conditions the kubelet reports (PodScheduled kept as the scheduler wrote it); a transition time
    moves only when its status does. ``ended``: ``succeeded`` or ``failed`` for a pod whose containers finished
    (its sandbox is gone, and the reasons say why it is not Ready)."""
    reason = "ContainersNotReady"
    message = f"containers with unready status: [{' '.join(not_ready)}]"
    if ended:
        reason, message = ("PodCompleted" if ended == "succeeded" else "PodFailed"), ""
    wanted = [
        ("PodReadyToStartContainers", not ended, "", ""),
        ("Initialized", True, "PodCompleted" if ended else "", ""),
        ("Ready", ready, "" if ready else reason, "" if ready else message),
        ("ContainersReady", ready, "" if ready else reason, "" if ready else message),
    ]
    stamp = format_utc(now)
    found = []
    for kind, status, why, text in wanted:
        old = condition(pod, kind) or {}
        value = "True" if status else "False"
        entry: Obj = {
            "type": kind,
            "status": value,
            "lastProbeTime": None,
            "lastTransitionTime": old.get("lastTransitionTime") if old.get("status") == value else stamp,
        }
        if why:
            entry["reason"] = why
        if text:
            entry["message"] = text
        found.append(entry)
    scheduled = condition(pod, "PodScheduled") or {
        "type": "PodScheduled",
        "status": "True",
        "lastProbeTime": None,
        "lastTransitionTime": stamp,
    }
    return [*found, scheduled]


def _status(
    pod: Obj, node: Obj, progress: KubeletProgress, *, now: float, error: str = "", timing: PodTiming | None = None
) -> Obj:
    """The pod's status as the kubelet posts it for ``progress``."""
    spec = pod.get("spec") or {}
    containers = [c for c in spec.get("containers") or [] if isinstance(c, dict)]
    running = progress.stage == "running"
    ended = progress.stage in ("succeeded", "failed")
    statuses = []
    for container in containers:
        name, image = str(container.get("name", "")), str(container.get("image", ""))
        entry: Obj = {
            "name": name,
            "image": image,
            "imageID": _image_id(image) if progress.stage in ("running", "crashed", "succeeded", "failed") else "",
            "ready": running,
            "started": running,
            "restartCount": progress.restarts,
        }
        if progress.stage in ("running", "crashed", "succeeded", "failed"):
            entry["containerID"] = (
                f"containerd://{safe_hash([pod['metadata'].get('uid'), name, progress.restarts], length=32)}"
            )
        if ended:
            entry["state"] = {
                "terminated": {
                    "exitCode": (exit_code(pod) or 1) if progress.stage == "failed" else 0,
                    "reason": "Completed" if progress.stage == "succeeded" else "Error",
                    "startedAt": format_utc(progress.last_run),
                    "finishedAt": format_utc(progress.last_exit),
                    "containerID": entry["containerID"],
                }
            }
        elif running:
            entry["state"] = {"running": {"startedAt": format_utc(progress.since)}}
        elif progress.stage == "pulling":
            entry["state"] = {"waiting": {"reason": "ContainerCreating"}}
        elif progress.stage == "pull-failed":
            entry["state"] = {"waiting": {"reason": "ErrImagePull", "message": error}}
        elif progress.stage == "pull-backoff":
            entry["state"] = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling image "{image}"'}}
        else:
            delay = timing.backoff(progress.restarts) if timing is not None else BACKOFF_S
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": _backoff_message(pod, name, delay)}}
        if progress.restarts:
            entry["lastState"] = {
                "terminated": {
                    "exitCode": 1,
                    "reason": "Error",
                    "startedAt": format_utc(progress.last_run),
                    "finishedAt": format_utc(progress.last_exit),
                    "containerID": f"containerd://{safe_hash([pod['metadata'].get('uid'), name, progress.restarts - 1], length=32)}",
                }
            }
        statuses.append(entry)
    ip = pod_ip(pod)
    phase = {"running": "Running", "crashed": "Running", "succeeded": "Succeeded", "failed": "Failed"}
    status: Obj = {
        "phase": phase.get(progress.stage, "Pending"),
        "conditions": _conditions(
            pod,
            ready=running,
            now=now,
            not_ready=[] if running else [str(c.get("name")) for c in containers],
            ended=progress.stage if ended else "",
        ),
        "hostIP": host_ip(node),
        "hostIPs": [{"ip": host_ip(node)}],
        "podIP": ip,
        "podIPs": [{"ip": ip}],
        "startTime": format_utc(progress.started),
        "containerStatuses": statuses,
        "qosClass": (pod.get("status") or {}).get("qosClass", "BestEffort"),
    }
    if progress.stage == "pulling":
        # The sandbox is not up yet: no pod IP until the containers are created.
        del status["podIP"], status["podIPs"]
    return status


def _backoff_message(pod: Obj, container: str, seconds: float) -> str:
    meta = pod["metadata"]
    return (
        f"back-off {format_backoff(seconds)} restarting failed container={container} "
        f"pod={meta['name']}_{meta.get('namespace', '')}({meta.get('uid', '')})"
    )


def format_backoff(seconds: float) -> str:
    """Go's time.Duration as the kubelet prints a back-off: ``10s``, ``1m20s``, ``5m0s``."""
    whole = round(seconds)
    return f"{whole // 60}m{whole % 60}s" if whole >= 60 else f"{seconds:g}s"


def _next_sync(timing: PodTiming, attempts: int) -> float:
    """How soon after a failed pull the kubelet shows the back-off: its next sync, well before the retry."""
    return min(1.0, timing.backoff(attempts) / 10)


def _annotation_number(pod: Obj, key: str) -> float | None:
    value = (pod["metadata"].get("annotations") or {}).get(key)
    try:
        return None if value is None else float(value)
    except ValueError:
        return None  # a seam set wrong reads as not set, as an unknown annotation does on a real cluster


def runs_to_completion(pod: Obj) -> bool:
    """A pod whose containers are not restarted when they exit 0 (restartPolicy Never or OnFailure)."""
    policy: object = (pod.get("spec") or {}).get("restartPolicy", "Always")
    return policy != "Always"


def exit_code(pod: Obj) -> int:
    """The code a run-to-completion pod's containers exit with (EXIT_CODE_ANNOTATION; 0 when it does not say)."""
    return int(_annotation_number(pod, EXIT_CODE_ANNOTATION) or 0)


def _run(pod: Obj, fate: Fate, timing: PodTiming) -> tuple[float, int] | None:
    """How long a started container runs and the code it exits with; None for one that runs until stopped."""
    if fate.crashes:
        return timing.crash_after_s, 1
    if not runs_to_completion(pod):
        return None
    seconds = _annotation_number(pod, RUN_SECONDS_ANNOTATION)
    return (timing.run_s if seconds is None else max(0.0, seconds)), exit_code(pod)


def plan_kubelet(
    pod: Obj, node: Obj, progress: KubeletProgress | None, *, fate: Fate, timing: PodTiming, now: float
) -> KubeletStep:
    """One look of the kubelet at a pod bound to its (Ready) node."""
    containers = [c for c in (pod.get("spec") or {}).get("containers") or [] if isinstance(c, dict)]
    names = [str(c.get("name", "")) for c in containers]
    images = [str(c.get("image", "")) for c in containers]
    pull_s = timing.pull_s if fate.pull_s is None else fate.pull_s

    def path(name: str) -> str:
        return f"spec.containers{{{name}}}"

    def pulling_events() -> tuple[KubeletEvent, ...]:
        return tuple(
            KubeletEvent("Normal", "Pulling", f'Pulling image "{i}"', path(n))
            for n, i in zip(names, images, strict=True)
        )

    def start_events() -> tuple[KubeletEvent, ...]:
        found: list[KubeletEvent] = []
        for n in names:
            found += [
                KubeletEvent("Normal", "Created", f"Created container {n}", path(n)),
                KubeletEvent("Normal", "Started", f"Started container {n}", path(n)),
            ]
        return tuple(found)

    if progress is None:
        progress = KubeletProgress("pulling", now, now)
        return KubeletStep(progress, _status(pod, node, progress, now=now), pulling_events(), now + pull_s)
    if progress.stage == "pulling":
        if now < progress.since + pull_s:
            return KubeletStep(progress, wake_at=progress.since + pull_s)
        if fate.pull_error is not None:
            failed = replace(progress, stage="pull-failed", since=now, attempts=progress.attempts + 1)
            message = f'Failed to pull image "{images[0] if images else ""}": {fate.pull_error}'
            events: tuple[KubeletEvent, ...] = (
                KubeletEvent("Warning", "Failed", message, path(names[0]) if names else ""),
                KubeletEvent("Warning", "Failed", "Error: ErrImagePull", path(names[0]) if names else ""),
            )
            status = _status(pod, node, failed, now=now, error=message)
            # The kubelet's next sync shows the back-off: soon, well before the retry.
            return KubeletStep(failed, status, events, now + _next_sync(timing, failed.attempts))
        pulled = tuple(
            KubeletEvent(
                "Normal",
                "Pulled",
                f'Successfully pulled image "{i}" in {pull_s:g}s ({pull_s:g}s including waiting)',
                path(n),
            )
            for n, i in zip(names, images, strict=True)
        )
        running = replace(progress, stage="running", since=now)
        run = _run(pod, fate, timing)
        wake = None if run is None else now + run[0]
        return KubeletStep(running, _status(pod, node, running, now=now), pulled + start_events(), wake)
    if progress.stage in ("pull-failed", "pull-backoff"):
        retry = progress.since + timing.backoff(progress.attempts)
        if now < retry:
            if progress.stage == "pull-backoff":
                return KubeletStep(progress, wake_at=retry)
            shown_at = progress.since + _next_sync(timing, progress.attempts)
            if now < shown_at:
                return KubeletStep(progress, wake_at=shown_at)
            # The look after the failure shows ErrImagePull turned ImagePullBackOff, as the kubelet's next sync does.
            waiting = replace(progress, stage="pull-backoff")
            back = tuple(
                KubeletEvent("Normal", "BackOff", f'Back-off pulling image "{i}"', path(n))
                for n, i in zip(names, images, strict=True)
            )
            return KubeletStep(waiting, _status(pod, node, waiting, now=now), back, retry)
        again = replace(progress, stage="pulling", since=now)
        return KubeletStep(again, _status(pod, node, again, now=now), pulling_events(), now + pull_s)
    if progress.stage in ("succeeded", "failed"):
        return KubeletStep(progress)  # finished: nothing more happens to it
    if progress.stage == "running":
        run = _run(pod, fate, timing)
        if run is None:
            if (condition(pod, "Ready") or {}).get("status") != "True":
                # Back from a silence (its node was marked NotReady, and so its pods): the kubelet reports again.
                return KubeletStep(progress, _status(pod, node, progress, now=now))
            return KubeletStep(progress)
        run_s, code = run
        if now < progress.since + run_s:
            return KubeletStep(progress, wake_at=progress.since + run_s)
        policy = (pod.get("spec") or {}).get("restartPolicy", "Always")
        if policy != "Always" and (code == 0 or policy == "Never"):
            ended = replace(
                progress,
                stage="succeeded" if code == 0 else "failed",
                since=now,
                last_run=progress.since,
                last_exit=now,
            )
            return KubeletStep(ended, _status(pod, node, ended, now=now))
        crashed = replace(
            progress, stage="crashed", since=now, restarts=progress.restarts + 1, last_run=progress.since, last_exit=now
        )
        delay = timing.backoff(crashed.restarts)
        status = _status(pod, node, crashed, now=now, timing=timing)
        events = tuple(
            KubeletEvent(
                "Warning",
                "BackOff",
                f"Back-off restarting failed container {n} in pod {pod['metadata']['name']}_{pod['metadata'].get('namespace', '')}({pod['metadata'].get('uid', '')})",
                path(n),
            )
            for n in names
        )
        return KubeletStep(crashed, status, events, now + delay)
    # crashed: restart after the back-off
    restart_at = progress.since + timing.backoff(progress.restarts)
    if now < restart_at:
        return KubeletStep(progress, wake_at=restart_at)
    running = replace(progress, stage="running", since=now)
    run = _run(pod, fate, timing)
    wake = None if run is None else now + run[0]
    return KubeletStep(running, _status(pod, node, running, now=now), start_events(), wake)


def mark_not_ready(pod: Obj, *, now: float) -> Obj | None:
    """The node lifecycle controller's MarkPodsNotReady for a pod on a node that stopped reporting: its Ready
    condition False (the rest of its status as the kubelet last wrote it); None if it is not Ready now."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    status = copy.deepcopy(pod.get("status") or {})
    status["conditions"] = [
        {**c, "status": "False", "lastTransitionTime": format_utc(now)} if c.get("type") == "Ready" else c
        for c in status.get("conditions") or []
    ]
    return status

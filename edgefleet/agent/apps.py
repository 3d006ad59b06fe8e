"""The apps on the box (scan-upload, sorting-recognition, ...) with their versions and states: the agent's
``AppSource``.

Two real sources: a local file that the box's deployment tooling writes (``FileAppSource``), or KubeEdge edgecore's
MetaServer, which serves the node's own pods as a subset of the Kubernetes API on 127.0.0.1:10550
(``MetaServerAppSource``); ``NoAppSource`` when the box has neither. ``running`` reads the source once per heartbeat,
``cli`` chooses it. A source never raises: whatever went wrong is said in ``AppReport.error``, in words that tell
site staff what to fix, and the heartbeat still goes out.

Each app may carry health figures (``AppState.figures``, ``edgefleet.agent.figures``): the apps file gives them
per app; for the MetaServer's pods the agent scrapes the pod's own Prometheus endpoint (``figures_url``).

Only the standard library talks HTTP here (urllib.request): the agent stays small (no httpx, requests or pydantic).
"""

from __future__ import annotations

import logging
import socket
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, get_args
from urllib.parse import urlsplit

import msgspec
from msgspec import Struct

from edgefleet.agent.figures import METRICS_PATH, SCRAPE_TIMEOUT_S, clean_figures, scrape_figures
from edgefleet.messages import AppReport, AppRunState, AppState

log = logging.getLogger(__name__)

DEFAULT_METASERVER_URL: Final = "http://127.0.0.1:10550"
PODS_PATH: Final = "/api/v1/pods"
# The MetaServer is on the box itself and answers in milliseconds; waiting longer would only push the heartbeat
# off its schedule while edgecore is stuck.
METASERVER_TIMEOUT_S: Final = 1.0
# A node's PodList is a few hundred KB at most (30 pods of ~10 KB); anything far larger is not a PodList.
MAX_PODLIST_BYTES: Final = 8 * 1024 * 1024
MAX_APPS_FILE_BYTES: Final = 256 * 1024
# A heartbeat must stay under messages.MAX_MESSAGE_BYTES (64 KB): 64 apps of a few hundred bytes fit beside 8 GPUs.
MAX_APPS: Final = 64
# Pods of the node's own plumbing (kube-proxy, edgemesh) are not the box's apps.
SYSTEM_NAMESPACES: Final = ("kube-system", "kubeedge")
NAME_LABELS: Final = ("app.kubernetes.io/name", "app")
VERSION_LABEL: Final = "app.kubernetes.io/version"
# Where a pod serves its /metrics page: this annotation's port, else the container port named "metrics".
FIGURES_PORT_ANNOTATION: Final = "edgefleet.io/figures-port"
METRICS_PORT_NAME: Final = "metrics"
# Scrapes per heartbeat: each may wait SCRAPE_TIMEOUT_S for a stuck app, and the heartbeat must keep its schedule.
# A box runs one or two apps with figures; a node full of pods naming a metrics port gets the first few read.
MAX_SCRAPES: Final = 4
# Container waiting reasons that will not clear without a human (a bad image, a bad config, a crashing app).
FAILED_WAITING_REASONS: Final = frozenset(
    {
        "CrashLoopBackOff",
        "ImagePullBackOff",
        "ErrImagePull",
        "ErrImageNeverPull",
        "InvalidImageName",
        "CreateContainerConfigError",
        "CreateContainerError",
        "RunContainerError",
    }
)
APP_STATES: Final[frozenset[str]] = frozenset(get_args(AppRunState))
_TEXT_MAX: Final = 256
_FILE_FORMAT_HINT: Final = (
    'expected JSON {"apps": [{"name": ..., "version": ..., "state": "running|pending|stopped|failed|unknown", '
    '"figures": {"fps": 25.0}}]} '
    "or lines 'NAME VERSION STATE [DETAIL]'"
)


def _short(text: str) -> str:
    """Fit a text into a heartbeat field (messages.ShortText); the controller refuses longer ones."""
    return text if len(text) <= _TEXT_MAX else text[: _TEXT_MAX - 3] + "..."


def limit_apps(apps: list[AppState]) -> tuple[list[AppState], str | None]:
    """At most MAX_APPS apps (a heartbeat has a size limit), and the note saying how many were left out."""
    if len(apps) <= MAX_APPS:
        return apps, None
    return apps[:MAX_APPS], f"{len(apps)} apps found, only the first {MAX_APPS} are reported"


class _ErrorLog:
    """Logs a source's error when it changes, not at every heartbeat: a missing file would otherwise log every 10 s."""

    def __init__(self, what: str) -> None:
        self.what = what
        self.last: str | None = None

    def report(self, source: str, error: str | None, apps: list[AppState] | None = None) -> AppReport:
        if error != self.last:
            if error is not None:
                log.warning("Failed to read apps of box", extra={"source": self.what, "error": error})
            elif self.last is not None:
                log.info("Read apps of box again", extra={"source": self.what})
            self.last = error
        return AppReport(source=source, error=_short(error) if error else None, apps=apps or [])


class NoAppSource:
    """A box with no apps file and no MetaServer."""

    source: Final = "none"

    def read(self) -> AppReport:
        return AppReport(source=self.source)

    def states(self) -> AppReport:
        return self.read()


# --- the apps file -------------------------------------------------------------------------------------------


class _FileApp(Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """An app of the apps file: an AppState whose figures are taken as written, then cleaned (``clean_figures``),
    so one bad figure drops that figure, with a note, and not the whole file."""

    name: str
    version: str
    state: AppRunState
    detail: str | None = None
    figures: dict[str, Any] | None = None


class _AppsFile(Struct, forbid_unknown_fields=True):
    apps: list[_FileApp]


def _with_note(detail: str | None, note: str | None) -> str | None:
    if note is None:
        return detail
    return _short(f"{detail}; {note}" if detail else note)


def _file_app(app: _FileApp) -> AppState:
    figures, note = clean_figures(app.figures or {})
    return AppState(
        name=_short(app.name),
        version=_short(app.version),
        state=app.state,
        detail=_with_note(_short(app.detail) if app.detail else None, note),
        figures=figures,
    )


_apps_file_decoder = msgspec.json.Decoder(_AppsFile)


def parse_apps_file(text: str) -> list[AppState]:
    """The apps listed in an apps file (JSON, or one app a line); raises ValueError saying where and what is wrong."""
    if text.lstrip().startswith("{"):
        try:
            return [_file_app(app) for app in _apps_file_decoder.decode(text.encode()).apps]
        except msgspec.ValidationError as exc:
            raise ValueError(f"{exc}; {_FILE_FORMAT_HINT}") from exc
        except msgspec.DecodeError as exc:
            raise ValueError(f"not valid JSON ({exc})") from exc
    apps = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        fields = line.split(maxsplit=3)
        if len(fields) < 3:
            raise ValueError(f"line {number}: {line[:60]!r} has {len(fields)} field(s); {_FILE_FORMAT_HINT}")
        name, version, state = fields[:3]
        if state not in APP_STATES:
            raise ValueError(f"line {number}: state {state[:30]!r} is not one of {', '.join(sorted(APP_STATES))}")
        detail = fields[3] if len(fields) == 4 else None
        apps.append(
            AppState(
                name=_short(name),
                version=_short(version),
                state=state,  # type: ignore[arg-type]  # checked against APP_STATES above
                detail=_short(detail) if detail else None,
            )
        )
    return apps


class FileAppSource:
    """Apps from a local file, read at every heartbeat so that a deployment's rewrite shows at once."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.source = _short(f"file:{self.path}")
        self._errors = _ErrorLog(self.source)

    def read(self) -> AppReport:
        try:
            with self.path.open("rb") as f:
                data = f.read(MAX_APPS_FILE_BYTES + 1)
        except FileNotFoundError:
            return self._error(f"apps file {self.path} does not exist; create it or fix --apps-file")
        except OSError as exc:
            return self._error(f"apps file {self.path} cannot be read: {exc.strerror or exc}")
        if len(data) > MAX_APPS_FILE_BYTES:
            return self._error(
                f"apps file {self.path} is larger than {MAX_APPS_FILE_BYTES} bytes; is it the right file?"
            )
        try:
            apps = parse_apps_file(data.decode("utf-8"))
        except UnicodeDecodeError:
            return self._error(f"apps file {self.path} is not UTF-8 text")
        except ValueError as exc:
            return self._error(f"apps file {self.path}: {exc}")
        apps, error = limit_apps(apps)
        return self._errors.report(self.source, error, apps)

    def states(self) -> AppReport:
        return self.read()  # the figures are in the file: nothing more to read

    def _error(self, text: str) -> AppReport:
        return self._errors.report(self.source, text)


# --- KubeEdge MetaServer ---------------------------------------------------------------------------------------
# The fields of a Kubernetes PodList that tell an app's name, version and state; everything else is ignored.


class _Meta(Struct, rename="camel"):
    name: str = ""
    namespace: str = "default"
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    deletion_timestamp: str | None = None


class _Port(Struct, rename="camel"):
    name: str | None = None
    container_port: int = 0


class _Container(Struct):
    name: str = ""
    image: str = ""
    ports: list[_Port] | None = None


class _PodSpec(Struct):
    containers: list[_Container] | None = None


class _Waiting(Struct):
    reason: str | None = None


class _Terminated(Struct, rename="camel"):
    reason: str | None = None
    exit_code: int = 0


class _ContainerState(Struct):
    running: dict[str, object] | None = None
    waiting: _Waiting | None = None
    terminated: _Terminated | None = None


class _ContainerStatus(Struct, rename="camel"):
    name: str = ""
    ready: bool = False
    restart_count: int = 0
    state: _ContainerState | None = None


class _PodStatus(Struct, rename="camel"):
    phase: str | None = None
    reason: str | None = None
    pod_ip: str | None = msgspec.field(default=None, name="podIP")
    container_statuses: list[_ContainerStatus] | None = None


class Pod(Struct):
    metadata: _Meta = msgspec.field(default_factory=_Meta)
    spec: _PodSpec = msgspec.field(default_factory=_PodSpec)
    status: _PodStatus = msgspec.field(default_factory=_PodStatus)


class PodList(Struct):
    kind: str = ""
    items: list[Pod] | None = None


_podlist_decoder = msgspec.json.Decoder(PodList)


def image_tag(image: str) -> str:
    """The version an image reference names: its tag, else its digest (shortened), else "latest"."""
    name, _, digest = image.partition("@")
    last = name.rsplit("/", 1)[-1]  # a registry's ":port" sits before the last "/"
    if ":" in last:
        return last.split(":", 1)[1]
    if digest:
        algorithm, _, value = digest.partition(":")
        return f"{algorithm}:{value[:12]}"
    return "latest"


def pod_state(pod: Pod) -> tuple[AppRunState, str | None]:
    """The app state a pod is in, and why when it is not simply running."""
    if pod.metadata.deletion_timestamp:
        return "stopped", "terminating"
    phase = pod.status.phase
    if phase == "Failed":
        return "failed", pod.status.reason or "pod failed"
    if phase == "Succeeded":
        # A Job's pod that ran to success: done, not down (an alert on it would be noise every night).
        return "completed", None
    if phase not in ("Pending", "Running"):
        return "unknown", f"pod phase {phase or 'not reported'}"
    statuses = pod.status.container_statuses or []
    for cs in statuses:
        state = cs.state or _ContainerState()
        if state.waiting is not None and state.waiting.reason in FAILED_WAITING_REASONS:
            return "failed", f"container {cs.name}: {state.waiting.reason} (restarts {cs.restart_count})"
        if state.terminated is not None and state.terminated.exit_code != 0:
            why = state.terminated.reason or "Error"
            return "failed", f"container {cs.name} exited with code {state.terminated.exit_code} ({why})"
    if phase == "Pending":
        for cs in statuses:
            if cs.state is not None and cs.state.waiting is not None and cs.state.waiting.reason:
                return "pending", f"container {cs.name}: {cs.state.waiting.reason}"
        return "pending", pod.status.reason
    for cs in statuses:
        if not cs.ready:
            return "pending", f"container {cs.name} is not ready"
    restarts = sum(cs.restart_count for cs in statuses)
    return "running", (f"restarts {restarts}" if restarts else None)


def figures_url(pod: Pod) -> tuple[str | None, str | None]:
    """Where the pod serves its /metrics page (``http://<podIP>:<port>/metrics``), from its
    ``edgefleet.io/figures-port`` annotation or else its container port named ``metrics``; (None, None) when it
    names none, (None, why) when it names one that cannot be used."""
    annotated = (pod.metadata.annotations or {}).get(FIGURES_PORT_ANNOTATION)
    port: int | None = None
    if annotated is not None:
        if not annotated.strip().isdigit() or not 0 < int(annotated) < 65536:
            return None, f"figures: annotation {FIGURES_PORT_ANNOTATION}={annotated[:20]!r} is not a port number"
        port = int(annotated)
    else:
        named = [
            p.container_port
            for c in pod.spec.containers or []
            for p in c.ports or []
            if p.name == METRICS_PORT_NAME and 0 < p.container_port < 65536
        ]
        port = named[0] if named else None
    if port is None:
        return None, None
    if not pod.status.pod_ip:
        return None, "figures: the pod has no IP yet"
    host = f"[{pod.status.pod_ip}]" if ":" in pod.status.pod_ip else pod.status.pod_ip
    return f"http://{host}:{port}{METRICS_PATH}", None


Scrape = Callable[[str], tuple[dict[str, float] | None, str | None]]


def apps_from_pods(
    pods: PodList, *, skip_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES, scrape: Scrape | None = None
) -> list[AppState]:
    """One app per pod of the node, named and versioned by its app.kubernetes.io labels. With ``scrape``, a running
    pod that names a metrics endpoint (``figures_url``) gets the figures read there, or a note why not in its
    detail; without it (the simulator's boxes) no app has figures."""
    apps = []
    scrapes = 0
    for pod in pods.items or []:
        if pod.metadata.namespace in skip_namespaces:
            continue
        labels = pod.metadata.labels or {}
        name = next((labels[k] for k in NAME_LABELS if labels.get(k)), pod.metadata.name)
        containers = pod.spec.containers or []
        version = labels.get(VERSION_LABEL) or (image_tag(containers[0].image) if containers else "unknown")
        state, why = pod_state(pod)
        where = f"pod {pod.metadata.namespace}/{pod.metadata.name}"
        figures: dict[str, float] | None = None
        note: str | None = None
        if scrape is not None and state == "running":
            url, note = figures_url(pod)
            if url is not None and scrapes >= MAX_SCRAPES:
                note = f"figures: not read, at most {MAX_SCRAPES} pods are scraped per heartbeat"
            elif url is not None:
                scrapes += 1
                figures, note = scrape(url)
        apps.append(
            AppState(
                name=_short(name or "unnamed"),
                version=_short(version),
                state=state,
                detail=_with_note(_short(f"{where}: {why}" if why else where), note),
                figures=figures,
            )
        )
    return apps


class MetaServerAppSource:
    """Apps from the pods that KubeEdge edgecore's MetaServer lists for this node."""

    def __init__(
        self,
        url: str = DEFAULT_METASERVER_URL,
        *,
        timeout_s: float = METASERVER_TIMEOUT_S,
        skip_namespaces: tuple[str, ...] = SYSTEM_NAMESPACES,
        figures_timeout_s: float = SCRAPE_TIMEOUT_S,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self.figures_timeout_s = figures_timeout_s
        self.skip_namespaces = skip_namespaces
        self.source = _short(f"metaserver:{self.url}")
        self._errors = _ErrorLog(self.source)
        # No proxy: the MetaServer is on this box, and a box's http_proxy must not carry its local traffic away.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    def read(self) -> AppReport:
        return self._read(self._scrape)

    def states(self) -> AppReport:
        return self._read(None)

    def _read(self, scrape: Scrape | None) -> AppReport:
        where = f"KubeEdge MetaServer at {self.url}"
        request = urllib.request.Request(self.url + PODS_PATH, headers={"Accept": "application/json"})
        try:
            with self._opener.open(request, timeout=self.timeout_s) as response:
                body = response.read(MAX_PODLIST_BYTES + 1)
        except urllib.error.HTTPError as exc:
            return self._error(f"{where} answered HTTP {exc.code} to GET {PODS_PATH}")
        except urllib.error.URLError as exc:
            if isinstance(exc.reason, TimeoutError):
                return self._error(f"{where} did not answer within {self.timeout_s} s; is edgecore healthy?")
            return self._error(
                f"cannot reach the {where}: {getattr(exc.reason, 'strerror', None) or exc.reason}; is edgecore "
                "running with metaServer enabled?"
            )
        except TimeoutError:
            return self._error(f"{where} did not answer within {self.timeout_s} s; is edgecore healthy?")
        except (OSError, ValueError) as exc:
            return self._error(f"cannot read the {where}: {exc}")
        if len(body) > MAX_PODLIST_BYTES:
            return self._error(f"{where} sent more than {MAX_PODLIST_BYTES} bytes for GET {PODS_PATH}")
        try:
            pods = _podlist_decoder.decode(body)
        except msgspec.DecodeError as exc:
            return self._error(f"{where} sent no PodList for GET {PODS_PATH}: {exc}")
        if pods.kind and pods.kind != "PodList":
            return self._error(f"{where} sent a {pods.kind[:40]} for GET {PODS_PATH}, expected a PodList")
        apps, error = limit_apps(apps_from_pods(pods, skip_namespaces=self.skip_namespaces, scrape=scrape))
        return self._errors.report(self.source, error, apps)

    def _scrape(self, url: str) -> tuple[dict[str, float] | None, str | None]:
        # The pod's IP is on this node: the same no-proxy opener as the MetaServer's.
        return scrape_figures(url, opener=self._opener, timeout_s=self.figures_timeout_s)

    def _error(self, text: str) -> AppReport:
        return self._errors.report(self.source, text)


def metaserver_answers(url: str = DEFAULT_METASERVER_URL, *, timeout_s: float = 0.3) -> bool:
    """Whether something listens at the MetaServer's address (a TCP connect, no request): the CLI's auto-detection."""
    parts = urlsplit(url)
    try:
        port = parts.port or 80
        with socket.create_connection((parts.hostname or "127.0.0.1", port), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False

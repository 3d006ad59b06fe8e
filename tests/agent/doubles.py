"""Doubles of the agent's outside systems, shared by the tests of the sources and their contract test
(test_every_source_keeps_the_contract.py): a fake of the pynvml functions ``NvmlProbe`` calls, and KubeEdge's
MetaServer as a real HTTP server on 127.0.0.1 serving a PodList. The fake NVML's functions are checked against the
installed pynvml's, so the fake cannot call what pynvml does not have."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace
from typing import Any, ClassVar

# --- NVML ------------------------------------------------------------------------------------------------------

NOT_SUPPORTED = 3
LIBRARY_NOT_FOUND = 12
DRIVER_NOT_LOADED = 9
GPU_IS_LOST = 15
FUNCTION_NOT_FOUND = 13


class FakeNvmlError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeGpu:
    name: Any = "NVIDIA A2"
    uuid: str = "GPU-11111111-2222-3333-4444-555555555555"
    util: int = 37
    used: int = 3 * 2**30
    total: int = 16 * 2**30
    temperature: int = 61
    power_mw: int = 42_500
    reasons: int = 0x4 | 0x20
    ecc: tuple[int, int] | None = (2, 0)
    broken: set[str] = field(default_factory=set)  # readings that fail with NotSupported
    lost: bool = False


class FakeNvml:
    """The pynvml functions NvmlProbe calls, over a list of FakeGpus."""

    NVMLError = FakeNvmlError

    def __init__(self, gpus: list[FakeGpu], *, init_error: int | None = None, new_reasons_api: bool = True) -> None:
        self.gpus = gpus
        self.init_error = init_error
        self.count_error: int | None = None
        self.inits = 0
        self.shutdowns = 0
        if new_reasons_api:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._reasons

    def nvmlInit(self) -> None:
        self.inits += 1
        if self.init_error is not None:
            raise FakeNvmlError(self.init_error)

    def nvmlShutdown(self) -> None:
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self) -> str:
        return "550.54.15"

    def nvmlDeviceGetCount(self) -> int:
        if self.count_error is not None:
            raise FakeNvmlError(self.count_error)
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> FakeGpu:
        if self.gpus[index].lost:
            raise FakeNvmlError(GPU_IS_LOST)
        return self.gpus[index]

    @staticmethod
    def _check(handle: FakeGpu, what: str) -> None:
        if what in handle.broken:
            raise FakeNvmlError(NOT_SUPPORTED)

    def nvmlDeviceGetName(self, handle: FakeGpu) -> Any:
        self._check(handle, "name")
        return handle.name

    def nvmlDeviceGetUUID(self, handle: FakeGpu) -> str:
        self._check(handle, "uuid")
        return handle.uuid

    def nvmlDeviceGetUtilizationRates(self, handle: FakeGpu) -> SimpleNamespace:
        self._check(handle, "util")
        return SimpleNamespace(gpu=handle.util, memory=5)

    def nvmlDeviceGetMemoryInfo(self, handle: FakeGpu) -> SimpleNamespace:
        self._check(handle, "memory")
        return SimpleNamespace(used=handle.used, total=handle.total, free=handle.total - handle.used)

    def nvmlDeviceGetTemperature(self, handle: FakeGpu, sensor: int) -> int:
        assert sensor == 0  # NVML_TEMPERATURE_GPU
        self._check(handle, "temperature")
        return handle.temperature

    def nvmlDeviceGetPowerUsage(self, handle: FakeGpu) -> int:
        self._check(handle, "power")
        return handle.power_mw

    def _reasons(self, handle: FakeGpu) -> int:
        self._check(handle, "reasons")
        return handle.reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: FakeGpu) -> int:
        return self._reasons(handle)

    def nvmlDeviceGetTotalEccErrors(self, handle: FakeGpu, error_type: int, counter_type: int) -> int:
        assert counter_type == 0  # volatile
        if handle.ecc is None:
            raise FakeNvmlError(NOT_SUPPORTED)
        return handle.ecc[error_type]


# --- KubeEdge MetaServer ---------------------------------------------------------------------------------------


def pod(
    name: str,
    *,
    namespace: str = "default",
    labels: dict[str, str] | None = None,
    image: str = "registry.local:5000/ops/scan-upload:2.4.1",
    phase: str = "Running",
    statuses: list[dict[str, Any]] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": "5f0c2d3e-0000-4000-8000-000000000000",
            "labels": labels,
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name.rsplit("-", 1)[0]}],
            **metadata,
        },
        "spec": {
            "nodeName": "sh-qingpu-gpu-01",
            "containers": [{"name": "main", "image": image, "resources": {"limits": {"nvidia.com/gpu": "1"}}}],
        },
        "status": {
            "phase": phase,
            "hostIP": "10.20.0.11",
            "containerStatuses": statuses
            if statuses is not None
            else [
                {
                    "name": "main",
                    "ready": True,
                    "restartCount": 0,
                    "state": {"running": {"startedAt": "2026-11-28T07:00:00Z"}},
                }
            ],
        },
    }


def waiting(reason: str, restarts: int = 0) -> list[dict[str, Any]]:
    return [{"name": "main", "ready": False, "restartCount": restarts, "state": {"waiting": {"reason": reason}}}]


POD_LIST: dict[str, Any] = {
    "kind": "PodList",
    "apiVersion": "v1",
    "metadata": {"resourceVersion": "123456"},
    "items": [
        pod(
            "scan-upload-7d9f8b6c5d-x2x4z",
            labels={"app.kubernetes.io/name": "scan-upload", "app.kubernetes.io/version": "2.4.1"},
        ),
        pod(
            "sorting-recognition-5c6b7-abcde",
            labels={"app.kubernetes.io/name": "sorting-recognition"},
            image="registry.local:5000/ai/sorting-recognition:1.9.0-cuda12",
            statuses=waiting("CrashLoopBackOff", restarts=7),
        ),
        pod(
            "label-print-0",
            labels={"app": "label-print"},
            image="label-print",
            phase="Pending",
            statuses=waiting("ContainerCreating"),
        ),
        pod("kube-proxy-abcde", namespace="kube-system", labels={"k8s-app": "kube-proxy"}),
        pod("edgemesh-agent-xyz", namespace="kubeedge"),
        pod(
            "nightly-cleanup-28861",
            labels=None,
            image="busybox@sha256:0123456789abcdef0123",
            phase="Succeeded",
            statuses=[],
        ),
    ],
}


class FakeMetaServer(BaseHTTPRequestHandler):
    """Answers every GET with ``body`` and ``status``, and records the paths asked for."""

    body: bytes = b""
    status: int = 200
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_metaserver(pods: dict[str, Any] = POD_LIST) -> Iterator[tuple[str, type[FakeMetaServer]]]:
    """A MetaServer serving ``pods`` on a free port: its URL, and its handler class (set ``body``/``status``)."""
    handler = type("Handler", (FakeMetaServer,), {"body": json.dumps(pods).encode(), "status": 200, "paths": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


METRICS_PAGE = """\
# HELP scan_upload_backlog Scans waiting to be uploaded.
# TYPE scan_upload_backlog gauge
scan_upload_backlog{queue="express"} 12
scan_upload_backlog{queue="standard"} 30
# TYPE scan_upload_errors_ratio gauge
scan_upload_errors_ratio 0.0042
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 1234.5
"""


class FakeMetrics(BaseHTTPRequestHandler):
    """An app's /metrics page: answers every GET with ``body`` and ``status`` (after ``hold`` is set, when given)."""

    body: ClassVar[bytes] = METRICS_PAGE.encode()
    status: ClassVar[int] = 200
    hold: ClassVar[threading.Event | None] = None
    paths: ClassVar[list[str]] = []

    def do_GET(self) -> None:
        self.paths.append(self.path)
        if self.hold is not None:
            self.hold.wait(10)  # released by the test's teardown; the agent gives up long before
        self.send_response(self.status)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(self.body)))
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextmanager
def serve_metrics(**attributes: Any) -> Iterator[tuple[int, type[FakeMetrics]]]:
    """An app serving its /metrics page on a free port of 127.0.0.1: the port and the handler class."""
    handler: type[FakeMetrics] = type("Handler", (FakeMetrics,), {"paths": [], **attributes})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        if handler.hold is not None:
            handler.hold.set()
        server.shutdown()
        server.server_close()
        thread.join()

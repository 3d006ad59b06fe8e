"""Messages and inventories for the controller's tests, built in code so each test says what matters to it."""

from __future__ import annotations

from pathlib import Path

from edgefleet import messages
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, Cluster, Inventory, Site
from edgefleet.messages import (
    SCHEMA_VERSION,
    AppReport,
    AppState,
    BoxStatus,
    GpuReport,
    GpuSample,
    Heartbeat,
    HostSample,
)
from tests.support.clusters import TEST_HOST, write_host_cluster

SITE = SiteId("sh-test")
OTHER_SITE = SiteId("bj-test")
BOX = BoxId("sh-test-gpu-01")
BOX_2 = BoxId("sh-test-edge-01")
OTHER_BOX = BoxId("bj-test-gpu-01")
BOOT_A = "boot-aaaa-0001"
BOOT_B = "boot-bbbb-0002"
BOOT_C = "boot-cccc-0003"
T0 = 1_800_000_000.0
# The KubeEdge host cluster both sites are on (tests.support.clusters.TEST_HOST in the written manifests).
HOST_CLUSTER = ClusterId(TEST_HOST)


def inventory(interval_s: float = 10.0, missed_beats: int = 3) -> Inventory:
    """Two sites: sh-test with a GPU box and an edge node, bj-test with one GPU box."""
    boxes = {
        BOX: Box(BOX, SITE, "gpu-box", "Advantech MIC-770", None),
        BOX_2: Box(BOX_2, SITE, "edge-node", None, None),
        OTHER_BOX: Box(OTHER_BOX, OTHER_SITE, "gpu-box", None, None),
    }
    sites = {
        SITE: Site(
            SITE,
            "transfer-center",
            "Shanghai Test",
            "east",
            "Asia/Shanghai",
            interval_s,
            missed_beats,
            (BOX, BOX_2),
            "test",
            cluster=HOST_CLUSTER,
            node_group=SITE,
        ),
        OTHER_SITE: Site(
            OTHER_SITE,
            "transfer-center",
            "Beijing Test",
            "north",
            "Asia/Shanghai",
            interval_s,
            missed_beats,
            (OTHER_BOX,),
            "test",
            cluster=HOST_CLUSTER,
            node_group=OTHER_SITE,
        ),
    }
    clusters = {HOST_CLUSTER: Cluster(HOST_CLUSTER, "kubeedge-host", str(HOST_CLUSTER), "east", "test")}
    return Inventory(sites=sites, boxes=boxes, clusters=clusters)


def write_sites(directory: Path) -> Path:
    """The same inventory as ``inventory()``, as site manifests."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "sh-test.yaml").write_text(
        f"""apiVersion: edgefleet.io/v1
kind: Site
metadata:
  name: {SITE}
spec:
  kind: transfer-center
  displayName: Shanghai Test
  region: east
  timezone: Asia/Shanghai
  cluster: test-edge
  heartbeat:
    intervalSeconds: 10
    missedBeats: 3
  boxes:
    - name: {BOX}
      role: gpu-box
      gpu: {{model: NVIDIA L4, count: 2, driverVersion: "550.90.07"}}
    - name: {BOX_2}
      role: edge-node
"""
    )
    (directory / "bj-test.yaml").write_text(
        f"""apiVersion: edgefleet.io/v1
kind: Site
metadata:
  name: {OTHER_SITE}
spec:
  kind: transfer-center
  displayName: Beijing Test
  region: north
  timezone: Asia/Shanghai
  cluster: test-edge
  boxes:
    - name: {OTHER_BOX}
      role: gpu-box
      gpu: {{model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}
"""
    )
    write_host_cluster(directory)
    return directory


def host(cpu: float = 12.5) -> HostSample:
    return HostSample(
        cpu_percent=cpu,
        load1=0.5,
        memory_total_bytes=16_000,
        memory_available_bytes=4_000,
        disk_total_bytes=1_000,
        disk_free_bytes=250,
    )


def gpus(*readings: tuple[float | None, float | None]) -> GpuReport:
    """A GPU report with one GPU per (temperature, utilisation) pair."""
    return GpuReport(
        available=True,
        driver_version="550.90.07",
        gpus=[
            GpuSample(index=i, name="NVIDIA L4", uuid=f"GPU-{i}", temperature_c=t, utilization_percent=u)
            for i, (t, u) in enumerate(readings)
        ],
    )


def heartbeat(
    seq: int,
    *,
    boot: str = BOOT_A,
    boot_started: float = T0,
    box: str = BOX,
    site: str = SITE,
    sent_at: float | None = None,
    cpu: float = 12.5,
) -> Heartbeat:
    """Heartbeat ``seq`` of a boot that started at ``boot_started``, sent 10 s a beat after it by default."""
    sent = sent_at if sent_at is not None else boot_started + 10.0 * seq
    return Heartbeat(
        schema=SCHEMA_VERSION,
        box=box,
        site=site,
        boot=boot,
        seq=seq,
        sent_at=sent,
        agent_version="0.1.0",
        interval_s=10.0,
        uptime_s=sent - boot_started,
        host=host(cpu),
        gpu=gpus((61.0, 40.0), (70.0, 60.0)),
        apps=AppReport(source="none", apps=[AppState(name="scan-upload", version="1.2.0", state="running")]),
    )


def status(
    state: str,
    *,
    session: int = 1,
    boot: str = BOOT_A,
    at: float = T0 + 1.0,
    reason: str | None = None,
    box: str = BOX,
    site: str = SITE,
) -> BoxStatus:
    return BoxStatus(
        schema=SCHEMA_VERSION,
        box=box,
        site=site,
        boot=boot,
        session=session,
        state=state,  # type: ignore[arg-type]
        at=at,
        reason=reason or ("connected" if state == "online" else "connection-lost"),
    )


def wire(message: Heartbeat | BoxStatus) -> bytes:
    return messages.encode(message)

"""GET /metrics: the fleet's live state in Prometheus text format, checked by Debian's promtool."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from edgefleet.cloud.api.metrics import build_registry, render
from edgefleet.cloud.k8s.health import ClusterHealth
from edgefleet.cloud.saving import SavingHealth, WriterHealth
from edgefleet.ids import ClusterId
from edgefleet.inventory import load_inventory
from tests.cloud.api.memory import MemoryController
from tests.cloud.builders import gpus
from tests.conftest import SITES
from tests.support.clusters import TEST_HOST

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def promtool_findings(text: str) -> str:
    """What ``promtool check metrics`` says of ``text`` (nothing when it passes); fails when it refuses it."""
    result = subprocess.run(
        [PROMTOOL, "check", "metrics"], check=False, input=text, capture_output=True, text=True, timeout=30
    )
    findings = (result.stdout + result.stderr).strip()
    assert result.returncode == 0, findings
    return findings


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``text`` by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


Labels = tuple[tuple[str, str], ...]


def box(site: str, name: str) -> Labels:
    return (("box", name), ("site", site))


def gpu(name: str, index: str) -> Labels:
    return (("box", name), ("gpu", index), ("site", "sh-pudong"))


def site(name: str, state: str) -> Labels:
    return (("site", name), ("state", state))


@pytest.fixture
def scraped(client: httpx.Client, memory: MemoryController) -> str:
    memory.beat("sh-pudong-gpu-01", gpu=gpus((71.0, 85.0), (64.0, None)), skew_s=-2.5)
    memory.beat("sh-pudong-gpu-02", gpu=gpus((90.0, 99.0)))
    memory.say("sh-pudong-gpu-02", "offline", "shutdown")
    memory.beat("bj-daxing-edge-01")
    memory.stranger("rogue-01", None)
    memory.ingest.counters.update({"duplicate": 3, "malformed": 2})
    memory.saving_health = SavingHealth(
        fleet=WriterHealth(saves=40, failed_saves=2, last_saved_at=memory.clock.now() - 5.0),
        alerts=WriterHealth(saves=7, failed_saves=3, failure_streak=3, last_error="disk full", pending=12),
        dropped_samples=0,
    )
    now = memory.clock.now()
    memory.clusters_probed[ClusterId(TEST_HOST)] = ClusterHealth(
        ClusterId(TEST_HOST),
        TEST_HOST,
        reachable=True,
        latency_s=0.012,
        version="v1.32.0",
        checked_at=now,
        last_success_at=now,
        temporary_errors=2,
    )
    memory.clusters_probed[ClusterId("central-bj")] = ClusterHealth(
        ClusterId("central-bj"),
        "central-bj",
        reachable=False,
        checked_at=now,
        last_error="cluster central-bj: read the server version: unreachable",
        last_error_at=now,
        permanent_errors=1,
    )
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return response.text


def test_promtool_passes_with_no_findings(scraped: str) -> None:
    assert promtool_findings(scraped) == ""


def test_every_family_has_help_and_type(scraped: str) -> None:
    families = {f.name: f for f in text_string_to_metric_families(scraped)}

    assert {name: f.type for name, f in families.items()} == {
        "edgefleet_box_up": "gauge",
        "edgefleet_box_last_seen_timestamp_seconds": "gauge",
        "edgefleet_box_clock_skew_seconds": "gauge",
        "edgefleet_gpu_temperature_celsius": "gauge",
        "edgefleet_gpu_utilization_ratio": "gauge",
        "edgefleet_site_boxes": "gauge",
        "edgefleet_ingest_messages": "counter",
        "edgefleet_unknown_boxes": "gauge",
        "edgefleet_broker_connected": "gauge",
        "edgefleet_controller_hearing": "gauge",
        "edgefleet_ingest_lag_seconds": "gauge",
        "edgefleet_ingest_busy_ratio": "gauge",
        "edgefleet_ingest_quiet_seconds": "gauge",
        "edgefleet_database_saves": "counter",
        "edgefleet_database_failed_saves": "counter",
        "edgefleet_database_last_save_timestamp_seconds": "gauge",
        "edgefleet_database_saves_failing": "gauge",
        "edgefleet_database_pending_items": "gauge",
        "edgefleet_database_dropped_samples": "counter",
        "edgefleet_cluster_up": "gauge",
        "edgefleet_cluster_probe_seconds": "gauge",
        "edgefleet_cluster_last_success_timestamp_seconds": "gauge",
        "edgefleet_cluster_gateway_errors": "counter",
    }
    assert all(f.documentation for f in families.values())


def test_reports_the_live_state(scraped: str, memory: MemoryController) -> None:
    got = samples(scraped)

    assert got["edgefleet_box_up", box("sh-pudong", "sh-pudong-gpu-01")] == 1.0
    assert got["edgefleet_box_up", box("sh-pudong", "sh-pudong-gpu-02")] == 0.0
    assert got["edgefleet_box_up", box("central-bj", "central-bj-node-01")] == 0.0
    assert got["edgefleet_box_last_seen_timestamp_seconds", box("bj-daxing", "bj-daxing-edge-01")] == memory.clock.now()
    assert got["edgefleet_box_clock_skew_seconds", box("sh-pudong", "sh-pudong-gpu-01")] == pytest.approx(-2.5)
    assert got["edgefleet_gpu_temperature_celsius", gpu("sh-pudong-gpu-01", "0")] == 71.0
    assert got["edgefleet_gpu_temperature_celsius", gpu("sh-pudong-gpu-01", "1")] == 64.0
    assert got["edgefleet_gpu_utilization_ratio", gpu("sh-pudong-gpu-01", "0")] == pytest.approx(0.85)
    # A GPU without a reading, and every GPU of a box that is offline, have no series (Prometheus marks them stale).
    assert ("edgefleet_gpu_utilization_ratio", gpu("sh-pudong-gpu-01", "1")) not in got
    assert not any(labels and ("box", "sh-pudong-gpu-02") in labels for name, labels in got if "gpu_" in name)
    # A box that never sent has no last-seen or skew series.
    assert ("edgefleet_box_last_seen_timestamp_seconds", box("central-bj", "central-bj-node-01")) not in got
    assert got["edgefleet_site_boxes", site("sh-pudong", "online")] == 1.0
    assert got["edgefleet_site_boxes", site("sh-pudong", "offline")] == 1.0
    assert got["edgefleet_site_boxes", site("sh-pudong", "never-seen")] == 1.0
    assert got["edgefleet_site_boxes", site("central-bj", "never-seen")] == 1.0
    assert got["edgefleet_ingest_messages_total", (("outcome", "accepted"),)] == 3.0
    assert got["edgefleet_ingest_messages_total", (("outcome", "duplicate"),)] == 3.0
    assert got["edgefleet_ingest_messages_total", (("outcome", "malformed"),)] == 2.0
    assert got["edgefleet_unknown_boxes", ()] == 1.0
    assert got["edgefleet_broker_connected", ()] == 1.0


def test_failing_saves_show(scraped: str, memory: MemoryController) -> None:
    got = samples(scraped)
    fleet, alerts = (("writer", "fleet"),), (("writer", "alerts"),)

    assert got["edgefleet_database_saves_total", fleet] == 40.0
    assert got["edgefleet_database_failed_saves_total", fleet] == 2.0
    assert got["edgefleet_database_last_save_timestamp_seconds", fleet] == memory.clock.now() - 5.0
    assert got["edgefleet_database_saves_failing", fleet] == 0.0
    assert got["edgefleet_database_failed_saves_total", alerts] == 3.0
    assert got["edgefleet_database_saves_failing", alerts] == 1.0
    assert got["edgefleet_database_pending_items", alerts] == 12.0
    # No successful save of alerts since start: no timestamp rather than a made-up one.
    assert ("edgefleet_database_last_save_timestamp_seconds", alerts) not in got
    assert got["edgefleet_database_dropped_samples_total", ()] == 0.0


def test_clusters_show_reachable_latency_and_errors(scraped: str, memory: MemoryController) -> None:
    got = samples(scraped)
    host, central = (("cluster", TEST_HOST),), (("cluster", "central-bj"),)

    assert got["edgefleet_cluster_up", host] == 1.0
    assert got["edgefleet_cluster_up", central] == 0.0
    assert got["edgefleet_cluster_probe_seconds", host] == pytest.approx(0.012)
    # No latency or success time for a cluster the probe did not reach: absent, not zero.
    assert ("edgefleet_cluster_probe_seconds", central) not in got
    assert ("edgefleet_cluster_last_success_timestamp_seconds", central) not in got
    assert got["edgefleet_cluster_last_success_timestamp_seconds", host] == memory.clock.now()
    assert got["edgefleet_cluster_gateway_errors_total", (("cluster", TEST_HOST), ("kind", "temporary"))] == 2.0
    assert got["edgefleet_cluster_gateway_errors_total", (("cluster", "central-bj"), ("kind", "permanent"))] == 1.0


def test_a_lost_broker_shows(client: httpx.Client, memory: MemoryController) -> None:
    memory.ingest.connected = False

    assert samples(client.get("/metrics").text)["edgefleet_broker_connected", ()] == 0.0


def test_the_whole_shipped_fleet_passes_promtool() -> None:
    memory = MemoryController(load_inventory(Path(SITES)))
    for box in memory.state.inventory.boxes.values():
        count = box.gpu.count if box.gpu else 0
        memory.beat(box.id, gpu=gpus(*[(55.0 + i, 40.0 + i) for i in range(count)]))
    registry = build_registry(memory)

    # Scrape time is a benchmark figure (docs/performance.md), never a timed assertion on a shared machine.
    text = render(registry).decode()
    assert promtool_findings(text) == ""
    got = samples(text)
    assert sum(v for (name, _), v in got.items() if name == "edgefleet_box_up") == len(memory.state.inventory.boxes)

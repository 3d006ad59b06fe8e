"""The controller takes a changed sites directory without a restart, whole or not at all: new boxes are tracked at
once, removed boxes stop alerting and their open alerts resolve as "removed from inventory", moved boxes keep their
state, an unknown box that is adopted leaves the unknown list, and a directory with any problem changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet import topics
from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import FakeClock
from edgefleet.cloud.alerting.reconciling import RESOLVED_REMOVED
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.fleet import FleetState, UnknownBox, replace_inventory
from edgefleet.cloud.hearing import IngestStats
from edgefleet.cloud.settings import Settings
from edgefleet.errors import InventoryError, InventoryVersionMismatch
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import inventory_version, load_inventory
from edgefleet.messages import GpuReport, encode
from tests.alerting.builders import beat
from tests.cloud.api.memory import SMALL_INVENTORY, apps, host, write_inventory

NEW_SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: gz-baiyun}
spec:
  kind: transfer-center
  displayName: "Guangzhou Baiyun Transfer Center"
  region: south
  timezone: Asia/Shanghai
  cluster: test-edge
  boxes:
    - {name: gz-baiyun-gpu-01, role: gpu-box, gpu: {model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}
    - {name: gz-baiyun-edge-01, role: edge-node}
"""


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "sites")


@pytest.fixture
def controller(sites: Path, tmp_path: Path) -> Iterator[Controller]:
    settings = Settings(
        broker_url="mqtt://127.0.0.1:1", database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}", sites_dir=sites
    )
    built = Controller(settings, clock=FakeClock())
    yield built
    built.stop()


def heartbeat_payload(box: str, site: str, clock: FakeClock) -> tuple[str, bytes]:
    reporter = BoxReporter(BoxId(box), SiteId(site), interval_s=10.0, clock=clock)
    return topics.heartbeat_topic(BoxId(box)), encode(
        reporter.heartbeat(host(), GpuReport(available=False, reason="no NVML"), apps("running"))
    )


# --- the rule, pure ------------------------------------------------------------------------------------------


def test_taking_an_inventory_adds_removes_moves_and_adopts(sites: Path) -> None:
    state = FleetState.for_inventory(load_inventory(sites))
    beat(state.boxes[BoxId("sh-pudong-gpu-02")], 1_800_000_000.0)
    state.unknown["gz-baiyun-gpu-01"] = _unknown("gz-baiyun-gpu-01")
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)
    (sites / "central-bj.yaml").unlink()
    # sh-pudong-gpu-02 moves to bj-daxing: removed from one file, added to the other.
    pudong = sites / "sh-pudong.yaml"
    pudong.write_text(pudong.read_text().replace("    - {name: sh-pudong-gpu-02,", "    - {name: sh-pudong-gpu-03,"))
    daxing = sites / "bj-daxing.yaml"
    daxing.write_text(daxing.read_text() + "    - {name: sh-pudong-gpu-02, role: edge-node}\n")
    before = state.inventory.version

    change = replace_inventory(state, load_inventory(sites))

    assert change.sites_added == ("gz-baiyun",)
    assert change.sites_removed == ("central-bj",)
    assert change.boxes_added == ("gz-baiyun-edge-01", "gz-baiyun-gpu-01", "sh-pudong-gpu-03")
    assert change.boxes_removed == ("central-bj-node-01",)
    assert change.boxes_moved == ("sh-pudong-gpu-02",)
    assert change.adopted == ("gz-baiyun-gpu-01",)
    assert (change.previous_version, change.version) == (before, inventory_version(sites))
    assert set(state.boxes) == set(state.inventory.boxes)
    moved = state.boxes[BoxId("sh-pudong-gpu-02")]
    assert (moved.site, moved.seq, moved.dirty) == ("bj-daxing", 1, True), "a moved box keeps its state"
    assert state.unknown == {}
    again = replace_inventory(state, load_inventory(sites))
    assert not again.changed, "the same inventory twice changes nothing the second time"


def test_the_version_is_the_files_content(sites: Path, tmp_path: Path) -> None:
    copy = write_inventory(tmp_path / "copy")
    assert inventory_version(sites) == inventory_version(copy) == load_inventory(sites).version
    (copy / "sh-pudong.yaml").write_text(SMALL_INVENTORY["sh-pudong.yaml"] + "# a comment\n")
    assert inventory_version(copy) != inventory_version(sites)


# --- the controller --------------------------------------------------------------------------------------------


def test_a_new_site_is_tracked_at_once_and_its_boxes_are_heard(controller: Controller, sites: Path) -> None:
    clock = controller.clock
    assert isinstance(clock, FakeClock)
    topic, payload = heartbeat_payload("gz-baiyun-gpu-01", "gz-baiyun", clock)
    assert controller.ingest.handle(topic, payload) == "unknown-box"
    assert "gz-baiyun-gpu-01" in controller.state.unknown

    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)
    change = controller.reload_inventory()

    assert change.adopted == ("gz-baiyun-gpu-01",)
    assert controller.inventory_version == inventory_version(sites)
    assert "gz-baiyun-gpu-01" not in controller.state.unknown
    topic, payload = heartbeat_payload("gz-baiyun-gpu-01", "gz-baiyun", clock)
    assert controller.ingest.handle(topic, payload) == "accepted"
    assert controller.state.boxes[BoxId("gz-baiyun-gpu-01")].last_seen == clock.now()


def test_a_directory_with_a_problem_is_refused_whole(controller: Controller, sites: Path) -> None:
    before = controller.state.inventory
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)  # good on its own
    (sites / "broken.yaml").write_text(NEW_SITE.replace("gz-baiyun", "gz-huadu").replace("gpu-box", "gpu-boks"))

    with pytest.raises(InventoryError) as refused:
        controller.reload_inventory()

    assert any("broken.yaml:" in str(p) and "role" in str(p) for p in refused.value.problems), refused.value
    assert controller.state.inventory is before
    assert BoxId("gz-baiyun-gpu-01") not in controller.state.boxes, "nothing of the directory was taken"


def test_a_directory_that_is_not_what_was_applied_is_refused(controller: Controller, sites: Path) -> None:
    before = controller.inventory_version
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)
    with pytest.raises(InventoryVersionMismatch, match=r"holds inventory version [0-9a-f]+, not 0123abcd"):
        controller.reload_inventory(expect_version="0123abcd")
    assert controller.inventory_version == before


def test_a_removed_box_stops_alerting_and_its_alert_resolves_as_removed(controller: Controller, sites: Path) -> None:
    clock = controller.clock
    assert isinstance(clock, FakeClock)
    loop = controller.alert_loop
    # The ingest is not started here: play one that hears the fleet, so that the loop judges silence.
    loop._stats = lambda: IngestStats(subscribed=True, since_last_message_s=0.1, lag_s=0.0, busy=0.0)
    with controller.state.lock:
        for live in controller.state.boxes.values():
            beat(live, clock.now())
    loop.tick()
    assert loop.evaluating
    loop.run_pass()
    clock.advance(3600)
    with controller.state.lock:
        for box, live in controller.state.boxes.items():
            if box != "central-bj-node-01":
                beat(live, clock.now())
    loop.run_pass()
    (lost,) = loop.alerts.find(state="firing")
    assert (str(lost.key.kind), lost.key.box) == ("box-lost", "central-bj-node-01")

    (sites / "central-bj.yaml").unlink()
    controller.reload_inventory()
    report = loop.run_pass()

    assert report.resolved == 1
    resolved = controller.alerting.alert(lost.id)
    assert resolved.state == "resolved"
    assert resolved.details["resolved_because"] == RESOLVED_REMOVED
    clock.advance(3600)
    with controller.state.lock:
        for live in controller.state.boxes.values():
            beat(live, clock.now())
    assert loop.run_pass().fired == 0, "a removed box is no longer judged"
    assert loop.alerts.find(state="firing") == []


def _unknown(box: str) -> UnknownBox:
    return UnknownBox(box, "gz-baiyun", 1_800_000_000.0, 1_800_000_000.0)


def test_reading_the_inventory_keeps_nothing_of_the_files(sites: Path) -> None:
    from edgefleet import manifests

    for _ in range(3):
        load_inventory(sites)
    assert manifests._LOADER.constructed_objects == {}, "a reload must not keep the last one's YAML nodes alive"

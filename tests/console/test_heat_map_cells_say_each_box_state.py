"""The overview's view models (``edgefleet.cloud.console.views``): one state per box, worst first; readings rounded
so a cell changes when its colour can; the layout by region and site that a caller may read; the counters; the
batch of changed cells a stream sends."""

from __future__ import annotations

import msgspec
import pytest

from edgefleet.cloud.console.views import (
    BoxCell,
    CellState,
    cell_state,
    changed_cells,
    count,
    fleet_cells,
    fleet_layout,
)
from edgefleet.cloud.fleet import BoxLive, Reachability, ReachabilityState
from edgefleet.cloud.nodes import NodeState, NodeStateName
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, GpuSpec
from edgefleet.messages import AppReport, AppState, GpuReport, Heartbeat
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, OTHER_SITE, SITE, gpus, heartbeat, inventory

GPU_BOX = Box(BOX, SITE, "gpu-box", None, GpuSpec(model="NVIDIA L4", count=2, driver_version="550.90.07"))
EDGE_NODE = Box(BOX_2, SITE, "edge-node", None, None)


def reach(state: ReachabilityState) -> Reachability:
    return Reachability(state, "connected" if state == "online" else "heartbeat-timeout", None)


def node(state: NodeStateName = "ready") -> NodeState:
    return NodeState(state, "KubeletReady", ClusterId("test-edge"), "n")


def live(box: Box, beat: Heartbeat | None) -> BoxLive:
    return BoxLive(box=box.id, site=box.site, heartbeat=beat)


def beat(*, app_state: str = "running", gpu: GpuReport | None = None, box: Box = GPU_BOX) -> Heartbeat:
    return msgspec.structs.replace(
        heartbeat(1, box=box.id, site=box.site),
        apps=AppReport(source="none", apps=[AppState(name="scan-upload", version="1.2.0", state=app_state)]),  # type: ignore[arg-type]
        gpu=gpu if gpu is not None else gpus((61.0, 40.0)),
    )


NO_GPU = GpuReport(available=False, reason="no NVIDIA driver")


@pytest.mark.parametrize(
    ("box", "reachability", "site_unreachable", "node_state", "message", "expected"),
    [
        (GPU_BOX, "online", False, "ready", beat(), "online"),
        (GPU_BOX, "online", False, "not-watched", beat(), "online"),  # no word from Kubernetes is no bad word
        (GPU_BOX, "online", False, "ready", beat(app_state="failed"), "degraded"),
        (GPU_BOX, "online", False, "ready", beat(app_state="pending"), "degraded"),
        (GPU_BOX, "online", False, "ready", beat(app_state="completed"), "online"),  # a Job ran to success
        (GPU_BOX, "online", False, "ready", beat(gpu=NO_GPU), "degraded"),  # the inventory says it has a GPU
        (EDGE_NODE, "online", False, "ready", beat(gpu=NO_GPU, box=EDGE_NODE), "online"),  # it has none
        (GPU_BOX, "online", False, "not-ready", beat(), "node-not-ready"),
        (GPU_BOX, "online", False, "missing", beat(app_state="failed"), "node-not-ready"),  # worse than degraded
        (GPU_BOX, "offline", False, "ready", beat(), "lost"),
        (GPU_BOX, "offline", False, "not-ready", beat(), "lost"),
        (GPU_BOX, "offline", True, "not-ready", beat(), "unreachable"),
        (GPU_BOX, "never-seen", False, "not-watched", None, "never-seen"),
        (GPU_BOX, "never-seen", True, "not-watched", None, "unreachable"),
    ],
)
def test_each_box_has_one_state_worst_first(
    box: Box,
    reachability: ReachabilityState,
    site_unreachable: bool,
    node_state: NodeStateName,
    message: Heartbeat | None,
    expected: CellState,
) -> None:
    assert (
        cell_state(box, live(box, message), reach(reachability), node(node_state), site_unreachable=site_unreachable)
        == expected
    )


def test_a_site_is_unreachable_when_none_of_its_boxes_is_online() -> None:
    def cells(first: ReachabilityState, second: ReachabilityState) -> dict[BoxId, CellState]:
        given = [
            (GPU_BOX, live(GPU_BOX, beat()), reach(first), node()),
            (EDGE_NODE, live(EDGE_NODE, beat(gpu=NO_GPU, box=EDGE_NODE)), reach(second), node()),
        ]
        return {box: cell.state for box, cell in fleet_cells(given).items()}

    assert cells("online", "offline") == {BOX: "online", BOX_2: "lost"}
    assert cells("offline", "offline") == {BOX: "unreachable", BOX_2: "unreachable"}
    assert cells("offline", "never-seen") == {BOX: "unreachable", BOX_2: "unreachable"}
    # Nothing seen yet is no outage: a new site is grey until its boxes speak.
    assert cells("never-seen", "never-seen") == {BOX: "never-seen", BOX_2: "never-seen"}


def test_readings_are_rounded_so_a_cell_changes_with_its_colour() -> None:
    message = beat(gpu=gpus((61.4, 41.0), (70.6, 63.0)))
    (cell,) = fleet_cells([(GPU_BOX, live(GPU_BOX, message), reach("online"), node())]).values()
    assert (cell.gpu_temperature_c, cell.gpu_utilization_percent) == (71.0, 50.0)  # hottest; mean 52 -> 50
    assert cell.apps == "scan-upload 1.2.0"
    calmer = beat(gpu=gpus((61.0, 42.0), (70.9, 62.0)))
    (again,) = fleet_cells([(GPU_BOX, live(GPU_BOX, calmer), reach("online"), node())]).values()
    assert changed_cells({BOX: cell}, {BOX: again}) == {}


def test_a_box_without_a_heartbeat_has_no_readings() -> None:
    (cell,) = fleet_cells([(GPU_BOX, live(GPU_BOX, None), reach("never-seen"), node())]).values()
    assert cell == BoxCell(BOX, SITE, "never-seen", None, None, None)


def test_changed_cells_are_those_that_differ_or_are_new() -> None:
    a = BoxCell(BOX, SITE, "online", 60.0, 40.0, "scan-upload 1.2.0")
    b = BoxCell(BOX_2, SITE, "online", None, None, "scan-upload 1.2.0")
    lost = BoxCell(BOX, SITE, "lost", 60.0, 40.0, "scan-upload 1.2.0")
    other = BoxCell(OTHER_BOX, OTHER_SITE, "online", None, None, None)
    assert changed_cells({BOX: a, BOX_2: b}, {BOX: a, BOX_2: b}) == {}
    assert changed_cells({BOX: a, BOX_2: b}, {BOX: lost, BOX_2: b, OTHER_BOX: other}) == {
        BOX: lost,
        OTHER_BOX: other,
    }


def test_the_layout_groups_the_readable_sites_by_region() -> None:
    fleet = inventory()
    layout = fleet_layout(fleet, lambda _: True)
    assert [(r.name, [s.id for s in r.sites]) for r in layout] == [("east", [SITE]), ("north", [OTHER_SITE])]
    assert layout[0].sites[0].boxes == (BOX, BOX_2)
    only_east = fleet_layout(fleet, lambda site: site == SiteId(SITE))
    assert [(r.name, [s.id for s in r.sites]) for r in only_east] == [("east", [SITE])]


def test_the_counters_count_the_readable_sites_only() -> None:
    cells = {
        BOX: BoxCell(BOX, SITE, "node-not-ready", None, None, None),
        BOX_2: BoxCell(BOX_2, SITE, "lost", None, None, None),
        OTHER_BOX: BoxCell(OTHER_BOX, OTHER_SITE, "unreachable", None, None, None),
    }
    fleet = inventory()
    every = count(fleet_layout(fleet, lambda _: True), cells, active_rollouts=1, firing_alerts=None)
    assert (every.sites, every.boxes, every.boxes_online, every.boxes_lost) == (2, 3, 1, 2)
    assert (every.active_rollouts, every.firing_alerts) == (1, None)
    east = count(fleet_layout(fleet, lambda s: s == SiteId(SITE)), cells, active_rollouts=None, firing_alerts=0)
    assert (east.sites, east.boxes, east.boxes_online, east.boxes_lost) == (1, 2, 1, 1)

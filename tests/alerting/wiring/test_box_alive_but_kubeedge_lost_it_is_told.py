"""The alert loop as the controller wires it, on a fake clock (``clocked.ClockedAlerting``), with the node states
the node watch publishes (``FleetState.nodes``): a box whose agent is online while KubeEdge lost its node is told
once after two minutes; a site whose online boxes all lost their nodes is told once, its box alerts stored and
muted; a restart tells neither again."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edgefleet.cloud.nodes import ClusterNodes
from tests.alerting.builders import HOST_CLUSTER, make_inventory, site_boxes
from tests.alerting.wiring.clocked import ClockedAlerting, write_notifications
from tests.support.nodes import node_object, publish_nodes

INVENTORY = make_inventory({"alpha": 4, "beta": 4})
A0 = str(site_boxes("alpha", 1)[0])
BETA = [str(b) for b in site_boxes("beta", 4)]


def lose_nodes(alerting: ClockedAlerting, lost: dict[str, str]) -> None:
    """The host cluster's nodes as the node watch lists them: Ready, but ``lost`` (box -> Ready status)."""
    now = alerting.clock.now()
    objects = [node_object(b, lost.get(b, "True"), since=now) for b in INVENTORY.boxes]
    publish_nodes(alerting.fleet, HOST_CLUSTER, objects, now=now)


@pytest.fixture
def notifications(tmp_path: Path) -> Path:
    return write_notifications(tmp_path / "notifications.yaml", group_interval="30s", repeat_interval="1h")


@pytest.fixture
def alerting(tmp_path: Path, notifications: Path) -> Iterator[ClockedAlerting]:
    running = ClockedAlerting(INVENTORY, f"sqlite:///{tmp_path / 'edgefleet.db'}", notifications)
    running.beat_all()
    lose_nodes(running, {})
    running.run(10.0)
    yield running
    running.close()


def test_an_online_box_whose_node_kubeedge_lost_is_told_once_and_resolved(alerting: ClockedAlerting) -> None:
    lose_nodes(alerting, {A0: "Unknown"})
    alerting.run(119.0)
    assert alerting.notices(kind="edge-node-lost") == [], "not before two minutes"
    alerting.run(2.0)
    assert alerting.notices(kind="edge-node-lost") == [("firing", "edge-node-lost", A0)]
    alerting.run(600.0)
    assert len(alerting.notices(kind="edge-node-lost")) == 1, "told once"

    lose_nodes(alerting, {})
    alerting.run(31.0)
    assert alerting.notices(kind="edge-node-lost") == [
        ("firing", "edge-node-lost", A0),
        ("resolved", "edge-node-lost", A0),
    ]


def test_a_site_whose_nodes_are_all_lost_is_one_alert_that_mutes_its_boxes(alerting: ClockedAlerting) -> None:
    lose_nodes(alerting, dict.fromkeys(BETA, "False"))
    alerting.run(125.0)
    assert alerting.notices(kind="site-nodes-lost") == [("firing", "site-nodes-lost", None)]
    assert alerting.notices(kind="edge-node-lost") == []
    for box in BETA:
        stored = alerting.alert_of(box, "edge-node-lost")
        assert (stored["state"], stored["muted"], stored["muted_by"]) == (
            "firing",
            "inhibited",
            ("site-nodes-lost beta",),
        )

    lose_nodes(alerting, {})
    alerting.run(31.0)
    assert alerting.notices(kind="site-nodes-lost")[-1] == ("resolved", "site-nodes-lost", None)
    assert alerting.notices(kind="edge-node-lost") == [], "muted alerts resolve untold"


def test_a_restart_tells_neither_again(tmp_path: Path, notifications: Path) -> None:
    url = f"sqlite:///{tmp_path / 'restart.db'}"
    first = ClockedAlerting(INVENTORY, url, notifications)
    first.beat_all()
    lose_nodes(first, {A0: "False", **dict.fromkeys(BETA, "False")})
    went = first.clock.now()
    first.run(130.0)
    assert sorted(first.notices()) == [("firing", "edge-node-lost", A0), ("firing", "site-nodes-lost", None)]
    first.close()

    # Back 10 s later: the cluster is not listed yet (the node watch just started), then it is, unchanged.
    second = ClockedAlerting(INVENTORY, url, notifications, restored=first.fleet, start=first.clock.now() + 10.0)
    try:
        with second.fleet.lock:
            second.fleet.nodes = {HOST_CLUSTER: ClusterNodes(HOST_CLUSTER)}
        second.run(60.0)
        publish_nodes(
            second.fleet,
            HOST_CLUSTER,
            [node_object(b, "False" if b == A0 or b in BETA else "True", since=went) for b in INVENTORY.boxes],
            now=second.clock.now(),
        )
        second.run(60.0)
        assert second.notices() == [], "the restarted loop resumes what was told"
        assert second.alert_of(A0, "edge-node-lost")["state"] == "firing"
        lose_nodes(second, {})
        second.run(31.0)
        assert sorted(second.notices()) == [("resolved", "edge-node-lost", A0), ("resolved", "site-nodes-lost", None)]
    finally:
        second.close()

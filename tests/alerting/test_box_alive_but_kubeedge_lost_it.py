"""A box whose agent is online while KubeEdge has lost its node raises edge-node-lost after the threshold; a site
whose online boxes all lost their nodes raises one site-nodes-lost that mutes them; a box whose agent is lost
raises only box-lost; a cluster the controller does not watch starts and ends nothing. The pure pipeline
(evaluate -> reconcile -> plan) on a fake clock (``builders.Scenario``), and properties of the rules."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKey, AlertKind, AlertRules, FleetTrack, Overrides, evaluate
from edgefleet.cloud.alerting.config import load_notifications
from edgefleet.cloud.alerting.evaluating import resume_track
from edgefleet.cloud.alerting.reconciling import reconcile_alerts
from edgefleet.cloud.fleet import box_reachability
from edgefleet.cloud.nodes import ClusterNodes, watch_failed
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import HOST_CLUSTER, T0, Scenario, beat, make_inventory, markdown, status
from tests.support.nodes import node_object, publish_nodes

ALPHA = SiteId("alpha")
BOX = BoxId("alpha-box-00")
LOST = AlertKey(AlertKind.EDGE_NODE_LOST, ALPHA, BOX)
SITE_LOST = AlertKey(AlertKind.SITE_NODES_LOST, ALPHA)


def started(**sites: int) -> Scenario:
    scenario = Scenario(make_inventory(sites or {"alpha": 4, "beta": 4}))
    scenario.start()
    nodes(scenario, {})
    scenario.run(5)
    return scenario


def nodes(scenario: Scenario, ready: dict[str, str | None], *, since: float | None = None) -> None:
    """The host cluster lists every box's node Ready, but those in ``ready`` (None: the node is gone), whose
    Ready status changed at ``since`` (default: now) by the cluster's clock."""
    at = scenario.now if since is None else since
    objects = [
        node_object(box, ready.get(box, "True"), since=at)
        for box in scenario.inventory.boxes
        if not (box in ready and ready[box] is None)
    ]
    publish_nodes(scenario.fleet, HOST_CLUSTER, objects, now=scenario.now)


def fires(scenario: Scenario, key: AlertKey) -> list[float]:
    return [t.at for t in scenario.transitions if t.alert.key == key and t.action == "fire"]


def test_an_online_box_whose_node_is_not_ready_raises_edge_node_lost_after_two_minutes() -> None:
    scenario = started()
    went = scenario.now
    nodes(scenario, {BOX: "False"})
    scenario.run(119)
    assert LOST not in scenario.active()
    scenario.run(2)
    assert fires(scenario, LOST) == [went + 120]
    alert = scenario.stored[LOST]
    assert alert.summary == "Box alpha-box-00 alive, KubeEdge lost it: check edgecore"
    assert "node alpha-box-00 in cluster test-edge is not-ready (KubeletNotReady)" in alert.description
    assert alert.started_at == went
    assert scenario.told(AlertKind.EDGE_NODE_LOST) == [("firing", LOST)]
    assert "alive, KubeEdge lost it" in markdown(scenario.sent()[-1])

    nodes(scenario, {})  # edgecore restarted: Ready again
    scenario.run(1)
    assert LOST not in scenario.active()
    scenario.run(60)  # the resolve goes out with the site's next group
    assert scenario.told(AlertKind.EDGE_NODE_LOST) == [("firing", LOST), ("resolved", LOST)]


def test_the_clusters_transition_time_counts_and_a_missing_node_is_lost_too() -> None:
    scenario = Scenario(make_inventory({"alpha": 4, "beta": 4}))
    scenario.start()
    scenario.run(600)  # the agents online for ten minutes, the cluster not watched yet
    # The first list says the node has been Unknown for ten minutes already: no two-minute wait.
    nodes(scenario, {BOX: "Unknown", "alpha-box-01": None}, since=scenario.now - 600)
    scenario.run(1)
    assert fires(scenario, LOST) == [scenario.now]
    assert scenario.stored[LOST].details["node_state"] == "unknown"
    gone = AlertKey(AlertKind.EDGE_NODE_LOST, ALPHA, BoxId("alpha-box-01"))
    assert gone not in scenario.active()  # missing since the list, a second ago
    scenario.run(120)
    assert scenario.stored[gone].details["node_state"] == "missing"


def test_a_box_that_boots_is_no_alert_while_edgecore_comes_up() -> None:
    scenario = started()
    scenario.drop([BOX])  # powered off: its node goes NotReady with it
    nodes(scenario, {BOX: "Unknown"})
    scenario.run(3600)
    scenario.restore([BOX])  # powered on: the agent beats at once, edgecore reports Ready 40 s later
    scenario.run(40)
    assert fires(scenario, LOST) == []
    nodes(scenario, {})
    scenario.run(600)
    assert fires(scenario, LOST) == []


def test_a_box_whose_agent_is_lost_raises_box_lost_only() -> None:
    scenario = started()
    nodes(scenario, {BOX: "False"})
    scenario.run(130)
    assert LOST in scenario.active()
    scenario.drop([BOX])  # the agent goes too (power): lost contact takes over
    scenario.run(1)
    lost = scenario.active()
    assert AlertKey(AlertKind.BOX_LOST, ALPHA, BOX) in lost
    assert LOST not in lost
    scenario.run(600)
    assert fires(scenario, LOST) == [T0 + 5 + 120]  # never again while the agent is lost


def test_a_site_whose_online_boxes_all_lost_their_nodes_raises_one_site_alert() -> None:
    scenario = started()
    # alpha-box-03's agent is off; the other three are online and KubeEdge lost all four nodes (cloudcore link).
    scenario.drop(["alpha-box-03"])
    nodes(scenario, dict.fromkeys(scenario.site("alpha"), "Unknown"))
    scenario.run(125)
    active = scenario.active()
    assert SITE_LOST in active
    box_alerts = [a for k, a in active.items() if k.kind == AlertKind.EDGE_NODE_LOST]
    assert sorted(str(a.key.box) for a in box_alerts) == ["alpha-box-00", "alpha-box-01", "alpha-box-02"]
    assert all(a.muted == "inhibited" and a.muted_by == (str(SITE_LOST),) for a in box_alerts)
    assert scenario.told(AlertKind.EDGE_NODE_LOST) == []
    assert scenario.told(AlertKind.SITE_NODES_LOST) == [("firing", SITE_LOST)]
    assert "KubeEdge lost all 3 nodes of its online boxes" in active[SITE_LOST].summary
    assert active[SITE_LOST].details["boxes"] == ("alpha-box-00", "alpha-box-01", "alpha-box-02")

    nodes(scenario, {})  # the link is back
    scenario.run(1)
    assert scenario.active(AlertKind.SITE_NODES_LOST) == {}
    assert scenario.active(AlertKind.EDGE_NODE_LOST) == {}
    assert scenario.told(AlertKind.EDGE_NODE_LOST) == []  # muted firing, muted resolve: never told


def test_one_box_of_a_site_is_no_site_alert() -> None:
    scenario = started()
    nodes(scenario, {BOX: "False"})
    scenario.run(200)
    assert scenario.active(AlertKind.SITE_NODES_LOST) == {}
    assert scenario.active()[LOST].muted is None


def test_a_cluster_the_controller_cannot_watch_starts_and_ends_nothing() -> None:
    scenario = started()
    nodes(scenario, {BOX: "False"})
    scenario.run(130)
    assert LOST in scenario.active()
    # The cluster's API goes away: 100 boxes' nodes read not-watched. That is the cluster's problem (its health
    # says so), not 100 box alerts, and not the resolve of the one that fires.
    with scenario.fleet.lock:
        scenario.fleet.nodes = {HOST_CLUSTER: watch_failed(scenario.fleet.nodes[HOST_CLUSTER], "refused", now=1.0)}
    scenario.run(600)
    assert LOST in scenario.active()
    assert [t.action for t in scenario.transitions if t.alert.key.kind == AlertKind.EDGE_NODE_LOST] == ["fire"]
    # Back, and the node is Ready again: it resolves then.
    nodes(scenario, {})
    scenario.run(1)
    assert LOST not in scenario.active()


def test_no_gateway_means_no_node_alert() -> None:
    scenario = Scenario(make_inventory({"alpha": 4}))
    scenario.start()
    scenario.run(300)
    assert scenario.track.nodes_lost == {}
    assert not [t for t in scenario.transitions if t.alert.key.kind == AlertKind.EDGE_NODE_LOST]
    with scenario.fleet.lock:
        scenario.fleet.nodes = {HOST_CLUSTER: ClusterNodes(HOST_CLUSTER)}  # watched soon, not listed yet
    scenario.run(300)
    assert scenario.active(AlertKind.EDGE_NODE_LOST) == {}


def test_a_restarted_controller_goes_on_with_the_alert_it_had() -> None:
    scenario = started()
    nodes(scenario, dict.fromkeys(scenario.site("alpha"), "False"))
    scenario.run(130)
    before = scenario.active()
    assert SITE_LOST in before
    # Restarted: memory from the stored alerts only, the cluster not listed yet (held), then listed.
    track = resume_track(before.values())
    with scenario.fleet.lock:
        scenario.fleet.nodes = {HOST_CLUSTER: ClusterNodes(HOST_CLUSTER)}
    held = evaluate(scenario.fleet, track, AlertRules(), now=scenario.now + 1)
    assert reconcile_alerts(before, held, [], now=scenario.now + 1) == []
    with scenario.fleet.lock:
        scenario.fleet.nodes = {}
    nodes(scenario, dict.fromkeys(scenario.site("alpha"), "False"), since=T0 + 5)
    listed = evaluate(scenario.fleet, held.track, AlertRules(), now=scenario.now + 2)
    assert reconcile_alerts(before, listed, [], now=scenario.now + 2) == []


def test_the_threshold_is_set_per_site_in_the_notification_file(tmp_path: Path) -> None:
    inventory = make_inventory({"alpha": 4, "beta": 4})
    path = tmp_path / "notifications.yaml"
    path.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: n}\nspec:\n"
        "  channels:\n    - {name: tickets, kind: webhook, url: 'http://127.0.0.1:9/hooks'}\n"
        "  routes:\n    - channels: [tickets]\n"
        "  rules:\n    defaults: {edgeNodeLostAfter: 5m}\n    sites: {beta: {edgeNodeLostAfter: 30s}}\n"
    )
    rules = load_notifications(path, inventory=inventory).rules
    assert rules.for_site(SiteId("alpha")).edge_node_lost_after_s == 300
    assert rules.for_site(SiteId("beta")).edge_node_lost_after_s == 30

    scenario = Scenario(inventory, rules=rules)
    scenario.start()
    nodes(scenario, {BOX: "False", "beta-box-00": "False"})
    scenario.run(31)
    assert [k.box for k in scenario.active(AlertKind.EDGE_NODE_LOST)] == ["beta-box-00"]


# --- properties -------------------------------------------------------------------------------------------

AGENT = st.sampled_from(["online", "offline", "never-seen"])
NODE = st.sampled_from(["True", "False", "Unknown", None, "gone"])


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.lists(st.tuples(AGENT, NODE), min_size=3, max_size=3),
            st.booleans(),
            st.sampled_from([1.0, 30.0, 90.0]),
        ),
        min_size=1,
        max_size=12,
    ),
    st.sampled_from([0.0, 60.0, 120.0]),
)
def test_node_alerts_keep_their_promises(
    steps: list[tuple[list[tuple[str, str | None]], bool, float]], after: float
) -> None:
    inventory = make_inventory({"alpha": 3})
    rules = AlertRules(sites={ALPHA: Overrides(edge_node_lost_after_s=after)})
    scenario = Scenario(inventory, rules=rules)
    boxes = scenario.site("alpha")
    track = FleetTrack()
    now = T0
    for plan, watched, dt in steps:
        now += dt
        for box, (agent, _) in zip(boxes, plan, strict=True):
            live = scenario.box(box)
            if agent == "online":
                beat(live, now)
            elif agent == "offline" and live.last_seen is not None:
                status(live, "offline", "connection-lost", now)
        if watched:
            objects = [node_object(b, r, since=now) for b, (_, r) in zip(boxes, plan, strict=True) if r != "gone"]
            publish_nodes(scenario.fleet, HOST_CLUSTER, objects, now=now)
        else:
            with scenario.fleet.lock:
                known = scenario.fleet.nodes.get(HOST_CLUSTER) or ClusterNodes(HOST_CLUSTER)
                scenario.fleet.nodes = {HOST_CLUSTER: watch_failed(known, "refused", now=now)}
        before = track
        evaluation = evaluate(scenario.fleet, track, rules, now=now)
        track = evaluation.track
        desired = evaluation.desired
        for box, (_, node) in zip(boxes, plan, strict=True):
            key = AlertKey(AlertKind.EDGE_NODE_LOST, ALPHA, box)
            online = box_reachability(scenario.fleet, scenario.box(box), now=now).state == "online"
            # Only a box whose agent is online: one whose agent is lost has box-lost, never both.
            assert key not in desired or online
            assert not (key in desired and AlertKey(AlertKind.BOX_LOST, ALPHA, box) in desired)
            was_firing = box in before.nodes_lost and before.nodes_lost[box].firing
            if not watched:  # judged nothing: as it was, for as long as the agent is online
                assert (key in desired) == (online and was_firing)
            elif key in desired:
                assert node in ("False", "Unknown", None, "gone")
                assert now - desired[key].started_at >= after
            else:
                assert not online or node == "True" or now - track.nodes_lost[box].since < after
        if SITE_LOST in desired:
            firing = [k for k in desired if k.kind == AlertKind.EDGE_NODE_LOST]
            assert firing
            assert all(evaluation.inhibited_by.get(k) == str(SITE_LOST) for k in firing)

"""A central cluster's Events into the notification channels (``edgefleet.cloud.event_forwarding``), end to end: a
simulated cluster whose Deployment crash-loops (the simulator's crash-loop fate) emits Warning BackOff Events
whose count climbs; the forwarder watches them through the gateway, keeps only what the cluster's rules forward
(Warning, not the Normal Scheduled/Pulled/Started), and a webhook receiver on 127.0.0.1 gets one message for the
pod with the count - not one per repeat, and none more as the count climbs. A restarted forwarder (new process
state over the same database) resends nothing, and tells what crash-looped while it was down."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.clock import SystemClock
from edgefleet.cloud.alerting.config import NotificationConfig, load_notifications
from edgefleet.cloud.alerting.delivering import DeliveryWorker
from edgefleet.cloud.alerting.delivery import build_senders, http_client
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.event_forwarding import EventForwarding, ToldEvents
from edgefleet.cloud.k8s.clients import ClusterClients
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.cloud.store import Store
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.pods import PodTiming
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.k8s.conftest import TEST_TIMEOUTS
from tests.policies.central import CLUSTER, SITE
from tests.policies.test_batch_restart_stops_at_a_failing_deployment import CrashLoops
from tests.policies.test_the_audit_finds_what_breaks_the_policy import workload
from tests.support.peers import wait_for
from tests.support.receivers import RecordingReceiver, recording_receiver

CENTRAL = ClusterId(CLUSTER)
RULES = """\
    events:
      - {action: include, level: Warning}
      - {action: exclude, reasons: [FailedScheduling]}
    namespaces:
"""
NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {{name: test}}
spec:
  channels:
    - {{name: platform, kind: webhook, url: "{url}/hooks/events"}}
  routes:
    - {{events: [Warning], channels: [platform]}}
  defaultChannels: []
"""


@pytest.fixture
def inventory(tmp_path: Path) -> Inventory:
    (tmp_path / "sites").mkdir()
    (tmp_path / "sites" / "central-x.yaml").write_text(SITE.replace("    namespaces:\n", RULES, 1))
    return load_inventory(tmp_path / "sites")


@pytest.fixture
def crash_loops() -> CrashLoops:
    return CrashLoops()


@pytest.fixture
def central(inventory: Inventory, crash_loops: CrashLoops) -> Iterator[BackgroundCluster]:
    boxes = site_boxes(inventory, SiteId(CLUSTER))
    running = start_cluster_in_background(
        CLUSTER, boxes, controllers=True, pod_timing=PodTiming().scaled(0.05), pod_fate=crash_loops
    )
    yield running
    running.stop()


@pytest.fixture
def gateway(central: BackgroundCluster, tmp_path: Path) -> Iterator[KubernetesGateway]:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: central.url})
    built = KubernetesGateway(
        ClusterClients({CENTRAL: CLUSTER}, kubeconfig), clock=SystemClock(), timeouts=TEST_TIMEOUTS, watch_timeout_s=5
    )
    yield built
    built.close()


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as running:
        yield running


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with http_client(timeout_s=2.0) as c:
        yield c


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    opened = Store(f"sqlite:///{tmp_path / 'edgefleet.db'}")
    Outbox(opened).create_schema()
    ToldEvents(opened).create_schema()
    yield opened
    opened.close()


class Controller:
    """What the controller builds for the Events: the forwarder over the outbox and the told table, and the
    delivery worker; a new one is a restarted controller (nothing kept in memory)."""

    def __init__(
        self, inventory: Inventory, gateway: KubernetesGateway, store: Store, config: NotificationConfig, client: Any
    ) -> None:
        clock = SystemClock()
        self.outbox = Outbox(store)
        self.delivery = DeliveryWorker(self.outbox, config, clock=clock, senders=build_senders(client, clock=clock))
        self.forwarding = EventForwarding(
            gateway,
            inventory.clusters.values,
            self.outbox,
            ToldEvents(store),
            lambda: config,
            clock=clock,
            group_wait_s=1.0,
            pass_s=0.2,
        )
        self.forwarding.start()

    def deliver(self) -> None:
        self.delivery.deliver()

    def stop(self) -> None:
        self.forwarding.stop()


def hooks(receiver: RecordingReceiver) -> list[dict[str, Any]]:
    return [r.json() for r in receiver.received if r.path == "/hooks/events"]


def backoff_count(gateway: KubernetesGateway, pod_prefix: str) -> int:
    events = gateway.list_objects(CENTRAL, "Event", namespace="shop").items
    return max(
        [
            int(e.get("count") or 1)
            for e in events
            if e.get("reason") == "BackOff" and e["involvedObject"]["name"].startswith(pod_prefix)
        ],
        default=0,
    )


def crash_loop(gateway: KubernetesGateway, crash_loops: CrashLoops, name: str) -> None:
    crash_loops.broken.add(f"registry.local/{name}:1")
    gateway.apply(CENTRAL, workload(name, replicas=1))


def test_a_crash_loop_is_one_message_with_its_count_and_a_restart_resends_nothing(
    inventory: Inventory,
    gateway: KubernetesGateway,
    crash_loops: CrashLoops,
    receiver: RecordingReceiver,
    client: httpx.Client,
    store: Store,
    tmp_path: Path,
) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(NOTIFICATIONS.format(url=receiver.url))
    config = load_notifications(path)
    gateway.apply(CENTRAL, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    crash_loop(gateway, crash_loops, "b-api")

    first = Controller(inventory, gateway, store, config, client)
    try:

        def told() -> list[dict[str, Any]]:
            first.deliver()
            return hooks(receiver)

        (message,) = wait_for(told, timeout=30, what="the crash loop's message")
        assert message["cluster"] == CLUSTER
        assert message["involvedObject"]["kind"] == "Pod"
        assert message["involvedObject"]["name"].startswith("b-api-")
        # Only what the rules forward: the Warning, never the Normal Scheduled, Pulled, Created, Started.
        assert {(e["type"], e["reason"]) for e in message["events"]} == {("Warning", "BackOff")}
        (backoff,) = message["events"]
        assert backoff["count"] >= 1
        # The count climbs in the cluster; nothing more is told.
        wait_for(lambda: backoff_count(gateway, "b-api-") > backoff["count"], timeout=30, what="another BackOff")
        first.forwarding.send_ready()
        first.deliver()
        assert len(hooks(receiver)) == 1
    finally:
        first.stop()

    # Down: another Deployment crash-loops meanwhile.
    crash_loop(gateway, crash_loops, "c-worker")
    wait_for(lambda: backoff_count(gateway, "c-worker-"), timeout=30, what="c-worker's BackOff")

    second = Controller(inventory, gateway, store, config, client)
    try:

        def caught_up() -> list[dict[str, Any]]:
            second.deliver()
            return [h for h in hooks(receiver) if h["involvedObject"]["name"].startswith("c-worker-")]

        (missed,) = wait_for(caught_up, timeout=30, what="what crash-looped while the controller was down")
        assert {e["reason"] for e in missed["events"]} == {"BackOff"}
        second.forwarding.send_ready()
        second.deliver()
        names = [h["involvedObject"]["name"].partition("-")[0] for h in hooks(receiver)]
        assert sorted(names) == ["b", "c"]  # b-api once, before the restart; c-worker once, after
    finally:
        second.stop()

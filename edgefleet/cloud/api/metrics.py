"""The controller's Prometheus metrics: a collector that reads the live fleet state at scrape time.

Nothing is updated per message on the ingest's hot path; a scrape copies the fleet state once (see
``reading``) and writes every series from that copy. ``create_app`` registers ``FleetCollector`` in a registry
of the app's own (never prometheus_client's global one, so two apps in one process - tests - do not collide),
and ``GET /metrics`` renders it.

Label cardinality: one series per box for each box gauge (1,977 in the shipped fleet), one per GPU for each GPU
gauge (1,864), three per site for ``edgefleet_site_boxes``: about 10,000 series, 0.8 MB a scrape. GPUs are labelled by their index on the box, not their UUID: the
UUID is one-to-one with (box, index) today, but a swapped GPU would start new series and break every graph
and alert rule that follows the slot; the UUID stays available in the API.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Final, NamedTuple, get_args

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4, generate_latest

from edgefleet.cloud.api.deps import FleetReader
from edgefleet.cloud.api.reading import read_fleet
from edgefleet.cloud.fleet import ReachabilityState
from edgefleet.cloud.hearing import HearingState

# Debian's Prometheus 2.42 and every 2.x server parse text format 0.0.4; prometheus_client's newer default
# (1.0.0) is only understood by Prometheus 3.
CONTENT_TYPE: Final = CONTENT_TYPE_PLAIN_0_0_4
STATES: Final[tuple[ReachabilityState, ...]] = ("online", "offline", "never-seen")
HEARING_STATES: Final[tuple[HearingState, ...]] = get_args(HearingState)


class _Families(NamedTuple):
    up: GaugeMetricFamily
    last_seen: GaugeMetricFamily
    skew: GaugeMetricFamily
    temperature: GaugeMetricFamily
    utilization: GaugeMetricFamily
    site_boxes: GaugeMetricFamily
    ingest: CounterMetricFamily
    unknown: GaugeMetricFamily
    broker: GaugeMetricFamily
    hearing: GaugeMetricFamily
    lag: GaugeMetricFamily
    busy: GaugeMetricFamily
    quiet: GaugeMetricFamily
    saves: CounterMetricFamily
    failed_saves: CounterMetricFamily
    last_save: GaugeMetricFamily
    saves_failing: GaugeMetricFamily
    pending: GaugeMetricFamily
    dropped_samples: CounterMetricFamily
    cluster_up: GaugeMetricFamily
    cluster_probe: GaugeMetricFamily
    cluster_last_success: GaugeMetricFamily
    cluster_errors: CounterMetricFamily


def _families() -> _Families:
    box, gpu, writer = ["site", "box"], ["site", "box", "gpu"], ["writer"]
    return _Families(
        up=GaugeMetricFamily(
            "edgefleet_box_up",
            "1 when the box is online (heartbeats arrive and no offline status says otherwise), else 0.",
            labels=box,
        ),
        last_seen=GaugeMetricFamily(
            "edgefleet_box_last_seen_timestamp_seconds",
            "When the controller last received a heartbeat of the box, by the controller's clock.",
            labels=box,
        ),
        skew=GaugeMetricFamily(
            "edgefleet_box_clock_skew_seconds",
            "The box's clock minus the controller's, measured at its latest heartbeat.",
            labels=box,
        ),
        temperature=GaugeMetricFamily(
            "edgefleet_gpu_temperature_celsius",
            "GPU temperature in the latest heartbeat of an online box; gpu is the GPU's index on the box.",
            labels=gpu,
        ),
        utilization=GaugeMetricFamily(
            "edgefleet_gpu_utilization_ratio",
            "GPU utilisation (0-1) in the latest heartbeat of an online box; gpu is the GPU's index on the box.",
            labels=gpu,
        ),
        site_boxes=GaugeMetricFamily(
            "edgefleet_site_boxes",
            "Boxes of the site by reachability state (online, offline, never-seen).",
            labels=["site", "state"],
        ),
        ingest=CounterMetricFamily(
            "edgefleet_ingest_messages",
            "Messages the controller took from the broker, by outcome (accepted, duplicate, stale, malformed, ...).",
            labels=["outcome"],
        ),
        unknown=GaugeMetricFamily(
            "edgefleet_unknown_boxes",
            "Boxes that publish but are in no site manifest (GET /api/v1/unknown-boxes lists them).",
        ),
        broker=GaugeMetricFamily(
            "edgefleet_broker_connected",
            "1 while the controller is connected to the MQTT broker, else 0.",
        ),
        hearing=GaugeMetricFamily(
            "edgefleet_controller_hearing",
            "1 for the controller's hearing state now (hearing, recovering, behind, deaf), 0 for the others; box "
            "silence is judged only while hearing.",
            labels=["state"],
        ),
        lag=GaugeMetricFamily(
            "edgefleet_ingest_lag_seconds",
            "How late heartbeats arrive against each box's usual offset (median over the last window).",
        ),
        busy=GaugeMetricFamily(
            "edgefleet_ingest_busy_ratio",
            "Share of the last window the ingest's network thread had no breathing room (0-1).",
        ),
        quiet=GaugeMetricFamily(
            "edgefleet_ingest_quiet_seconds",
            "Seconds since the ingest last received a message from the broker.",
        ),
        saves=CounterMetricFamily(
            "edgefleet_database_saves",
            "Successful saves to the database since start, by what was saved (fleet: a flush of the fleet state; "
            "alerts: the alert loop's save).",
            labels=writer,
        ),
        failed_saves=CounterMetricFamily(
            "edgefleet_database_failed_saves",
            "Saves to the database that failed since start (kept in memory and tried again), by what was saved.",
            labels=writer,
        ),
        last_save=GaugeMetricFamily(
            "edgefleet_database_last_save_timestamp_seconds",
            "When the last successful save happened, by what was saved (absent: none since start).",
            labels=writer,
        ),
        saves_failing=GaugeMetricFamily(
            "edgefleet_database_saves_failing",
            "1 while the latest save failed (what it held waits in memory), else 0; /healthz then says degraded.",
            labels=writer,
        ),
        pending=GaugeMetricFamily(
            "edgefleet_database_pending_items",
            "Items waiting in memory for the next save (fleet: boxes and health points; alerts: alerts).",
            labels=writer,
        ),
        dropped_samples=CounterMetricFamily(
            "edgefleet_database_dropped_samples",
            "Health points dropped unsaved because the database was away longer than memory could hold them.",
        ),
        cluster_up=GaugeMetricFamily(
            "edgefleet_cluster_up",
            "1 when the controller's last probe reached the cluster's API server, else 0 (absent before the first "
            "probe).",
            labels=["cluster"],
        ),
        cluster_probe=GaugeMetricFamily(
            "edgefleet_cluster_probe_seconds",
            "How long the last successful probe of the cluster's API server took (GET /version).",
            labels=["cluster"],
        ),
        cluster_last_success=GaugeMetricFamily(
            "edgefleet_cluster_last_success_timestamp_seconds",
            "When a probe last reached the cluster's API server, by the controller's clock.",
            labels=["cluster"],
        ),
        cluster_errors=CounterMetricFamily(
            "edgefleet_cluster_gateway_errors",
            "Calls to the cluster that failed since start, by kind: temporary (worth trying again: unreachable, "
            "timed out, 409, 429, 5xx) or permanent (the request, the kubeconfig or the permissions need a fix).",
            labels=["cluster", "kind"],
        ),
    )


class FleetCollector:
    """Writes the fleet's metrics from the controller's live state at each scrape."""

    def __init__(self, controller: FleetReader) -> None:
        self.controller = controller

    def describe(self) -> Iterator[Metric]:
        # Names only, so the registry checks for clashes without reading the state at registration.
        yield from _families()

    def collect(self) -> Iterator[Metric]:
        controller = self.controller
        f = _families()
        views = read_fleet(controller.state, now=controller.clock.now())
        by_site: Counter[tuple[str, ReachabilityState]] = Counter()
        for view in views:
            site, box, live = view.box.site, view.box.id, view.live
            online = view.reachability.state == "online"
            by_site[site, view.reachability.state] += 1
            f.up.add_metric([site, box], 1.0 if online else 0.0)
            if live.last_seen is not None:
                f.last_seen.add_metric([site, box], live.last_seen)
            if live.clock_skew_s is not None:
                f.skew.add_metric([site, box], live.clock_skew_s)
            # Readings of a box that is not online are old: leaving them out lets Prometheus mark them stale.
            if online and live.heartbeat is not None:
                for gpu in live.heartbeat.gpu.gpus:
                    if gpu.temperature_c is not None:
                        f.temperature.add_metric([site, box, str(gpu.index)], gpu.temperature_c)
                    if gpu.utilization_percent is not None:
                        f.utilization.add_metric([site, box, str(gpu.index)], gpu.utilization_percent / 100.0)
        for site in controller.state.inventory.sites:
            for state in STATES:
                f.site_boxes.add_metric([site, state], by_site[site, state])
        for outcome, count in sorted(dict(controller.ingest.counters).items()):
            f.ingest.add_metric([outcome], count)
        with controller.state.lock:
            unknown = len(controller.state.unknown)
        f.unknown.add_metric([], unknown)
        f.broker.add_metric([], 1.0 if controller.ingest.connected else 0.0)
        hearing = controller.hearing.state
        for hearing_state in HEARING_STATES:
            f.hearing.add_metric([hearing_state], 1.0 if hearing_state == hearing else 0.0)
        stats = controller.ingest.stats()
        f.lag.add_metric([], stats.lag_s)
        f.busy.add_metric([], stats.busy)
        if stats.since_last_message_s is not None:
            f.quiet.add_metric([], stats.since_last_message_s)
        saving = controller.saving()
        writers = [("fleet", saving.fleet)] + ([("alerts", saving.alerts)] if saving.alerts is not None else [])
        for name, health in writers:
            f.saves.add_metric([name], health.saves)
            f.failed_saves.add_metric([name], health.failed_saves)
            if health.last_saved_at is not None:
                f.last_save.add_metric([name], health.last_saved_at)
            f.saves_failing.add_metric([name], 1.0 if health.failing else 0.0)
            f.pending.add_metric([name], health.pending)
        f.dropped_samples.add_metric([], saving.dropped_samples)
        for cluster in controller.cluster_health():
            name = str(cluster.cluster)
            if cluster.reachable is not None:
                f.cluster_up.add_metric([name], 1.0 if cluster.reachable else 0.0)
            if cluster.reachable and cluster.latency_s is not None:
                f.cluster_probe.add_metric([name], cluster.latency_s)
            if cluster.last_success_at is not None:
                f.cluster_last_success.add_metric([name], cluster.last_success_at)
            f.cluster_errors.add_metric([name, "temporary"], cluster.temporary_errors)
            f.cluster_errors.add_metric([name, "permanent"], cluster.permanent_errors)
        yield from f


def build_registry(controller: FleetReader) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FleetCollector(controller))
    return registry


def render(registry: CollectorRegistry) -> bytes:
    """The Prometheus text exposition of ``registry``."""
    return generate_latest(registry)

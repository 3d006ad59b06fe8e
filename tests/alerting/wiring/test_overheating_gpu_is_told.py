"""A GPU held hot by the simulator's overheat fault is told once as gpu-overheat (after the notification file's
``gpuTemperatureFor``), and resolved once it cools below the limit's hysteresis."""

from __future__ import annotations

from tests.alerting.wiring.fleets import Fleet
from tests.support.peers import wait_for


def test_an_overheating_gpu_is_told_once_then_resolved_when_it_cools(fleet: Fleet) -> None:
    box = "hot-01-gpu-01"
    fault = fleet.inject(kind="overheat", box=box, gpu=0, temperature_c=96.0)

    hot = fleet.wait_notice(box=box, kind="gpu-overheat", timeout=10)
    assert hot.notice == "firing"
    assert hot.alert["detail"] == "gpu-0"
    assert hot.alert["severity"] == "warning"
    assert hot.alert["details"]["temperature_c"] == 96.0
    # Sustained means shown by heartbeats that span the rule's duration (1 s here), not one hot reading.
    assert hot.received.at - fleet.controller.alerting.alert(hot.alert["id"]).started_at >= 1.0

    fleet.clear(fault)
    fleet.wait_notice(box=box, kind="gpu-overheat", notice="resolved", timeout=15)
    fleet.settled()
    assert [n.notice for n in fleet.notices(site="hot-01")] == ["firing", "resolved"]
    wait_for(lambda: fleet.stored(site="hot-01", kind="gpu-overheat")[0]["state"] == "resolved", what="resolved")

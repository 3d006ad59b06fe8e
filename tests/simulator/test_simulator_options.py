"""The simulator's options: each out-of-range value is refused naming the option, and the fleet it plays is
the sites asked for, each cut to its first boxes."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from edgefleet.ids import SiteId
from edgefleet.inventory import load_inventory
from simulator.running import SimulatorError, SimulatorOptions, select_fleet
from tests.simulator.fleets import write_inventory

GOOD = SimulatorOptions()


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"broker_url": "http://broker:1883"}, "scheme must be mqtt://"),
        (
            {"broker_url": "mqtts://broker:8883", "cert_file": Path("/nowhere.crt")},
            "--cert-file and --key-file go together",
        ),
        (
            {"broker_url": "mqtts://broker:8883", "ca_file": Path("/nowhere/ca.crt")},
            "TLS file /nowhere/ca.crt: no such file",
        ),
        ({"listen": "8100"}, "listen address '8100' is not HOST:PORT"),
        ({"listen": "127.0.0.1:99999"}, "is not HOST:PORT"),
        ({"keepalive_s": 0}, "--keepalive must be from 1 to 65535"),
        ({"jitter": -0.1}, "--jitter must be from 0 to 0.9"),
        ({"loss": 1.5}, "--loss must be from 0 to 1"),
        ({"interval_override_s": 0.0}, "--interval-override must be more than 0"),
        ({"max_boxes_per_site": 0}, "--max-boxes-per-site must be at least 1"),
        ({"node_grace_s": 0.1}, "--node-grace must be from 0.5 to 3600 seconds"),
        ({"kubeconfig": Path("/")}, "--kubeconfig / is a directory"),
    ],
)
def test_out_of_range_options_are_refused_by_name(change: dict[str, object], words: str) -> None:
    with pytest.raises(SimulatorError, match=words) as caught:
        replace(GOOD, **change).check()  # type: ignore[arg-type]
    assert str(caught.value)


def test_defaults_are_good() -> None:
    GOOD.check()
    assert GOOD.listen_address() == ("127.0.0.1", 8100)
    assert str(GOOD.broker()) == "mqtt://127.0.0.1:1883"


def test_the_fleet_is_the_sites_asked_for_cut_to_their_first_boxes(tmp_path: Path) -> None:
    write_inventory(tmp_path, sites=3, boxes_per_site=4)
    inventory = load_inventory(tmp_path)
    everything = select_fleet(inventory, GOOD)
    assert len(everything.boxes) == 12
    some = select_fleet(inventory, replace(GOOD, sites=("site-03", "site-01", "site-03"), max_boxes_per_site=2))
    assert list(some.sites) == ["site-03", "site-01"]
    assert some.sites[SiteId("site-01")].boxes == ("site-01-edge-01", "site-01-gpu-01")
    assert set(some.boxes) == {"site-01-edge-01", "site-01-gpu-01", "site-03-edge-01", "site-03-gpu-01"}
    # Only the clusters of the sites played are served.
    central = tmp_path / "with-central"
    write_inventory(central, sites=1, boxes_per_site=2, central=True)
    both = load_inventory(central)
    assert set(select_fleet(both, GOOD).clusters) == {"test-edge", "central-01"}
    assert set(select_fleet(both, replace(GOOD, sites=("central-01",))).clusters) == {"central-01"}
    with pytest.raises(SimulatorError, match="site\\(s\\) 'nowhere' not in the inventory"):
        select_fleet(inventory, replace(GOOD, sites=("nowhere",)))

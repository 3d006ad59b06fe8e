"""The rollout benchmark measures what it says (bench/rollout.py): the release it rolls out is the shipped
scan-upload 1.14.0 with only the soak, approvals, blackouts, sites in flight and threshold changed (and, for the
abort, the version), as the release loader reads it against the shipped inventory; and its counting gateway counts
every call it passes through, by method, and hands back what the inner gateway answers."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from edgefleet.inventory import load_inventory
from edgefleet.releases import load_release_text

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_rollout", REPO / "bench" / "rollout.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_the_release_is_the_shipped_one_with_only_the_strategy_changed(bench: ModuleType) -> None:
    shipped_text = (REPO / "releases" / "scan-upload-1.14.0.yaml").read_text()
    changed = bench.strategy(shipped_text, version="1.15.0", soak="0s", max_in_flight=100, failed_sites=0)

    inventory = load_inventory(REPO / "sites")
    release = load_release_text(changed, "bench", inventory)
    assert release.name == "scan-upload-1.15.0"
    assert release.version == "1.15.0"
    assert dict(release.images) == {"scan-upload": "registry.local:5000/edgefleet/scan-upload:1.15.0"}
    shipped, ours = yaml.safe_load(shipped_text)["spec"], yaml.safe_load(changed)["spec"]
    for field in ("config", "env", "resources", "overrides"):
        assert ours[field] == shipped[field]
    plan = ours["strategy"]
    assert plan["canary"] == shipped["strategy"]["canary"]
    assert plan["waves"] == shipped["strategy"]["waves"]
    assert (plan["soak"], plan["maxInFlight"], plan["failureThreshold"]) == (
        "0s",
        100,
        {"sites": 0, "percentOfWave": 100},
    )
    assert "approvalBefore" not in plan
    assert "blackouts" not in plan


def test_the_counting_gateway_counts_every_call_and_passes_answers_through(bench: ModuleType) -> None:
    class Inner:
        def apply(self, cluster: str, obj: dict[str, Any], *, force: bool = False) -> dict[str, Any]:
            return {"applied": obj, "force": force}

        def list_objects(self, cluster: str, kind: str, **selectors: str) -> list[str]:
            return [kind]

    counting = bench.CountingGateway(Inner())
    assert counting.apply("c", {"kind": "Deployment"}, force=True) == {"applied": {"kind": "Deployment"}, "force": True}
    counting.apply("c", {})
    assert counting.list_objects("c", "Deployment", namespace="edgefleet") == ["Deployment"]

    assert dict(counting.reset()) == {"apply": 2, "list_objects": 1}
    assert dict(counting.reset()) == {}

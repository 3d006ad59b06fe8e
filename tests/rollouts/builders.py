"""Small fleets and releases for the planning tests, built in memory: sites with a region, a kind and the
(GPU model, driver version) of each GPU box; a release written as a file would be and read by the release loader
against the fleet, as the API reads one."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Box, GpuSpec, Inventory, Site
from edgefleet.releases import Release, load_release_text

SiteSpec = tuple[str, str, list[tuple[str, str]]]  # id, region, GPU boxes' (model, driver)


def fleet(
    sites: list[SiteSpec],
    *,
    central: Sequence[str] = (),
    timezone: str = "Asia/Shanghai",
) -> Inventory:
    """An inventory of transfer centers (and central sites, by id) with an edge node and the GPU boxes given."""
    out_sites: dict[SiteId, Site] = {}
    boxes: dict[BoxId, Box] = {}
    for site_id, region, gpus in sites:
        kind = "central" if site_id in central else "transfer-center"
        ids: list[BoxId] = []
        edge = BoxId(f"{site_id}-edge-01")
        boxes[edge] = Box(edge, SiteId(site_id), "cluster-node" if kind == "central" else "edge-node", None, None)
        ids.append(edge)
        for i, (model, driver) in enumerate(gpus, start=1):
            box = BoxId(f"{site_id}-gpu-{i:02}")
            boxes[box] = Box(
                box, SiteId(site_id), "gpu-box", None, GpuSpec(model=model, count=1, driver_version=driver)
            )
            ids.append(box)
        out_sites[SiteId(site_id)] = Site(
            id=SiteId(site_id),
            kind=kind,  # type: ignore[arg-type]
            display_name=site_id,
            region=region,
            timezone=timezone,
            interval_s=10.0,
            missed_beats=3,
            boxes=tuple(ids),
            source=f"sites/{site_id}.yaml",
            cluster=ClusterId("test-edge"),
        )
    return Inventory(out_sites, boxes)


def release_text(**given: Any) -> str:
    """A release manifest (JSON, which is YAML): ``app`` (sorting-recognition), ``version`` (3.6.0), ``overrides``
    (to ``spec.overrides``); every other keyword is a field of ``spec.strategy``."""
    strategy = dict(given)
    app: str = strategy.pop("app", "sorting-recognition")
    version: str = strategy.pop("version", "3.6.0")
    spec: dict[str, Any] = {
        "app": app,
        "version": version,
        "images": {app: f"registry.local:5000/edgefleet/{app}:{version}"},
        "strategy": strategy,
    }
    if app == "sorting-recognition":
        spec["model"] = {
            "name": "rough-handling",
            "version": "2026.11.2",
            "sha256": "ab" * 32,
            "url": "https://models.local/rough-handling/2026.11.2.onnx",
        }
    overrides = strategy.pop("overrides", None)
    if overrides is not None:
        spec["overrides"] = overrides
    document = {"apiVersion": "edgefleet.io/v1", "kind": "Release", "metadata": {"name": f"{app}-x"}, "spec": spec}
    return json.dumps(document, indent=2)


def release(inventory: Inventory, **given: Any) -> Release:
    """``release_text(**given)``, loaded against ``inventory``; raises ReleaseError as the loader does."""
    return load_release_text(release_text(**given), "test-release.yaml", inventory)

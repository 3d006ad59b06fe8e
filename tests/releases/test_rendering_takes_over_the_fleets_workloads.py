"""A release rendered for one site (``edgefleet.cloud.rollouts.rendering``): deterministic; every manifest is what
the API server decodes and server-side apply accepts; the workloads keep the names, selectors and placement of
the ones the simulator (and an earlier release) left, so a rollout takes them over; overrides are merged GPU model
first, site last; a site whose GPU models get different pods gets a DaemonSet per model, each box selected by
exactly one workload; and applied to a simulated cluster, the site's pods run the release's image."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.rendering import (
    CONFIG_HASH_ANNOTATION,
    FIELD_MANAGER,
    NAMESPACE,
    effective,
    namespace,
    render,
)
from edgefleet.ids import ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.releases import Release, load_release_text, load_releases
from simulator.cluster import validating
from simulator.cluster.nodes import ClusterBox, node_manifest, site_boxes
from simulator.cluster.patching import definition_of
from simulator.cluster.pods import PodTiming
from simulator.cluster.releases import fleet_workloads, namespace_manifest
from simulator.cluster.resources import DAEMON_SETS, DEPLOYMENTS, NAMESPACES
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.releases.test_releases_are_refused_with_file_line_and_reason import GOOD, RELEASES
from tests.support.clusters import cluster_manifest, write_host_cluster
from tests.support.peers import wait_for


@pytest.fixture(scope="module")
def releases(inventory: Inventory) -> list[Release]:
    return load_releases([RELEASES], inventory)


def _label_matches(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def _workloads(manifests: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [m for m in manifests if m["kind"] in {"Deployment", "DaemonSet"}]


def test_every_manifest_is_what_the_api_server_decodes_and_apply_accepts(
    releases: list[Release], inventory: Inventory
) -> None:
    rendered = 0
    for release in releases:
        for site in inventory.sites:
            for manifest in [namespace(), *render(release, site, inventory, rollout_id="r-20261201-1")]:
                schema = definition_of(manifest["apiVersion"], manifest["kind"])
                assert schema is not None
                decoded = validating.decode(json.loads(json.dumps(manifest)), schema, kind=manifest["kind"])
                assert (decoded.unknown, decoded.duplicates) == ([], []), manifest["metadata"]["name"]
                assert validating.undeclared_in_apply(manifest, schema) == []
                rendered += 1
    assert rendered > 4 * 100


@settings(max_examples=50, deadline=None)
@given(data=st.data())
def test_rendering_is_deterministic(data: st.DataObject, releases: list[Release], inventory: Inventory) -> None:
    release = data.draw(st.sampled_from(releases))
    site = data.draw(st.sampled_from(sorted(inventory.sites)))
    rollout = data.draw(st.one_of(st.none(), st.from_regex(r"[a-z0-9]([-a-z0-9]{0,20}[a-z0-9])?", fullmatch=True)))
    first = render(release, site, inventory, rollout_id=rollout)
    # A release read again from its file is a new object with the same content.
    again = load_releases([Path(release.source)], inventory)[0]
    assert json.dumps(render(again, site, inventory, rollout_id=rollout)) == json.dumps(first)
    for manifest in first:
        labels = manifest["metadata"]["labels"]
        assert labels["app.kubernetes.io/version"] == release.version
        assert labels["edgefleet.io/release"] == release.name
        assert labels.get("edgefleet.io/rollout") == rollout
    for workload in _workloads(first):
        assert set(workload["spec"]["selector"]["matchLabels"]) <= {
            "app.kubernetes.io/name",
            "edgefleet.io/site",
            "edgefleet.io/gpu-model",
        }
        assert workload["spec"]["template"]["spec"]["containers"][0]["image"] == release.images[release.app]


def test_workloads_keep_the_names_selectors_and_placement_the_simulator_gave_them(
    releases: list[Release], inventory: Inventory
) -> None:
    compared = 0
    for cluster in {s.cluster for s in inventory.sites.values() if s.kind == "transfer-center"}:
        for old in fleet_workloads(inventory, ClusterId(cluster), seed=7):
            site = SiteId(old["metadata"]["labels"]["edgefleet.io/site"])
            app = old["metadata"]["labels"]["app.kubernetes.io/name"]
            release = next(r for r in releases if r.app == app)
            new = {w["metadata"]["name"]: w for w in _workloads(render(release, site, inventory, rollout_id=None))}
            rendered = new[old["metadata"]["name"]]  # the shipped sites have one GPU model each: no split
            assert rendered["kind"] == old["kind"]
            assert rendered["spec"]["selector"] == old["spec"]["selector"]
            assert rendered["spec"].get("replicas") == old["spec"].get("replicas")
            old_pod, new_pod = old["spec"]["template"]["spec"], rendered["spec"]["template"]["spec"]
            assert new_pod["nodeSelector"] == old_pod["nodeSelector"]
            assert new_pod["tolerations"] == old_pod["tolerations"]
            assert new_pod["containers"][0]["name"] == old_pod["containers"][0]["name"] == app
            assert all("tolerationSeconds" not in t for t in new_pod["tolerations"])
            compared += 1
    assert compared >= 150


def test_overrides_apply_gpu_model_first_then_site_later_entries_winning(inventory: Inventory) -> None:
    text = GOOD.replace(
        "  overrides:\n",
        "  overrides:\n"
        '    - sites: [bj-daxing]\n      config: {detector.threshold: "0.70"}\n'
        '    - sites: [bj-daxing]\n      config: {detector.threshold: "0.71"}\n',
    )
    release = load_release_text(text, "given.yaml", inventory)
    # The site ones come first in the file but win over the later GPU-model one; of the two, the later wins.
    assert effective(release, SiteId("bj-daxing"), "NVIDIA T4").config["detector.threshold"] == "0.71"
    assert effective(release, SiteId("bj-shunyi"), "NVIDIA T4").config["detector.threshold"] == "0.55"
    assert effective(release, SiteId("bj-shunyi"), "NVIDIA L4").config["detector.threshold"] == "0.62"
    assert effective(release, SiteId("bj-daxing"), "NVIDIA T4").env["LOG_LEVEL"] == "debug"
    manifests = render(release, SiteId("bj-daxing"), inventory, rollout_id=None)
    assert manifests[0]["kind"] == "ConfigMap"
    assert manifests[0]["data"] == {"detector.threshold": "0.71"}


def test_a_config_change_changes_the_pod_templates_hash(inventory: Inventory) -> None:
    def pod_hash(text: str) -> str:
        release = load_release_text(text, "given.yaml", inventory)
        daemon_set = render(release, SiteId("bj-daxing"), inventory, rollout_id=None)[1]
        return str(daemon_set["spec"]["template"]["metadata"]["annotations"][CONFIG_HASH_ANNOTATION])

    assert pod_hash(GOOD) == pod_hash(GOOD)
    assert pod_hash(GOOD) != pod_hash(GOOD.replace('detector.threshold: "0.55"', 'detector.threshold: "0.56"'))


MIXED_SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: mixed}
spec:
  kind: transfer-center
  displayName: Mixed GPUs
  region: east
  timezone: Asia/Shanghai
  cluster: test-edge
  boxes:
    - {name: mixed-edge-01, role: edge-node}
    - {name: mixed-gpu-01, role: gpu-box, gpu: {model: NVIDIA T4, count: 1, driverVersion: "535.183.01"}}
    - {name: mixed-gpu-02, role: gpu-box, gpu: {model: NVIDIA T4, count: 1, driverVersion: "535.183.01"}}
    - {name: mixed-gpu-03, role: gpu-box, gpu: {model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}
    - {name: mixed-gpu-04, role: gpu-box, gpu: {model: NVIDIA A10, count: 1, driverVersion: "550.90.07"}}
"""


@pytest.fixture(scope="module")
def mixed(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    directory = tmp_path_factory.mktemp("sites")
    write_host_cluster(directory)
    (directory / "mixed.yaml").write_text(MIXED_SITE)
    (directory / "bj-daxing.yaml").write_text(
        MIXED_SITE.replace("name: mixed", "name: bj-daxing").replace("mixed-", "daxing-")
    )
    return load_inventory(directory)


def _nodes(inventory: Inventory, site: str) -> list[dict[str, Any]]:
    return [node_manifest(box, now=0.0) for box in site_boxes(inventory, SiteId(site))]


OVERRIDES = {
    "none": ("", 1),
    "site only": ("    - sites: [mixed]\n      config: {a: b}\n", 1),
    "one model": ("    - gpuModels: [NVIDIA T4]\n      config: {a: b}\n", 3),
    "two models, one override": ("    - gpuModels: [NVIDIA T4, NVIDIA L4]\n      config: {a: b}\n", 3),
    "model env": ("    - gpuModels: [NVIDIA A10]\n      env: {X: y}\n", 3),
    "model undone by site": (
        "    - gpuModels: [NVIDIA A10]\n      config: {a: b}\n    - sites: [mixed]\n      config: {a: b}\n",
        1,
    ),
}


@pytest.mark.parametrize(("overrides", "daemon_sets"), OVERRIDES.values(), ids=list(OVERRIDES))
def test_a_site_of_several_gpu_models_gets_a_daemon_set_per_model_only_where_pods_differ(
    overrides: str, daemon_sets: int, mixed: Inventory
) -> None:
    text = GOOD.replace('    - gpuModels: [NVIDIA T4]\n      config: {detector.threshold: "0.55"}\n', "")
    text = text.replace("    - sites: [bj-daxing]\n      env: {LOG_LEVEL: debug}\n", overrides)
    text = text.replace("  overrides:\n  strategy", "  strategy")
    release = load_release_text(text, "given.yaml", mixed)
    workloads = _workloads(render(release, SiteId("mixed"), mixed, rollout_id="r1"))
    assert len(workloads) == daemon_sets
    if daemon_sets == 1:
        assert workloads[0]["metadata"]["name"] == "sorting-recognition-mixed"
    else:
        assert {w["metadata"]["name"] for w in workloads} == {
            "sorting-recognition-mixed-nvidia-t4",
            "sorting-recognition-mixed-nvidia-l4",
            "sorting-recognition-mixed-nvidia-a10",
        }
    # Every GPU box of the site is selected by exactly one of them, and no other box; no two select one pod.
    for node in _nodes(mixed, "mixed") + _nodes(mixed, "bj-daxing"):
        labels = node["metadata"]["labels"]
        chosen = [w for w in workloads if _label_matches(w["spec"]["template"]["spec"]["nodeSelector"], labels)]
        mine = node["metadata"]["name"].startswith("mixed-gpu")
        assert len(chosen) == (1 if mine else 0), node["metadata"]["name"]
    for w in workloads:
        others = [o for o in workloads if o is not w]
        pod_labels = w["spec"]["template"]["metadata"]["labels"]
        assert not any(_label_matches(o["spec"]["selector"]["matchLabels"], pod_labels) for o in others)


def test_a_central_site_runs_scan_upload_on_its_cluster_nodes(releases: list[Release], inventory: Inventory) -> None:
    central = next(s for s in inventory.sites.values() if s.kind == "central")
    scan_upload = next(r for r in releases if r.app == "scan-upload")
    recognition = next(r for r in releases if r.app == "sorting-recognition")
    deployment = render(scan_upload, central.id, inventory, rollout_id=None)[1]
    assert deployment["spec"]["replicas"] == len(inventory.site_boxes(central.id))
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"edgefleet.io/box-role": "cluster-node"}
    # The shipped central sites have no GPU box: nothing to run sorting-recognition on.
    assert render(recognition, central.id, inventory, rollout_id=None) == []


CENTRAL_SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-x}
spec:
  kind: central
  displayName: Central X
  region: east
  timezone: Asia/Shanghai
  cluster: central-x
  boxes:
    - {name: central-x-node-01, role: cluster-node}
    - {name: central-x-node-02, role: cluster-node}
    - {name: central-x-gpu-01, role: gpu-box, gpu: {model: NVIDIA L4, count: 1, driverVersion: "550.90.07"}}
"""


def test_a_central_site_with_gpu_boxes_runs_sorting_recognition_on_them(tmp_path: Path) -> None:
    (tmp_path / "central.yaml").write_text(CENTRAL_SITE + "---\n" + cluster_manifest("central-x", "central"))
    (tmp_path / "bj-daxing.yaml").write_text(MIXED_SITE.replace("name: mixed", "name: bj-daxing"))
    write_host_cluster(tmp_path)
    inventory = load_inventory(tmp_path)
    release = load_release_text(GOOD.replace("NVIDIA T4", "NVIDIA L4"), "given.yaml", inventory)
    [config_map, daemon_set] = render(release, SiteId("central-x"), inventory, rollout_id=None)
    assert (config_map["metadata"]["name"], daemon_set["metadata"]["name"]) == ("sorting-recognition-central-x",) * 2
    node_selector = daemon_set["spec"]["template"]["spec"]["nodeSelector"]
    assert node_selector == {"nvidia.com/gpu.present": "true"}
    chosen = [n for n in _nodes(inventory, "central-x") if _label_matches(node_selector, n["metadata"]["labels"])]
    assert [n["metadata"]["name"] for n in chosen] == ["central-x-gpu-01"]
    # Its cluster nodes run scan-upload, the GPU box not.
    scan = GOOD.replace("app: sorting-recognition\n  version: 9.0.0\n  images:\n    sorting-recognition: "
                        "registry.local:5000/edgefleet/sorting-recognition:",
                        "app: scan-upload\n  version: 9.0.0\n  images:\n    scan-upload: "
                        "registry.local:5000/edgefleet/scan-upload:")  # fmt: skip
    scan = scan.replace(scan[scan.index("  model:") : scan.index("  config:")], "")
    scan = scan.replace("gpuModels: [NVIDIA T4]", "gpuModels: [NVIDIA L4]")
    deployment = render(load_release_text(scan, "given.yaml", inventory), SiteId("central-x"), inventory,
                        rollout_id=None)[1]  # fmt: skip
    assert deployment["spec"]["replicas"] == 2


@pytest.fixture
def site_cluster(inventory: Inventory) -> Iterator[BackgroundCluster]:
    boxes: list[ClusterBox] = site_boxes(inventory, SiteId("bj-daxing"))
    running = start_cluster_in_background("bj-daxing", boxes, controllers=True, pod_timing=PodTiming().scaled(0.05))
    yield running
    running.stop()


def _apply(client: httpx.Client, base: str, manifest: dict[str, Any]) -> None:
    kind = manifest["kind"]
    name = manifest["metadata"]["name"]
    path = {
        "Namespace": f"/api/v1/namespaces/{name}",
        "ConfigMap": f"/api/v1/namespaces/{NAMESPACE}/configmaps/{name}",
        "Deployment": f"/apis/apps/v1/namespaces/{NAMESPACE}/deployments/{name}",
        "DaemonSet": f"/apis/apps/v1/namespaces/{NAMESPACE}/daemonsets/{name}",
    }[kind]
    answer = client.patch(
        base + path,
        params={"fieldManager": FIELD_MANAGER, "force": "true", "fieldValidation": "Strict"},
        content=json.dumps(manifest).encode(),
        headers={"content-type": "application/apply-patch+yaml"},
    )
    assert answer.status_code in {200, 201}, answer.text
    assert "warning" not in answer.headers


def test_applied_to_a_simulated_cluster_the_sites_pods_run_the_release(
    site_cluster: BackgroundCluster, releases: list[Release], inventory: Inventory
) -> None:
    # What the simulator leaves running before any rollout: the site's apps at their seeded versions.
    old = [w for w in fleet_workloads(inventory, ClusterId("kubeedge-north"), seed=3)
           if w["metadata"]["labels"]["edgefleet.io/site"] == "bj-daxing"]  # fmt: skip

    def seed(store: Any) -> None:
        store.create(NAMESPACES, namespace_manifest())
        for workload in old:
            store.create(DEPLOYMENTS if workload["kind"] == "Deployment" else DAEMON_SETS, workload, NAMESPACE)

    site_cluster.call(seed)
    news = [r for r in releases if r.version in {"1.14.0", "3.6.0"}]
    expected = {"scan-upload": 3, "sorting-recognition": 0}
    boxes = inventory.site_boxes(SiteId("bj-daxing"))
    expected["sorting-recognition"] = sum(1 for b in boxes if b.role == "gpu-box")
    with httpx.Client(timeout=10) as client:
        for manifest in [namespace()] + [m for r in news for m in render(r, "bj-daxing", inventory, rollout_id="r1")]:
            _apply(client, site_cluster.url, manifest)

        def running(release: Release) -> bool:
            pods = client.get(
                f"{site_cluster.url}/api/v1/namespaces/{NAMESPACE}/pods",
                params={"labelSelector": f"app.kubernetes.io/name={release.app},edgefleet.io/site=bj-daxing"},
            ).json()["items"]
            live = [p for p in pods if not p["metadata"].get("deletionTimestamp")]
            return len(live) == expected[release.app] and all(
                p["status"].get("phase") == "Running"
                and p["spec"]["containers"][0]["image"] == release.images[release.app]
                and p["metadata"]["labels"].get("edgefleet.io/rollout") == "r1"
                for p in live
            )

        for release in news:
            wait_for(lambda r=release: running(r), timeout=60, what=f"{release.name}'s pods to run at bj-daxing")
        deployment = client.get(
            f"{site_cluster.url}/apis/apps/v1/namespaces/{NAMESPACE}/deployments/scan-upload-bj-daxing"
        ).json()
        assert any(e["manager"] == FIELD_MANAGER for e in deployment["metadata"]["managedFields"])


def test_rendering_refuses_an_unknown_site_or_a_rollout_id_that_is_no_label(
    releases: list[Release], inventory: Inventory
) -> None:
    with pytest.raises(ValueError, match="site 'nowhere' is not in the inventory"):
        render(releases[0], SiteId("nowhere"), inventory, rollout_id=None)
    with pytest.raises(ValueError, match="cannot be a label value"):
        render(releases[0], SiteId("bj-daxing"), inventory, rollout_id="no spaces allowed")

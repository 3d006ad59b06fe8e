"""A release as the Kubernetes manifests of one site, ready for server-side apply (field manager ``edgefleet``).

``render(release, site, inventory, rollout_id=...)`` is pure: the same inputs give the same manifests, byte for
byte once serialised. The rollout's reconciler applies them through the gateway, and a rollback applies the
previous release's rendering (never ``rollout undo``), so the recorded state stays true.

What a site gets, in namespace ``edgefleet`` (``namespace()``, applied once per cluster before any site):

- a transfer center: scan-upload as the Deployment ``scan-upload-<site>`` with a replica per edge node, pinned to
  the site's node group and to edge nodes; sorting-recognition as the DaemonSet ``sorting-recognition-<site>``
  on the node group's GPU nodes. When the release's overrides give the site's GPU models different pods, one
  DaemonSet per model instead, ``sorting-recognition-<site>-<model slug>``, each also selecting
  ``nvidia.com/gpu.product`` (the model with dashes for spaces, as the GPU operator labels nodes); its selector
  holds ``edgefleet.io/gpu-model`` too, so the site's DaemonSets never select each other's pods. The caller
  deletes a workload of the app at the site that the rendering no longer lists (the single DaemonSet after a
  split, or the reverse): selectors are immutable, so a split is new objects.
- a central site (its whole cluster; no node group): scan-upload as a Deployment with a replica per cluster node
  of the site, on nodes labelled ``edgefleet.io/box-role: cluster-node``; sorting-recognition as a DaemonSet on
  the cluster's GPU nodes (``nvidia.com/gpu.present``) when the site has GPU boxes.
- nothing for an app with no box to run on at the site (no edge node, no GPU box).
- at a central site, the cluster's platform policy on every workload (computed requests, host-group affinity,
  exclusive-host tolerations, soft anti-affinity) and the release's autoscaler, if any (``policy``).

Each workload has a ConfigMap of its own, named as it, holding the merged config (the release's, then its
GPU-model overrides, then its site overrides, later entries winning), mounted at ``/etc/edgefleet/<app>``; the
pod template carries the config's hash (``edgefleet.io/config-hash``) so that a config change rolls the pods.
The app's container (named as the app) gets the image, the merged env with the model as ``EDGEFLEET_MODEL_*``,
and the merged resources; other containers of ``images`` get their image alone. Every object is labelled
``app.kubernetes.io/{name,version,managed-by}``, ``edgefleet.io/site``, ``edgefleet.io/release`` and, given a
rollout, ``edgefleet.io/rollout``; the selectors hold only ``app.kubernetes.io/name`` and ``edgefleet.io/site``
(plus the GPU model of a split), the labels the simulator's and an earlier release's workloads carry, so a
rollout takes them over. Both workloads tolerate an unreachable or not-ready node without limit
(docs/kubernetes.md): a center that is cut off keeps its pods.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from edgefleet.cloud.rollouts import policy
from edgefleet.ids import SiteId
from edgefleet.inventory import NODE_GROUP_LABEL, Box, Inventory, Site
from edgefleet.policies import ClusterPolicy
from edgefleet.releases import MODEL_ENV, Release

NAMESPACE: Final = "edgefleet"
FIELD_MANAGER: Final = "edgefleet"
NAME_LABEL: Final = "app.kubernetes.io/name"
VERSION_LABEL: Final = "app.kubernetes.io/version"
MANAGED_BY_LABEL: Final = "app.kubernetes.io/managed-by"
SITE_LABEL: Final = "edgefleet.io/site"
RELEASE_LABEL: Final = "edgefleet.io/release"
ROLLOUT_LABEL: Final = "edgefleet.io/rollout"
GPU_MODEL_LABEL: Final = "edgefleet.io/gpu-model"
CONFIG_HASH_ANNOTATION: Final = "edgefleet.io/config-hash"
# Node labels: the box's role (the simulator's and the provisioning's), and NVIDIA's GPU feature discovery.
BOX_ROLE_LABEL: Final = "edgefleet.io/box-role"
GPU_PRESENT_LABEL: Final = "nvidia.com/gpu.present"
GPU_PRODUCT_LABEL: Final = "nvidia.com/gpu.product"
CONFIG_MOUNT: Final = "/etc/edgefleet"
# The apps serve their figures here (the agent reads them; the simulator's pods expose the same port).
METRICS_PORT: Final = 9100
# docs/kubernetes.md: no tolerationSeconds, so a pod stays on a node that lost its link for as long as it lasts.
TOLERATIONS: Final = (
    {"key": "node.kubernetes.io/unreachable", "operator": "Exists", "effect": "NoExecute"},
    {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute"},
)
# Label values are at most 63 characters.
_LABEL_MAX: Final = 63


def namespace() -> dict[str, Any]:
    """The apps' namespace, applied once per cluster before any site's workloads."""
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": NAMESPACE, "labels": {MANAGED_BY_LABEL: "edgefleet"}},
    }


def gpu_model_slug(model: str) -> str:
    """``NVIDIA T4`` -> ``nvidia-t4``: a GPU model as part of a name and a label value."""
    return re.sub(r"[^a-z0-9]+", "-", model.lower()).strip("-")[:_LABEL_MAX].strip("-") or "unknown"


def gpu_product(model: str) -> str:
    """``NVIDIA T4`` -> ``NVIDIA-T4``: the value of ``nvidia.com/gpu.product`` on the model's nodes."""
    return model.replace(" ", "-")


@dataclass(frozen=True, slots=True)
class Effective:
    """What the app's pods get on a set of boxes, overrides applied."""

    config: Mapping[str, str]
    env: Mapping[str, str]
    requests: Mapping[str, str]
    limits: Mapping[str, str]


def effective(release: Release, site: SiteId, gpu_model: str | None) -> Effective:
    """The release's config, env and resources for boxes of ``gpu_model`` (None: no GPU) at ``site``: its
    GPU-model-only overrides first, then those naming sites, each group in file order (later entries win)."""
    config, env = dict(release.config), dict(release.env)
    requests, limits = dict(release.resources.requests), dict(release.resources.limits)
    ordered = [o for o in release.overrides if not o.names_sites] + [o for o in release.overrides if o.names_sites]
    for override in ordered:
        if not override.applies(site, gpu_model):
            continue
        config.update(override.config)
        env.update(override.env)
        if override.resources is not None:
            requests.update(override.resources.requests)
            limits.update(override.resources.limits)
    return Effective(config, env, requests, limits)


def config_hash(config: Mapping[str, str]) -> str:
    """A short, stable hash of a ConfigMap's data: the pod template's annotation."""
    return hashlib.sha256(json.dumps(dict(config), sort_keys=True).encode()).hexdigest()[:16]


def render(release: Release, site: SiteId, inventory: Inventory, *, rollout_id: str | None) -> list[dict[str, Any]]:
    """The manifests of ``release`` at ``site``: each workload's ConfigMap, then the workload. Raises ValueError
    for a site the inventory has not or a rollout id that cannot be a label value."""
    if site not in inventory.sites:
        raise ValueError(f"site {site!r} is not in the inventory")
    if rollout_id is not None and not re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$", rollout_id):
        raise ValueError(f"rollout id {rollout_id!r} cannot be a label value (at most 63 letters, digits, '-_.')")
    place = inventory.sites[site]
    boxes = inventory.site_boxes(site)
    labels = {
        NAME_LABEL: release.app,
        VERSION_LABEL: release.version,
        MANAGED_BY_LABEL: "edgefleet",
        SITE_LABEL: site,
        RELEASE_LABEL: release.name,
        **({ROLLOUT_LABEL: rollout_id} if rollout_id is not None else {}),
    }
    if release.app == "scan-upload":
        out = _scan_upload(release, place, boxes, labels)
    else:
        out = _sorting_recognition(release, place, boxes, labels)
    if place.kind == "central":
        # A central site is its whole cluster: its platform policy shapes what runs there (``policy``).
        cluster = inventory.clusters.get(place.cluster)
        out = policy.central(out, cluster.policy if cluster is not None else ClusterPolicy(), release.autoscaling)
    return out


def _node_selector(place: Site, **extra: str) -> dict[str, str]:
    own = {NODE_GROUP_LABEL: place.node_group} if place.node_group is not None else {}
    return {**own, **extra}


def _scan_upload(release: Release, place: Site, boxes: list[Box], labels: dict[str, str]) -> list[dict[str, Any]]:
    role = "edge-node" if place.kind == "transfer-center" else "cluster-node"
    replicas = sum(1 for box in boxes if box.role == role)
    if not replicas:
        return []
    name = f"{release.app}-{place.id}"
    selector: dict[str, str] = {NAME_LABEL: release.app, SITE_LABEL: place.id}
    values = effective(release, place.id, None)
    template = _pod_template(release, name, labels, values, _node_selector(place, **{BOX_ROLE_LABEL: role}))
    template["spec"]["affinity"] = one_per_node(selector)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": selector},
            # One copy per node (the anti-affinity below), so an update replaces one pod at a time in place: a surge
            # copy would have no node to go to.
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 1}},
            "template": template,
        },
    }
    return [_config_map(name, labels, values), deployment]


def one_per_node(selector: dict[str, str]) -> dict[str, Any]:
    """Required pod anti-affinity by host: every edge node of the site uploads its own scans, so each runs exactly
    one scan-upload (without it a scheduler may stack two copies on one node and leave another without any)."""
    return {
        "podAntiAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": [
                {"labelSelector": {"matchLabels": dict(selector)}, "topologyKey": "kubernetes.io/hostname"}
            ]
        }
    }


def _sorting_recognition(
    release: Release, place: Site, boxes: list[Box], labels: dict[str, str]
) -> list[dict[str, Any]]:
    models = sorted({box.gpu.model for box in boxes if box.role == "gpu-box" and box.gpu is not None})
    if not models:
        return []
    per_model = {model: effective(release, place.id, model) for model in models}
    base = f"{release.app}-{place.id}"
    selector: dict[str, str] = {NAME_LABEL: release.app, SITE_LABEL: place.id}
    if len({_pods_key(values) for values in per_model.values()}) == 1:
        values = per_model[models[0]]
        node_selector = _node_selector(place, **{GPU_PRESENT_LABEL: "true"})
        return [_config_map(base, labels, values), _daemon_set(release, base, labels, selector, values, node_selector)]
    out = []
    for model, values in per_model.items():
        slug = gpu_model_slug(model)
        name = f"{base}-{slug}"
        own_labels = {**labels, GPU_MODEL_LABEL: slug}
        node_selector = _node_selector(place, **{GPU_PRESENT_LABEL: "true", GPU_PRODUCT_LABEL: gpu_product(model)})
        out.append(_config_map(name, own_labels, values))
        out.append(_daemon_set(release, name, own_labels, {**selector, GPU_MODEL_LABEL: slug}, values, node_selector))
    return out


def _pods_key(values: Effective) -> str:
    return json.dumps(
        [values.config, values.env, values.requests, values.limits], sort_keys=True, separators=(",", ":")
    )


def _daemon_set(
    release: Release,
    name: str,
    labels: dict[str, str],
    selector: dict[str, str],
    values: Effective,
    node_selector: dict[str, str],
) -> dict[str, Any]:
    return {
        "apiVersion": "apps/v1",
        "kind": "DaemonSet",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
        "spec": {
            "selector": {"matchLabels": selector},
            # A GPU box holds one copy: replace one box's pod at a time.
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1}},
            "template": _pod_template(release, name, labels, values, node_selector),
        },
    }


def _config_map(name: str, labels: dict[str, str], values: Effective) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": NAMESPACE, "labels": dict(labels)},
        "data": dict(sorted(values.config.items())),
    }


def _pod_template(
    release: Release, config_name: str, labels: dict[str, str], values: Effective, node_selector: dict[str, str]
) -> dict[str, Any]:
    env = [{"name": k, "value": v} for k, v in sorted(values.env.items())]
    if release.model is not None:
        model = release.model
        shown = {"name": model.name, "version": model.version, "sha256": model.sha256, "url": model.url}
        env += [{"name": MODEL_ENV[part], "value": shown[part]} for part in ("name", "version", "sha256", "url")]
    app: dict[str, Any] = {
        "name": release.app,
        "image": release.images[release.app],
        "env": env,
        "resources": {
            **({"requests": dict(sorted(values.requests.items()))} if values.requests else {}),
            **({"limits": dict(sorted(values.limits.items()))} if values.limits else {}),
        },
        "ports": [{"name": "metrics", "containerPort": METRICS_PORT, "protocol": "TCP"}],
        "volumeMounts": [{"name": "config", "mountPath": f"{CONFIG_MOUNT}/{release.app}", "readOnly": True}],
    }
    others = [{"name": c, "image": image} for c, image in sorted(release.images.items()) if c != release.app]
    return {
        "metadata": {"labels": dict(labels), "annotations": {CONFIG_HASH_ANNOTATION: config_hash(values.config)}},
        "spec": {
            "nodeSelector": node_selector,
            "tolerations": [dict(t) for t in TOLERATIONS],
            "containers": [app, *others],
            "volumes": [{"name": "config", "configMap": {"name": config_name}}],
        },
    }

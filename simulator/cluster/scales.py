"""The ``scale`` subresource of deployments and replicasets: the object seen as an ``autoscaling/v1`` Scale
(``scale_of``) and a Scale written back as the object's ``spec.replicas`` (``scaled``), as the API server's
registries do. Called by ``server`` for GET, PUT and PATCH on ``.../deployments/<name>/scale``. Pure.
"""

from __future__ import annotations

import copy
from typing import Any, Final

from simulator.cluster.store import BadRequest, Invalid

API_VERSION: Final = "autoscaling/v1"
KIND: Final = "Scale"
# The API server defaults a Deployment's or ReplicaSet's spec.replicas to 1; this server does not default, so a
# Scale of an object without one reads 1, as it would there.
DEFAULT_REPLICAS: Final = 1
_COPIED_METADATA: Final = ("name", "namespace", "uid", "resourceVersion", "creationTimestamp")


def scale_of(obj: dict[str, Any]) -> dict[str, Any]:
    """``obj`` (a Deployment or ReplicaSet) as an ``autoscaling/v1`` Scale."""
    metadata = obj["metadata"]
    spec = obj.get("spec") or {}
    status = obj.get("status") or {}
    scale_status: dict[str, Any] = {"replicas": int(status.get("replicas", 0))}
    selector = _selector_string(spec.get("selector") or {})
    if selector:
        scale_status["selector"] = selector
    return {
        "kind": KIND,
        "apiVersion": API_VERSION,
        "metadata": {k: metadata[k] for k in _COPIED_METADATA if k in metadata},
        "spec": {"replicas": int(spec.get("replicas", DEFAULT_REPLICAS))},
        "status": scale_status,
    }


def scaled(obj: dict[str, Any], scale: Any) -> dict[str, Any]:
    """``obj`` with the replicas ``scale`` asks for, carrying the Scale's resourceVersion (if any) so that a stale
    one is refused with 409 by the store's update. Raises 400/422 for a body that is no valid Scale."""
    if not isinstance(scale, dict):
        raise BadRequest("the body of the request must be a Scale object")
    if scale.get("kind", KIND) != KIND or scale.get("apiVersion", API_VERSION) != API_VERSION:
        raise BadRequest(
            f"the body of the request must be an {API_VERSION} {KIND}, not {scale.get('apiVersion')}"
            f" {scale.get('kind')}"
        )
    metadata = scale.get("metadata") or {}
    name = obj["metadata"]["name"]
    if not isinstance(metadata, dict) or metadata.get("name", name) != name:
        raise BadRequest(
            f"the name of the object ({metadata.get('name') if isinstance(metadata, dict) else None}) does not"
            f" match the name on the URL ({name})"
        )
    spec = scale.get("spec") or {}
    replicas = spec.get("replicas", 0) if isinstance(spec, dict) else None
    if isinstance(replicas, bool) or not isinstance(replicas, int) or replicas < 0:
        raise Invalid(
            f'{KIND}.autoscaling "{name}" is invalid: spec.replicas: Invalid value: {_shown(replicas)}: must be'
            " greater than or equal to 0",
            name=name,
            kind=KIND,
        )
    new = copy.deepcopy(obj)
    new.setdefault("spec", {})["replicas"] = replicas
    if metadata.get("resourceVersion"):
        new["metadata"]["resourceVersion"] = str(metadata["resourceVersion"])
    else:
        new["metadata"].pop("resourceVersion", None)
    return new


def _shown(value: Any) -> str:
    return "null" if value is None else str(value)


def _selector_string(selector: dict[str, Any]) -> str:
    """A LabelSelector as the string form a Scale's ``status.selector`` carries (``metav1.FormatLabelSelector``)."""
    parts = [f"{k}={v}" for k, v in sorted((selector.get("matchLabels") or {}).items())]
    for expression in selector.get("matchExpressions") or []:
        key, operator = expression.get("key", ""), expression.get("operator", "")
        values = ",".join(sorted(expression.get("values") or []))
        if operator == "In":
            parts.append(f"{key} in ({values})")
        elif operator == "NotIn":
            parts.append(f"{key} notin ({values})")
        elif operator == "Exists":
            parts.append(key)
        elif operator == "DoesNotExist":
            parts.append(f"!{key}")
    return ",".join(parts)

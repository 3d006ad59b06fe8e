"""What the workload controllers share about Kubernetes objects: label selectors as objects carry them
(``matchLabels``/``matchExpressions``), node affinity and node selectors, taints against tolerations, owner
references, resource quantities, pod conditions and the template hashes behind ``pod-template-hash`` and
``controller-revision-hash``. Pure; called by ``scheduling``, ``pods``, ``replicasets``, ``deployments``,
``daemonsets`` and ``eviction``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, Final

from simulator.cluster.nodes import parse_time
from simulator.cluster.selectors import LabelSelector, Operator, Requirement

Obj = dict[str, Any]

# apimachinery's rand.SafeEncodeString alphabet: no vowels, no look-alikes, so a hash never spells a word.
_SAFE_ALPHABET: Final = "bcdfghjklmnpqrstvwxz2456789"
# The length of a pod-template-hash: Kubernetes' FNV-32a, written in that alphabet, is up to 10 characters.
HASH_LENGTH: Final = 10
_SUFFIXES: Final[dict[str, Decimal]] = {
    k: Decimal(str(v))
    for k, v in {
        "Ki": 2**10,
        "Mi": 2**20,
        "Gi": 2**30,
        "Ti": 2**40,
        "Pi": 2**50,
        "Ei": 2**60,
        "n": Decimal("1e-9"),
        "u": Decimal("1e-6"),
        "m": Decimal("1e-3"),
        "": 1,
        "k": 10**3,
        "M": 10**6,
        "G": 10**9,
        "T": 10**12,
        "P": 10**15,
        "E": 10**18,
    }.items()
}
_QUANTITY: Final = re.compile(r"^([+-]?[0-9.]+(?:[eE][+-]?[0-9]+)?)(Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E|)$")


class QuantityError(ValueError):
    """A resource quantity that is not one (``2x``)."""


def parse_quantity(value: object) -> Decimal:
    """A resource quantity (``100m``, ``1.5``, ``128Mi``, ``1e3``, ``2``) as a number of base units."""
    match = _QUANTITY.match(str(value).strip())
    if match is None:
        raise QuantityError(
            f"quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$': {value!r}"
        )
    try:
        return Decimal(match.group(1)) * _SUFFIXES[match.group(2)]
    except InvalidOperation:
        raise QuantityError(f"{value!r} is not a quantity") from None


def safe_hash(value: object, *, length: int = HASH_LENGTH) -> str:
    """A stable short hash of a JSON-like value in Kubernetes' safe alphabet. Kubernetes hashes the template's Go
    struct with FNV-32a; this hashes its canonical JSON with SHA-256, so the value differs from a real cluster's
    but is as stable: the same template always gives the same hash."""
    digest = hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).digest()
    return "".join(_SAFE_ALPHABET[b % len(_SAFE_ALPHABET)] for b in digest[:length])


def _without_nulls(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_without_nulls(v) for v in value]
    return value


def template_hash(template: Obj, *, label: str = "pod-template-hash") -> str:
    """The hash of a pod template, ignoring its own hash label and null fields (so a template copied back from a
    ReplicaSet by ``kubectl rollout undo``, which writes ``creationTimestamp: null``, hashes as it did)."""
    bare = _without_nulls(template)
    labels = (bare.get("metadata") or {}).get("labels")
    if isinstance(labels, dict):
        labels.pop(label, None)
        if not labels:
            bare["metadata"].pop("labels")
    if "metadata" in bare and not bare["metadata"]:
        bare.pop("metadata")
    return safe_hash(bare)


# --- selectors ------------------------------------------------------------------------------------------------

_OPERATORS: Final[dict[str, Operator]] = {
    "In": "in",
    "NotIn": "notin",
    "Exists": "exists",
    "DoesNotExist": "!",
    "Gt": "gt",
    "Lt": "lt",
}


def label_selector(selector: Mapping[str, Any] | None) -> LabelSelector:
    """A ``metav1.LabelSelector`` (``matchLabels`` and ``matchExpressions``) as a selector. An empty one matches
    everything, as the API says; a controller refuses an empty selector before it gets here."""
    requirements = [
        Requirement(k, "in", frozenset({str(v)})) for k, v in ((selector or {}).get("matchLabels") or {}).items()
    ]
    for expression in (selector or {}).get("matchExpressions") or []:
        requirements.append(_requirement(expression))
    return LabelSelector(tuple(requirements))


def _requirement(expression: Mapping[str, Any]) -> Requirement:
    operator = _OPERATORS.get(str(expression.get("operator")))
    if operator is None:
        # An operator the API would have refused: match nothing rather than everything.
        return Requirement(str(expression.get("key", "")), "in", frozenset())
    return Requirement(
        str(expression.get("key", "")), operator, frozenset(str(v) for v in expression.get("values") or [])
    )


def node_matches(pod_spec: Mapping[str, Any], node: Obj) -> bool:
    """The pod's ``nodeSelector`` and required node affinity (any term; ``matchExpressions`` on labels and
    ``matchFields`` on ``metadata.name``) both hold for the node: the scheduler's NodeAffinity filter."""
    labels = node["metadata"].get("labels") or {}
    for key, value in (pod_spec.get("nodeSelector") or {}).items():
        if labels.get(key) != value:
            return False
    required = (
        ((pod_spec.get("affinity") or {}).get("nodeAffinity") or {}).get(
            "requiredDuringSchedulingIgnoredDuringExecution"
        )
    ) or {}
    terms = required.get("nodeSelectorTerms")
    if not terms:
        return True
    name_fields = {"metadata.name": node["metadata"]["name"]}
    for term in terms:
        expressions = term.get("matchExpressions") or []
        fields = term.get("matchFields") or []
        if not expressions and not fields:
            continue  # an empty term matches no node
        if all(_requirement(e).matches(labels) for e in expressions) and all(
            _requirement(f).matches(name_fields) for f in fields
        ):
            return True
    return False


# --- taints and tolerations -------------------------------------------------------------------------------------


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """core/v1 Toleration.ToleratesTaint: same effect (or none), same key (or none with Exists), Equal values."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    if key and key != taint.get("key"):
        return False
    operator = toleration.get("operator") or "Equal"
    if operator == "Exists":
        return True
    return operator == "Equal" and (toleration.get("value") or "") == (taint.get("value") or "")


def untolerated(
    taints: Iterable[Mapping[str, Any]], tolerations: Sequence[Mapping[str, Any]], effects: tuple[str, ...]
) -> list[Mapping[str, Any]]:
    """The taints with one of ``effects`` that no toleration tolerates."""
    return [t for t in taints if t.get("effect") in effects and not any(tolerates(x, t) for x in tolerations)]


def node_taints(node: Obj) -> list[Obj]:
    return list((node.get("spec") or {}).get("taints") or [])


def node_ready(node: Obj) -> str:
    """The node's Ready condition's status (``True``, ``False``, ``Unknown``; ``Unknown`` when it has none)."""
    for condition in (node.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return str(condition.get("status"))
    return "Unknown"


# --- owners and pods --------------------------------------------------------------------------------------------


def controller_of(obj: Obj) -> Obj | None:
    """The owner reference with ``controller: true``, if any."""
    for ref in obj["metadata"].get("ownerReferences") or []:
        if ref.get("controller"):
            return dict(ref)
    return None


def owner_reference(owner: Obj) -> Obj:
    """An owner reference to ``owner`` as its controller sets it."""
    return {
        "apiVersion": owner["apiVersion"],
        "kind": owner["kind"],
        "name": owner["metadata"]["name"],
        "uid": owner["metadata"]["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def condition(obj: Obj, kind: str) -> Obj | None:
    for found in (obj.get("status") or {}).get("conditions") or []:
        if found.get("type") == kind:
            return dict(found)
    return None


def pod_ready_since(pod: Obj) -> float | None:
    """When the pod last became Ready, or None if it is not Ready."""
    ready = condition(pod, "Ready")
    if ready is None or ready.get("status") != "True":
        return None
    return parse_time(str(ready.get("lastTransitionTime", ""))) or 0.0


def pod_available(pod: Obj, *, min_ready_s: float, now: float) -> bool:
    """podutil.IsPodAvailable: Ready for at least ``minReadySeconds``."""
    since = pod_ready_since(pod)
    return since is not None and (min_ready_s <= 0 or since + min_ready_s <= now)


def pod_active(pod: Obj) -> bool:
    """controller.IsPodActive: not Succeeded, not Failed, not being deleted."""
    phase = (pod.get("status") or {}).get("phase")
    return phase not in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp")


def scale_value(value: object, total: int, *, round_up: bool) -> int:
    """An IntOrString (``2`` or ``"25%"``) against ``total``: intstr.GetScaledValueFromIntOrPercent. A bad
    value counts as 0, as the API would have refused it."""
    if isinstance(value, bool):
        return 0
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if text.endswith("%"):
        try:
            percent = int(text[:-1])
        except ValueError:
            return 0
        scaled = percent * total
        return -(-scaled // 100) if round_up else scaled // 100
    try:
        return int(text)
    except ValueError:
        return 0

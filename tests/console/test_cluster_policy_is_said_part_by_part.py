"""A central cluster's policy is said by the console part by part (``views.policy_parts``): each part a sentence of
the string catalogues and the manifest's own names, numbers and windows to fill it, so the cluster's page says
the policy in Chinese as well as in English. Table-driven; and every sentence a policy can need is in both
catalogues (the keys are built, so no reading of the JavaScript finds them)."""

from __future__ import annotations

import re
from fractions import Fraction

import pytest

from edgefleet.cloud.console.assets import static_dir
from edgefleet.cloud.console.views import PolicyPart, policy_parts
from edgefleet.policies import ClusterPolicy, EventRule, ExclusiveHosts, NamespacePolicy, Ratios, Window

NIGHT = Window(start=0, end=6 * 60)
RULE = EventRule(action="include", level="Warning", kinds=(), namespaces=(), reasons=())


def part(key: str, **values: str) -> PolicyPart:
    return PolicyPart(key, values)


CASES = [
    ("none", ClusterPolicy(), []),
    (
        "the production platform",
        ClusterPolicy(
            ratios=Ratios(cpu=Fraction(10), memory=Fraction(3, 2)),
            host_groups={"bigdata": {"pool": "bigdata"}, "gpu": {"nvidia.com/gpu.present": "true", "pool": "a"}},
            host_group="gpu",
            exclusive=(ExclusiveHosts("bigdata", NIGHT, ("bigdata",), ()),),
            anti_affinity={"recognition": ("sorting-recognition", "ocr")},
            events=(RULE, RULE),
        ),
        [
            part("overcommit", cpu="10", memory="1.5"),
            part("host_group", name="bigdata", labels="pool=bigdata"),
            part("host_group", name="gpu", labels="nvidia.com/gpu.present=true, pool=a"),
            part("workloads_on", group="gpu"),
            part("exclusive_namespaces", group="bigdata", namespaces="bigdata", apps="", window="00:00-06:00"),
            part("anti_affinity", name="recognition", apps="sorting-recognition, ocr"),
            part("events", n="2"),
        ],
    ),
    ("cpu only", ClusterPolicy(ratios=Ratios(cpu=Fraction(4))), [part("overcommit_cpu", cpu="4")]),
    ("memory only", ClusterPolicy(ratios=Ratios(memory=Fraction(5, 4))), [part("overcommit_memory", memory="1.25")]),
    (
        "exclusive hosts always, for apps, and for both",
        ClusterPolicy(
            exclusive=(
                ExclusiveHosts("train", None, (), ("trainer",)),
                ExclusiveHosts("train", Window(start=22 * 60, end=2 * 60), ("ml",), ("trainer",)),
                ExclusiveHosts("batch", None, ("batch",), ()),
            )
        ),
        [
            part("exclusive_always_apps", group="train", namespaces="", apps="trainer"),
            part("exclusive_both", group="train", namespaces="ml", apps="trainer", window="22:00-02:00"),
            part("exclusive_always_namespaces", group="batch", namespaces="batch", apps=""),
        ],
    ),
    (
        "exclusive hosts in a window for apps, and always for both",
        ClusterPolicy(
            exclusive=(
                ExclusiveHosts("train", NIGHT, (), ("trainer", "tuner")),
                ExclusiveHosts("batch", None, ("batch",), ("spark",)),
            )
        ),
        [
            part("exclusive_apps", group="train", namespaces="", apps="trainer, tuner", window="00:00-06:00"),
            part("exclusive_always_both", group="batch", namespaces="batch", apps="spark"),
        ],
    ),
    (
        "namespaces: their own ratios and host group, left out of the audit, or as the cluster",
        ClusterPolicy(
            namespaces={
                "web": NamespacePolicy(Ratios(cpu=Fraction(2)), "edge", audit=True),
                "legacy": NamespacePolicy(None, None, audit=False),
                "plain": NamespacePolicy(None, None, audit=True),
                "db": NamespacePolicy(Ratios(cpu=Fraction(1), memory=Fraction(1)), None, audit=False),
            }
        ),
        [
            part("namespace_overcommit_cpu", namespace="db", cpu="1", memory="1"),
            part("namespace_overcommit_memory", namespace="db", cpu="1", memory="1"),
            part("namespace_not_audited", namespace="db", cpu="1", memory="1"),
            part("namespace_not_audited", namespace="legacy"),
            part("namespace_as_cluster", namespace="plain"),
            part("namespace_overcommit_cpu", namespace="web", cpu="2", group="edge"),
            part("namespace_group", namespace="web", cpu="2", group="edge"),
        ],
    ),
]


@pytest.mark.parametrize(("policy", "expected"), [(p, e) for _, p, e in CASES], ids=[name for name, _, _ in CASES])
def test_a_policy_is_said_part_by_part(policy: ClusterPolicy, expected: list[PolicyPart]) -> None:
    assert list(policy_parts(policy)) == expected


def catalogue(name: str) -> dict[str, str]:
    text = (static_dir() / "strings" / name).read_text(encoding="utf-8")
    return dict(re.findall(r'^\s*"([\w.-]+)":\s*"(.*)",?\s*$', text, re.MULTILINE))


@pytest.mark.parametrize("language", ["en.js", "zh-CN.js"])
def test_every_sentence_a_policy_needs_is_in_the_catalogue_with_its_values(language: str) -> None:
    strings = catalogue(language)
    said = {p.key: set(p.values) for _, policy, _ in CASES for p in policy_parts(policy)}
    in_catalogue = {key.removeprefix("policy."): text for key, text in strings.items() if key.startswith("policy.")}
    assert set(said) == set(in_catalogue)  # every sentence a policy needs, and none it never does
    for key, values in said.items():
        # Each placeholder of the sentence is filled by the part (an empty list may be left unsaid).
        assert set(re.findall(r"\{(\w+)\}", in_catalogue[key])) <= values, key

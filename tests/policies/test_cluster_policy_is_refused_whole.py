"""A central cluster's policy (``spec.policy``) is read into the inventory, and a bad one is refused whole: each
mistake is planted in a good cluster file and reported with its file, line, field and reason - and only that one.
The ratio rules, host groups, windows and event rules also hold as pure functions."""

from __future__ import annotations

import datetime as dt
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.errors import InventoryError
from edgefleet.ids import ClusterId
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.policies import Window, parse_window, windows_overlap

SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata:
  name: central-sh
spec:
  kind: central
  displayName: Central SH
  region: east
  timezone: Asia/Shanghai
  cluster: central-sh
  boxes:
    - name: central-sh-01
      role: cluster-node
"""

HEAD = """\
apiVersion: edgefleet.io/v1
kind: Cluster
metadata:
  name: central-sh
spec:
  role: central
  context: prod-central-sh
  region: east
"""
# Line numbers in the cluster file: HEAD is lines 1-8; the policy starts at line 9 with ``timezone``.
GOOD_POLICY = """\
  timezone: Asia/Shanghai
  policy:
    overcommit: {cpu: 10, memory: 1.5}
    hostGroups:
      general: {matchLabels: {edgefleet.io/host-group: general}}
      bigdata: {matchLabels: {edgefleet.io/host-group: bigdata}}
    hostGroup: general
    exclusiveHosts:
      - {hostGroup: bigdata, window: "00:00-06:00", namespaces: [bigdata]}
      - {hostGroup: bigdata, window: "22:00-23:00", apps: [spark]}
    antiAffinity:
      - {name: gpu-heavy, apps: [sorting-recognition, video-transcode]}
    events:
      - {action: include, level: Warning}
      - {action: exclude, reasons: [BackOff]}
    namespaces:
      kube-system: {audit: false}
      bigdata: {overcommit: {cpu: 4}, hostGroup: bigdata}
"""


def load(tmp_path: Path, policy: str, *, head: str = HEAD) -> Inventory:
    (tmp_path / "central-sh.yaml").write_text(SITE)
    (tmp_path / "cluster.yaml").write_text(head + policy)
    return load_inventory(tmp_path)


def test_the_good_policy_is_read_with_its_namespace_overrides(tmp_path: Path) -> None:
    inventory = load(tmp_path, GOOD_POLICY)
    cluster = inventory.clusters[ClusterId("central-sh")]
    policy = cluster.policy
    assert cluster.timezone == "Asia/Shanghai"
    assert (policy.ratios.cpu, policy.ratios.memory) == (Fraction(10), Fraction(3, 2))
    # The namespace's own CPU ratio, the cluster's memory ratio.
    assert (policy.ratios_in("bigdata").cpu, policy.ratios_in("bigdata").memory) == (Fraction(4), Fraction(3, 2))
    assert policy.ratios_in("shop") == policy.ratios
    assert (policy.host_group_in("bigdata"), policy.host_group_in("shop")) == ("bigdata", "general")
    assert policy.host_groups["bigdata"] == {"edgefleet.io/host-group": "bigdata"}
    assert [str(e.window) for e in policy.exclusive] == ["00:00-06:00", "22:00-23:00"]
    assert [e.host_group for e in policy.exclusive_for("bigdata", "web")] == ["bigdata"]
    assert policy.exclusive_for("shop", "web") == []
    assert policy.avoided_by("video-transcode") == ["sorting-recognition"]
    assert (policy.audited("kube-system"), policy.audited("shop")) == (False, True)
    assert policy.forwards("Warning", "Pod", "shop", "Failed")
    assert not policy.forwards("Warning", "Pod", "shop", "BackOff")  # excluded
    assert not policy.forwards("Normal", "Pod", "shop", "Pulled")  # not included


def test_a_cluster_without_policy_has_none(tmp_path: Path) -> None:
    policy = load(tmp_path, "").clusters[ClusterId("central-sh")].policy
    assert (policy.ratios.cpu, policy.host_groups, policy.exclusive) == (None, {}, ())


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        pytest.param(
            "cpu: 10,",
            "cpu: 0,",
            "cluster.yaml:11: spec.policy.overcommit.cpu: 0.0 is no overcommit ratio: a ratio "
            "of 0 would divide by zero; give 1 (requests = limits) or more",
            id="ratio-zero",
        ),
        pytest.param(
            "memory: 1.5",
            "memory: 0.5",
            "cluster.yaml:11: spec.policy.overcommit.memory: 0.5 is no overcommit "
            "ratio: a ratio below 1 would request above limits",
            id="ratio-below-one",
        ),
        pytest.param(
            "{cpu: 4}",
            "{cpu: 0.9}",
            "cluster.yaml:26: spec.policy.namespaces.bigdata.overcommit.cpu: 0.9 is no overcommit ratio",
            id="namespace-ratio-below-one",
        ),
        pytest.param(
            "hostGroup: general",
            "hostGroup: genral",
            "cluster.yaml:15: spec.policy.hostGroup: names host group "
            "'genral', which hostGroups has not (it has: bigdata, general)",
            id="unknown-host-group",
        ),
        pytest.param(
            '{hostGroup: bigdata, window: "00',
            '{hostGroup: big, window: "00',
            "cluster.yaml:17: "
            "spec.policy.exclusiveHosts[0].hostGroup: names host group 'big', which hostGroups has not",
            id="unknown-exclusive-host-group",
        ),
        pytest.param(
            "hostGroup: bigdata}",
            "hostGroup: gpu}",
            "cluster.yaml:26: spec.policy.namespaces.bigdata.hostGroup: names host group 'gpu'",
            id="unknown-namespace-host-group",
        ),
        pytest.param(
            "22:00-23:00",
            "05:00-07:00",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].window: host group "
            "'bigdata' is exclusive 05:00-07:00 here and 00:00-06:00 in exclusiveHosts[0]: the windows overlap",
            id="overlapping-windows",
        ),
        pytest.param(
            "22:00-23:00",
            "23:30-00:30",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].window: host group "
            "'bigdata' is exclusive 23:30-00:30 here and 00:00-06:00",
            id="overlapping-across-midnight",
        ),
        pytest.param(
            'window: "22:00-23:00", ',
            "",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].hostGroup: host group "
            "'bigdata' is exclusive always here and 00:00-06:00 in exclusiveHosts[0]",
            id="always-overlaps",
        ),
        pytest.param(
            "22:00-23:00",
            "10pm-11pm",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].window: '10pm-11pm' is no "
            "window: use HH:MM-HH:MM in the cluster's local time",
            id="bad-window-syntax",
        ),
        pytest.param(
            "22:00-23:00",
            "22:00-22:00",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].window: '22:00-22:00' starts where it ends",
            id="empty-window",
        ),
        pytest.param(
            "22:00-23:00",
            "22:00-25:00",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1].window: '22:00-25:00' ends at no time of day",
            id="window-past-midnight-hour",
        ),
        pytest.param(
            "  timezone: Asia/Shanghai\n",
            "",
            "cluster.yaml:16: spec.policy.exclusiveHosts[0].window: a window is "
            "in the cluster's local time: set spec.timezone",
            id="window-without-time-zone",
        ),
        pytest.param(
            "Asia/Shanghai",
            "Asia/Shanghia",
            "cluster.yaml:9: spec.timezone: 'Asia/Shanghia' is no IANA time zone",
            id="bad-time-zone",
        ),
        pytest.param(
            ", apps: [spark]}",
            "}",
            "cluster.yaml:18: spec.policy.exclusiveHosts[1]: exclusive hosts are kept for "
            "someone: give namespaces and/or apps",
            id="exclusive-for-nobody",
        ),
        pytest.param(
            "video-transcode]",
            "sorting-recognition]",
            "cluster.yaml:20: spec.policy.antiAffinity[0].apps: an "
            "anti-affinity group names at least two different apps",
            id="anti-affinity-of-one-app",
        ),
        pytest.param(
            "{action: include, level: Warning}",
            "{action: forward, level: Warning}",
            "cluster.yaml:22: spec.policy.events[0].action: Invalid enum value 'forward'",
            id="bad-event-action",
        ),
        pytest.param(
            "{action: include, level: Warning}",
            "{action: include}",
            "cluster.yaml:22: spec.policy.events[0]: a rule matches by level, kinds, namespaces and/or reasons",
            id="event-rule-matching-all",
        ),
        pytest.param(
            "kube-system: {audit: false}",
            "Kube_System: {audit: false}",
            "cluster.yaml:25: spec.policy.namespaces.Kube_System: 'Kube_System' is no namespace name",
            id="bad-namespace",
        ),
        pytest.param(
            "hostGroup: general\n",
            "hostGroup: general\n    overcomit: {cpu: 2}\n",
            "cluster.yaml:16: spec.policy.overcomit: Object contains unknown field `overcomit`",
            id="unknown-field",
        ),
    ],
)
def test_a_bad_policy_is_refused_with_file_line_field_and_reason(
    tmp_path: Path, old: str, new: str, expected: str
) -> None:
    assert old in GOOD_POLICY
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, GOOD_POLICY.replace(old, new, 1))
    found = [str(p).removeprefix(str(tmp_path) + "/") for p in caught.value.problems]
    assert len(found) == 1, found
    assert found[0].startswith(expected), found[0]


def test_a_policy_on_a_kubeedge_host_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError) as caught:
        load(tmp_path, GOOD_POLICY, head=HEAD.replace("role: central", "role: kubeedge-host"))
    assert any("a platform policy applies to a central cluster" in str(p) for p in caught.value.problems)


windows = st.builds(Window, st.integers(0, 1439), st.integers(0, 1439)).filter(lambda w: w.start != w.end)


@given(windows)
def test_a_window_reads_back_what_it_writes(window: Window) -> None:
    assert parse_window(str(window)) == window


@given(windows, windows)
def test_windows_overlap_exactly_when_some_minute_is_in_both(a: Window, b: Window) -> None:
    day = dt.datetime(2026, 12, 2)
    shared = any(a.covers(t) and b.covers(t) for t in (day + dt.timedelta(minutes=m) for m in range(0, 1440)))
    assert windows_overlap(a, b) == shared

"""Every site names a declared cluster of the role its kind needs, and no node is claimed twice: each violation is
planted in a good inventory and refused with its file, line, field and reason - and only that one problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.errors import InventoryError
from edgefleet.inventory import NODE_GROUP_LABEL, load_inventory

CLUSTERS = """\
apiVersion: edgefleet.io/v1
kind: Cluster
metadata:
  name: kubeedge-east
spec:
  role: kubeedge-host
  context: prod-kubeedge-east
  region: east
---
apiVersion: edgefleet.io/v1
kind: Cluster
metadata:
  name: central-sh
spec:
  role: central
  context: prod-central-sh
  region: east
"""

HOST_DOC, CENTRAL_DOC = CLUSTERS.split("---\n")


def site(name: str, *, kind: str = "transfer-center", cluster: str = "kubeedge-east", extra: str = "") -> str:
    role = "cluster-node" if kind == "central" else "edge-node"
    return (
        "apiVersion: edgefleet.io/v1\n"  # line 1
        "kind: Site\n"
        f"metadata:\n  name: {name}\n"  # name: line 4
        "spec:\n"
        f"  kind: {kind}\n"
        f"  displayName: {name}\n"
        "  region: east\n"
        "  timezone: Asia/Shanghai\n"
        f"  cluster: {cluster}\n"  # line 10
        f"{extra}"  # a line 11 when given
        "  boxes:\n"
        f"    - name: {name}-01\n"
        f"      role: {role}\n"
    )


GOOD = {
    "clusters.yaml": CLUSTERS,
    "sh-a.yaml": site("sh-a"),
    "sh-b.yaml": site("sh-b", extra="  nodeGroup: group-b\n"),
    "central-sh.yaml": site("central-sh", kind="central", cluster="central-sh"),
}


def write(directory: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (directory / name).write_text(text)
    return directory


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(directory)
    return [str(p) for p in caught.value.problems]


def test_the_good_inventory_places_every_site_on_its_cluster(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, GOOD))

    assert set(inventory.clusters) == {"kubeedge-east", "central-sh"}
    east = inventory.clusters["kubeedge-east"]  # type: ignore[index]
    assert (east.role, east.context, east.region, east.source) == (
        "kubeedge-host",
        "prod-kubeedge-east",
        "east",
        str(tmp_path / "clusters.yaml"),
    )
    a, b, central = (inventory.sites[s] for s in ("sh-a", "sh-b", "central-sh"))  # type: ignore[index]
    assert (a.cluster, a.node_group, a.node_selector) == ("kubeedge-east", "sh-a", f"{NODE_GROUP_LABEL}=sh-a")
    assert (b.node_group, b.node_selector) == ("group-b", "apps.kubeedge.io/belonging-to=group-b")
    assert (central.cluster, central.node_group, central.node_selector) == ("central-sh", None, None)
    assert [s.id for s in inventory.cluster_sites(east.id)] == ["sh-a", "sh-b"]
    assert inventory.boxes["sh-a-01"].node_name == "sh-a-01"  # type: ignore[index]


def test_a_box_may_name_its_node(tmp_path: Path) -> None:
    files = dict(GOOD, **{"sh-a.yaml": site("sh-a") + "      nodeName: edge-7.sh-a.example\n"})
    inventory = load_inventory(write(tmp_path, files))
    assert inventory.boxes["sh-a-01"].node_name == "edge-7.sh-a.example"  # type: ignore[index]


def test_cluster_files_count_in_the_inventory_version(tmp_path: Path) -> None:
    before = load_inventory(write(tmp_path, GOOD)).version
    (tmp_path / "clusters.yaml").write_text(CLUSTERS.replace("prod-central-sh", "prod-central-sh-2"))
    assert load_inventory(tmp_path).version != before


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        pytest.param(
            {"sh-a.yaml": site("sh-a", cluster="kubeedge-eats")},
            "sh-a.yaml:10: spec.cluster: names cluster 'kubeedge-eats', which no kind: Cluster manifest declares; "
            "did you mean 'kubeedge-east'?",
            id="unknown-cluster",
        ),
        pytest.param(
            {"sh-a.yaml": site("sh-a", cluster="central-sh")},
            "sh-a.yaml:10: spec.cluster: a transfer center's boxes are KubeEdge nodes of a kubeedge-host cluster; "
            "'central-sh' is a central cluster",
            id="transfer-center-on-central",
        ),
        pytest.param(
            {
                "central-sh.yaml": site("central-sh", kind="central", cluster="kubeedge-east"),
                "clusters.yaml": HOST_DOC,
            },
            "central-sh.yaml:10: spec.cluster: a central site is a whole central cluster; 'kubeedge-east' is a "
            "kubeedge-host cluster",
            id="central-on-kubeedge-host",
        ),
        pytest.param(
            {"central-sh.yaml": site("central-sh", kind="central", cluster="central-sh", extra="  nodeGroup: x\n")},
            "central-sh.yaml:11: spec.nodeGroup: a central site is its whole cluster and selects no node group",
            id="central-with-node-group",
        ),
        pytest.param(
            {"zz-central.yaml": site("zz-central", kind="central", cluster="central-sh")},
            "zz-central.yaml:10: spec.cluster: cluster 'central-sh' is already central site 'central-sh'",
            id="two-central-sites-on-one-cluster",
        ),
        pytest.param(
            {"sh-b.yaml": site("sh-b", extra="  nodeGroup: sh-a\n")},
            "sh-b.yaml:11: spec.nodeGroup: node group 'sh-a' on cluster 'kubeedge-east' is already that of site 'sh-a'",
            id="two-sites-one-node-group",
        ),
        pytest.param(
            {"sh-b.yaml": site("sh-b", extra="  nodeGroup: group-b\n") + "      nodeName: sh-a-01\n"},
            "sh-b.yaml:15: spec.boxes[0].nodeName: node 'sh-a-01' of cluster 'kubeedge-east' is already box "
            "'sh-a-01' of site 'sh-a'",
            id="two-sites-one-node",
        ),
        pytest.param(
            {"sh-a.yaml": site("sh-a") + "      nodeName: Edge_7\n"},
            "sh-a.yaml:14: spec.boxes[0].nodeName: 'Edge_7' is no Kubernetes node name",
            id="bad-node-name",
        ),
        pytest.param(
            {"clusters.yaml": CLUSTERS + "---\n" + CENTRAL_DOC},
            "clusters.yaml:22: metadata.name: cluster 'central-sh' is already defined in",
            id="duplicate-cluster",
        ),
        pytest.param(
            {"more.yaml": HOST_DOC.replace("name: kubeedge-east", "name: kubeedge-again")},
            "more.yaml:7: spec.context: context 'prod-kubeedge-east' is already that of cluster 'kubeedge-east'",
            id="two-clusters-one-context",
        ),
        pytest.param(
            {"more.yaml": HOST_DOC.replace("kubeedge-east", "kubeedge-west")},
            "more.yaml:4: metadata.name: cluster 'kubeedge-west' holds no site; name it in a site's spec.cluster",
            id="cluster-without-site",
        ),
        pytest.param(
            {"clusters.yaml": CLUSTERS.replace("role: kubeedge-host", "role: kubeedge")},
            "clusters.yaml:6: spec.role: Invalid enum value 'kubeedge'; expected one of kubeedge-host, central",
            id="bad-role",
        ),
        pytest.param(
            {"clusters.yaml": CLUSTERS.replace("  region: east\n", "  region: east\n  zone: a\n", 1)},
            "clusters.yaml:9: spec.zone: Object contains unknown field `zone`",
            id="unknown-cluster-field",
        ),
        pytest.param(
            {"sh-a.yaml": site("sh-a").replace("  cluster: kubeedge-east\n", "")},
            "sh-a.yaml:5: spec: Object missing required field `cluster`",
            id="site-without-cluster",
        ),
        pytest.param(
            {"clusters.yaml": CLUSTERS.replace("kind: Cluster", "kind: Clutser", 1)},
            "clusters.yaml:2: apiVersion/kind: expected apiVersion 'edgefleet.io/v1' and kind 'Site' or 'Cluster'",
            id="bad-kind",
        ),
    ],
)
def test_a_misplaced_site_or_cluster_is_one_problem_with_file_line_and_reason(
    tmp_path: Path, changes: dict[str, str], expected: str
) -> None:
    write(tmp_path, GOOD | changes)
    problems = problems_of(tmp_path)
    assert len(problems) == 1, problems
    assert problems[0].startswith(str(tmp_path / expected.partition(":")[0]) + ":")
    assert expected in problems[0]


def test_a_broken_cluster_is_reported_once_not_by_every_site_on_it(tmp_path: Path) -> None:
    write(tmp_path, GOOD | {"clusters.yaml": CLUSTERS.replace("context: prod-kubeedge-east", "context: []")})
    (problem,) = problems_of(tmp_path)
    assert "clusters.yaml:7: spec.context: Expected `str`, got `array`" in problem


def test_every_placement_problem_is_reported_at_once(tmp_path: Path) -> None:
    write(
        tmp_path,
        GOOD
        | {
            "sh-a.yaml": site("sh-a", cluster="nowhere"),
            "sh-b.yaml": site("sh-b", cluster="central-sh"),
            "zz-central.yaml": site("zz-central", kind="central", cluster="central-sh"),
        },
    )
    found = [p.removeprefix(f"{tmp_path}/").split(": ")[0:2] for p in problems_of(tmp_path)]
    assert found == [
        ["sh-a.yaml:10", "spec.cluster"],  # unknown
        ["sh-b.yaml:10", "spec.cluster"],  # wrong role
        ["zz-central.yaml:10", "spec.cluster"],  # a second central site
        ["clusters.yaml:4", "metadata.name"],  # kubeedge-east now holds no site
    ]

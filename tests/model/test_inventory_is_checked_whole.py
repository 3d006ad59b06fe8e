"""The site inventory loads whole or not at all, and every problem names its file, line, field and reason."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from edgefleet.errors import InventoryError
from edgefleet.inventory import load_inventory
from tests.support.clusters import write_host_cluster

SITES = Path(__file__).resolve().parents[2] / "sites"

GOOD = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata:
  name: sh-test
spec:
  kind: transfer-center
  displayName: Shanghai Test
  region: east
  timezone: Asia/Shanghai
  cluster: test-edge
  boxes:
    - name: sh-test-edge-01
      role: edge-node
    - name: sh-test-gpu-01
      role: gpu-box
      gpu:
        model: NVIDIA T4
        count: 1
        driverVersion: "535.183.01"
"""


def write(directory: Path, name: str, text: str) -> Path:
    """``directory/name`` holding ``text``, with the KubeEdge host cluster GOOD's site is on beside it."""
    if not (directory / "clusters.yaml").exists():
        write_host_cluster(directory)
    path = directory / name
    path.write_text(text)
    return path


def problems_of(directory: Path) -> list[str]:
    with pytest.raises(InventoryError) as caught:
        load_inventory(directory)
    return [str(p) for p in caught.value.problems]


def test_the_shipped_inventory_has_100_centers_and_central_clusters() -> None:
    inventory = load_inventory(SITES)
    centers = [s for s in inventory.sites.values() if s.kind == "transfer-center"]
    centrals = [s for s in inventory.sites.values() if s.kind == "central"]
    assert len(centers) == 100
    assert len(centrals) >= 2
    assert 1_900 <= len(inventory.boxes) <= 2_100
    for site in inventory.sites.values():
        assert site.boxes, site.id
        for box in inventory.site_boxes(site.id):
            assert box.site == site.id
            if box.role == "gpu-box":
                assert box.gpu is not None


def test_a_good_file_loads_with_defaults(tmp_path: Path) -> None:
    write(tmp_path, "sh-test.yaml", GOOD)
    inventory = load_inventory(tmp_path)
    site = inventory.sites["sh-test"]  # type: ignore[index]
    assert site.interval_s == 10.0
    assert site.missed_beats == 3
    assert site.boxes == ("sh-test-edge-01", "sh-test-gpu-01")
    assert inventory.boxes["sh-test-gpu-01"].gpu.count == 1  # type: ignore[index, union-attr]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (("count: 1", 'count: "one"'), ":18: spec.boxes[1].gpu.count: Expected `int`, got `str`"),
        (("timezone: Asia/Shanghai", "timezone: Asia/Shanghia"), ":9: spec.timezone: 'Asia/Shanghia' is no IANA"),
        (("name: sh-test-edge-01", "name: SH_Test"), ":12: spec.boxes[0].name: must be an id"),
        (("kind: Site", "kind: Sight"), ":2: apiVersion/kind: expected apiVersion 'edgefleet.io/v1' and kind 'Site'"),
        (("  region: east\n", ""), ": spec: Object missing required field `region`"),
        (
            ("      role: edge-node", "      role: edge-node\n      colour: red"),
            ":14: spec.boxes[0].colour: Object contains unknown field `colour`",
        ),
        (
            ("role: edge-node", "role: toaster"),
            ":13: spec.boxes[0].role: Invalid enum value 'toaster'; expected one of edge-node, gpu-box, cluster-node",
        ),
        (("  boxes:\n", "  boxes: []\n  old:\n"), "spec"),
    ],
)
def test_a_bad_field_is_reported_with_file_line_and_reason(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    write(tmp_path, "sh-test.yaml", GOOD.replace(*change, 1))
    (problem,) = problems_of(tmp_path)
    assert problem.startswith(str(tmp_path / "sh-test.yaml"))
    assert expected in problem


def test_a_gpu_box_without_gpu_is_refused(tmp_path: Path) -> None:
    text = GOOD.replace(
        '      gpu:\n        model: NVIDIA T4\n        count: 1\n        driverVersion: "535.183.01"\n', ""
    )
    write(tmp_path, "sh-test.yaml", text)
    (problem,) = problems_of(tmp_path)
    assert ":14: spec.boxes[1].gpu: a gpu-box must say which GPU it has" in problem


def test_duplicates_across_files_name_both_files(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD)
    write(tmp_path, "b.yaml", GOOD.replace("name: sh-test\n", "name: sh-other\n"))
    write(tmp_path, "c.yaml", GOOD)
    found = problems_of(tmp_path)
    assert any("b.yaml:12: spec.boxes[0].name: box 'sh-test-edge-01' is already defined in" in p for p in found)
    assert any("c.yaml:4: metadata.name: site 'sh-test' is already defined in" in p for p in found)


def test_every_bad_file_is_reported_and_nothing_is_loaded(tmp_path: Path) -> None:
    shutil.copytree(SITES, tmp_path / "sites")
    write(tmp_path / "sites", "zz-broken.yaml", "apiVersion: edgefleet.io/v1\nkind: Site\nmetadata: [\n")
    write(tmp_path / "sites", "zz-list.yaml", "- just\n- a list\n")
    found = problems_of(tmp_path / "sites")
    assert len(found) == 2
    assert "zz-broken.yaml:4: is not valid YAML" in found[0]
    assert "zz-list.yaml:1: a manifest must be a mapping" in found[1]


def test_a_character_yaml_refuses_is_a_problem_with_its_line_not_a_traceback(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", GOOD.replace("name: sh-test\n", "name: sh-test\u008e\n", 1))
    found = problems_of(tmp_path)
    assert any("a.yaml:4: is not valid YAML: control characters are not allowed (character #x008e)" in p for p in found)


def test_an_empty_or_missing_directory_says_so(tmp_path: Path) -> None:
    assert "holds no site manifests" in problems_of(tmp_path)[0]
    assert "is not a directory" in problems_of(tmp_path / "nope")[0]


def test_several_documents_in_one_file(tmp_path: Path) -> None:
    second = GOOD.replace("sh-test", "sh-two")
    write(tmp_path, "both.yaml", GOOD + "---\n" + second)
    assert set(load_inventory(tmp_path).sites) == {"sh-test", "sh-two"}

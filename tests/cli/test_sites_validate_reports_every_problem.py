"""``edgefleet sites validate [DIR]`` checks the inventory locally (no API): "N sites, M boxes, K clusters: OK", or every
problem as file:line: field: reason with exit code 1."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.conftest import SITES


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    """A copy of the shipped inventory to break."""
    return Path(shutil.copytree(SITES, tmp_path / "sites"))


def edit(file: Path, line: int, old: str, new: str) -> None:
    lines = file.read_text().splitlines(keepends=True)
    assert old in lines[line - 1], f"{file}:{line} no longer holds {old!r}"
    lines[line - 1] = lines[line - 1].replace(old, new)
    file.write_text("".join(lines))


def test_the_shipped_inventory_is_ok(cli: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sites", "validate", str(SITES)])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "103 sites, 1977 boxes, 8 clusters: OK"


def test_the_directory_comes_from_the_environment(cli: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sites", "validate"], env={"EDGEFLEET_SITES_DIR": str(SITES)})

    assert (result.exit_code, result.output.strip()) == (0, "103 sites, 1977 boxes, 8 clusters: OK")


def test_every_problem_is_reported_with_file_line_field_and_reason(
    cli: typer.Typer, runner: CliRunner, broken: Path
) -> None:
    edit(broken / "as-tiexi.yaml", 9, '"Anshan Tiexi Transfer Center"', '"Anshan Tiexi Transfer Center')
    edit(broken / "bj-daxing.yaml", 9, "displayName:", "displayNmae:")
    edit(broken / "bj-shunyi.yaml", 18, "bj-shunyi-edge-01", "bd-gaobeidian-edge-01")

    result = runner.invoke(cli, ["sites", "validate", str(broken)])

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "error: the site inventory has 3 problem(s):"
    assert lines[1].startswith(f"  {broken}/as-tiexi.yaml:")
    assert ": is not valid YAML: " in lines[1]
    assert lines[2] == (
        f"  {broken}/bj-daxing.yaml:9: spec.displayNmae: Object contains unknown field `displayNmae` "
        "(check its spelling and indentation; docs/inventory.md lists the fields)"
    )
    assert lines[3] == (
        f"  {broken}/bj-shunyi.yaml:18: spec.boxes[0].name: box 'bd-gaobeidian-edge-01' is already defined in "
        f"{broken}/bd-gaobeidian.yaml"
    )
    assert lines[4] == "hint: fix these and run 'edgefleet sites validate' again; docs/inventory.md has the fields"
    assert "Traceback" not in result.output


@pytest.mark.parametrize(
    ("break_it", "expected"),
    [
        (lambda d: (d / "sh-pudong.yaml").write_text("spec: [unclosed\n"), "sh-pudong.yaml:2: is not valid YAML"),
        (
            lambda d: edit(d / "bj-daxing.yaml", 8, "kind: transfer-center", "kind: depot"),
            "bj-daxing.yaml:8: spec.kind: Invalid enum value 'depot'",
        ),
        (
            lambda d: edit(d / "bj-daxing.yaml", 4, "name: bj-daxing", "name: as-tiexi"),
            "bj-daxing.yaml:4: metadata.name: site 'as-tiexi' is already defined in",
        ),
    ],
    ids=["bad-yaml", "wrong-value", "duplicate-site"],
)
def test_one_broken_file_fails_the_whole_inventory(
    cli: typer.Typer, runner: CliRunner, broken: Path, break_it: object, expected: str
) -> None:
    break_it(broken)  # type: ignore[operator]

    result = runner.invoke(cli, ["sites", "validate", str(broken)])

    assert result.exit_code == 1
    assert "error: the site inventory has 1 problem(s):" in result.output
    assert expected in result.output


def test_a_missing_directory_is_one_line(cli: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["sites", "validate", str(tmp_path / "nowhere")])

    assert result.exit_code == 1
    assert f"{tmp_path}/nowhere: is not a directory of site manifests" in result.output

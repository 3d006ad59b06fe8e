"""``edgefleet releases validate [DIR|FILE...]`` checks release manifests against the inventory locally (no API):
"N releases checked against M sites: OK" with warnings on stderr, or every problem as file:line: field: reason with
exit code 1; ``edgefleet releases list`` shows each release's app, version and whether its images are pinned."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import releases
from tests.conftest import REPO, SITES
from tests.releases.test_releases_are_refused_with_file_line_and_reason import GOOD

RELEASES = REPO / "releases"


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    releases.register(app)
    return app


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_the_shipped_releases_are_ok_with_their_warnings(cli: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["releases", "validate", str(RELEASES), "--sites", str(SITES)])

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == "6 releases checked against 103 sites: OK (6 warnings)"
    warnings = result.stderr.splitlines()
    assert len(warnings) == 6
    assert warnings[0] == (
        f"warning: {RELEASES}/scan-upload-1.12.0.yaml:13: spec.images['scan-upload']: "
        "'registry.local:5000/edgefleet/scan-upload:1.12.0' is given by tag only; it is pinned by digest when the "
        "rollout starts"
    )


def test_every_problem_of_every_file_is_one_line_and_exit_1(
    cli: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    shutil.copytree(RELEASES, tmp_path / "releases")
    bad = tmp_path / "releases" / "scan-upload-1.14.0.yaml"
    bad.write_text(bad.read_text().replace('waves: ["10%", "50%", "100%"]', 'waves: ["10%", "50%"]'))
    (tmp_path / "extra.yaml").write_text(GOOD.replace("soak: 1h30m", "soak: 1 hour"))

    result = runner.invoke(
        cli, ["releases", "validate", str(tmp_path / "releases"), str(tmp_path / "extra.yaml")],
        env={"EDGEFLEET_SITES_DIR": str(SITES)},
    )  # fmt: skip

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "error: the releases have 2 problems:",
        f"  {bad}:31: spec.strategy.waves: the last wave is 50%; it must be '100%' so that every site gets the release",
        f"  {tmp_path}/extra.yaml:28: spec.strategy.soak: '1 hour' is no duration: use hours, minutes and seconds "
        "such as 1h30m, 10m or 90s",
        "hint: fix these and run 'edgefleet releases validate' again; docs/releases.md has the fields",
    ]


def test_a_broken_inventory_is_reported_before_the_releases(
    cli: typer.Typer, runner: CliRunner, tmp_path: Path
) -> None:
    result = runner.invoke(cli, ["releases", "validate", str(RELEASES), "--sites", str(tmp_path)])

    assert result.exit_code == 1
    assert result.stderr.splitlines()[0] == "error: the site inventory has 1 problem(s):"
    assert "run 'edgefleet sites validate' first" in result.stderr


def test_list_shows_app_version_and_pinning(cli: typer.Typer, runner: CliRunner, tmp_path: Path) -> None:
    (tmp_path / "pinned.yaml").write_text(GOOD)
    shutil.copy(RELEASES / "scan-upload-1.14.0.yaml", tmp_path)

    result = runner.invoke(cli, ["releases", "list", str(tmp_path), "--sites", str(SITES)])

    assert result.exit_code == 0, result.output
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows == [
        ["name", "app", "version", "images", "model"],
        ["scan-upload-1.14.0", "scan-upload", "1.14.0", "by", "tag", "-"],
        ["sorting-recognition-9.0.0", "sorting-recognition", "9.0.0", "pinned", "rough-handling", "2026.11.2"],
    ]
    as_json = runner.invoke(cli, ["releases", "list", str(tmp_path), "--sites", str(SITES), "-o", "json"])
    assert [(r["name"], r["pinned"]) for r in json.loads(as_json.stdout)] == [
        ("scan-upload-1.14.0", False),
        ("sorting-recognition-9.0.0", True),
    ]

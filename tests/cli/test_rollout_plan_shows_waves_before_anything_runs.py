"""``edgefleet rollout plan FILE`` shows what a rollout would do over the live fleet before anything runs: the
waves, their sites and hardware, the blackouts at each site, the sites held, offline or up to date, the soak and
the approvals; ``-o json|yaml`` gives the API's plan; a refused plan exits 1 with the reason. A real uvicorn
serves the API over the in-memory controller (``tests/cli/conftest.py``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
import yaml
from typer.testing import CliRunner

from edgefleet.cli import rollouts
from edgefleet.messages import AppReport, AppState
from tests.cli.test_fleet_commands_print_tables import rows
from tests.cloud.api.memory import MemoryController

RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata:
  name: scan-upload-2-4-0
spec:
  app: scan-upload
  version: 2.4.0
  images:
    scan-upload: registry.local:5000/edgefleet/scan-upload:2.4.0
  strategy:
    canary: {sites: [sh-pudong], coverHardware: false}
    waves: ["100%"]
    soak: 1h30m
    approvalBefore: [1]
    blackouts:
      - {dates: "2020-01-01..2100-12-31", reason: frozen for the test, sites: [bj-daxing]}
"""


@pytest.fixture
def app() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(app)
    return app


@pytest.fixture
def release(tmp_path: Path) -> Path:
    path = tmp_path / "scan-upload-2.4.0.yaml"
    path.write_text(RELEASE)
    return path


def scanning(version: str) -> AppReport:
    return AppReport(source="simulator", apps=[AppState(name="scan-upload", version=version, state="running")])


def test_the_plan_shows_waves_sites_hardware_windows_soak_and_approval(
    app: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController, release: Path
) -> None:
    memory.beat("sh-pudong-edge-01", app_report=scanning("2.3.0"))  # bj-daxing is never heard: offline

    result = runner.invoke(app, ["rollout", "plan", str(release), "--api", api_url])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "Plan of scan-upload-2-4-0: scan-upload 2.4.0, 2 sites to update in 1 wave after the canary" in out
    assert "at most 10 in flight, soak 1h30m per wave, approval before wave 1" in out
    table = rows(out)
    assert table["canary"] == ["canary", "1", "0", "0", "-", "NVIDIA L4 (550.90.07)"]
    assert table["wave 1"] == ["100%", "1", "0", "1", "needed", "NVIDIA T4 (535.183.01)"]
    assert table["sh-pudong"][:3] == ["canary", "east", "ready"]
    assert table["bj-daxing"][:3] == ["wave 1", "north", "offline"]
    assert table["bj-daxing"][3].startswith("frozen for the test (2020-01-01..2100-12-31): 2020-01-01 00:00 to")
    assert "offline (1), deferred until they come back: bj-daxing" in out
    assert "left out: central-bj: a central site; scan-upload goes to one only when the release names it" in out
    # What the loader accepted but deserves a look, as releases validate says it.
    assert (
        "warning: line 9, field spec.images['scan-upload']: 'registry.local:5000/edgefleet/scan-upload:2.4.0' is "
        "given by tag only; it is pinned by digest when the rollout starts" in result.stderr
    )


def test_json_and_yaml_give_the_apis_plan(
    app: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController, release: Path
) -> None:
    memory.beat("bj-daxing-edge-01", app_report=scanning("2.4.0"))
    memory.beat("bj-daxing-gpu-01", app_report=scanning("2.4.0"))

    as_json = runner.invoke(app, ["rollout", "plan", str(release), "--api", api_url, "-o", "json"])
    as_yaml = runner.invoke(app, ["rollout", "plan", str(release), "--api", api_url, "-o", "yaml"])

    assert as_json.exit_code == 0, as_json.output
    plan = json.loads(as_json.stdout)
    assert plan["up_to_date"] == ["bj-daxing"]
    assert [w["sites"] for w in plan["waves"]] == [["sh-pudong"]]
    assert yaml.safe_load(as_yaml.stdout) == plan


def test_a_refused_plan_exits_1_with_the_line_field_and_reason(
    app: typer.Typer, runner: CliRunner, api_url: str, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(RELEASE.replace("canary: {sites: [sh-pudong]", "canary: {sites: [sh-nowhere]"))

    result = runner.invoke(app, ["rollout", "plan", str(bad), "--api", api_url])

    assert result.exit_code == 1
    assert (
        "error: the release was refused: line 11, field spec.strategy.canary.sites[0]: names site 'sh-nowhere', "
        "which the inventory has not" in result.output
    )


def test_a_missing_file_is_one_line(app: typer.Typer, runner: CliRunner, api_url: str, tmp_path: Path) -> None:
    result = runner.invoke(app, ["rollout", "plan", str(tmp_path / "nope.yaml"), "--api", api_url])

    assert result.exit_code == 1
    assert f"error: no release file {tmp_path / 'nope.yaml'}" in " ".join(result.output.split())
    assert "Traceback" not in result.output

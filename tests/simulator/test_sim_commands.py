"""``edgefleet sim ...`` against a running simulator: faults injected, listed and cleared by readable options,
the status as tables, the simulator's refusals as one line, and no simulator as UnreachableError."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from edgefleet.cli.sim import app
from edgefleet.errors import InventoryError, UnreachableError
from simulator.running import BackgroundSimulator
from tests.simulator.conftest import ALL_BOXES, CENTRAL, GPU_A, SITE_B
from tests.support.clusters import TEST_HOST
from tests.support.peers import free_port


@pytest.fixture
def runner() -> CliRunner:
    # Wide enough that rich never folds a cell: the tests read the tables' text.
    return CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


@pytest.fixture
def keep_logging() -> Iterator[None]:
    """``sim run`` configures the root logger for a process of its own; give the test run its own back."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    logging.getLogger("edgefleet.agent").setLevel(logging.NOTSET)


def test_faults_are_injected_listed_and_cleared(sim: BackgroundSimulator, runner: CliRunner) -> None:
    env = {"EDGEFLEET_SIM_URL": sim.url}
    cut = runner.invoke(app, ["fault", "cut", "--site", SITE_B, "--for", "60"], env=env)
    assert cut.exit_code == 0, cut.output
    assert "injected cut-1: cut site site-02 for 60 s" in cut.output
    skew = runner.invoke(app, ["fault", "skew", "--box", GPU_A, "--by", "-30"], env=env)
    assert "injected skew-2: skew site-01-gpu-01 until cleared" in skew.output
    hot = runner.invoke(app, ["fault", "overheat", "--box", "site-01-gpu-02", "--gpu", "1", "--for", "30"], env=env)
    assert hot.exit_code == 0, hot.output
    garbage = runner.invoke(
        app, ["fault", "malformed", "--box", GPU_A, "--count", "3", "--variant", "wrong-schema"], env=env
    )
    assert "injected malformed-4: malformed site-01-gpu-01 for its next 3 heartbeat(s) (wrong-schema)" in garbage.output
    assert runner.invoke(app, ["fault", "clear", "--id", "malformed-4"], env=env).exit_code == 0

    listed = runner.invoke(app, ["fault", "list"], env=env)
    assert listed.exit_code == 0
    assert "clock -30 s" in listed.output
    assert "GPU 1 at 95 C" in listed.output
    assert "cut-1" in listed.output

    one = runner.invoke(app, ["fault", "clear", "--id", "skew-2"], env=env)
    assert "cleared 1 fault(s): skew-2" in one.output
    rest = runner.invoke(app, ["fault", "clear"], env=env)
    assert "cleared 2 fault(s)" in rest.output
    assert "no active faults" in runner.invoke(app, ["fault", "list"], env=env).output


def test_cluster_faults_are_injected_and_listed_in_readable_terms(sim: BackgroundSimulator, runner: CliRunner) -> None:
    env = {"EDGEFLEET_SIM_URL": sim.url}
    steps = [
        (["edgecore", "--box", GPU_A], "injected edgecore-1: edgecore site-01-gpu-01 until cleared"),
        (
            ["api-errors", "--cluster", TEST_HOST, "--rate", "0.25", "--errors", "429,timeout", "--for", "60"],
            f"injected api-errors-2: api-errors cluster {TEST_HOST} for 60 s",
        ),
        (["api-down", "--cluster", CENTRAL, "--for", "30"], f"injected api-down-3: api-down cluster {CENTRAL}"),
        (
            ["crash-loop", "--version", "2.4.0", "--gpu-model", "NVIDIA L4"],
            "injected crash-loop-4: crash-loop GPU model NVIDIA L4 until cleared",
        ),
        (["pull", "--site", SITE_B, "--mode", "slow", "--delay", "90"], "injected pull-5: pull site site-02"),
        (
            ["slow", "--version", "3.5.0", "--app", "sorting-recognition", "--site", SITE_B, "--by", "40"],
            "injected slow-6: slow site site-02 until cleared",
        ),
        (["slow", "--version", "1.13.1"], "injected slow-7: slow everywhere until cleared"),
    ]
    for args, said in steps:
        result = runner.invoke(app, ["fault", *args], env=env)
        assert result.exit_code == 0, result.output
        assert said in result.output
    listed = runner.invoke(app, ["fault", "list"], env=env).output
    assert f"cluster {TEST_HOST}: 25% fail with 429, timeout" in listed
    assert "version 2.4.0 on NVIDIA L4" in listed
    assert "pulls take 90 s" in listed
    assert "version 3.5.0 sorting-recognition 40% worse" in listed
    assert "version 1.13.1 30% worse" in listed
    refused = runner.invoke(app, ["fault", "api-errors", "--cluster", "mars", "--rate", "1"], env=env)
    assert refused.exit_code != 0
    assert "no cluster 'mars' in the simulated fleet" in refused.output
    assert "cleared 7 fault(s)" in runner.invoke(app, ["fault", "clear"], env=env).output


def test_status_shows_the_fleet_and_one_site(sim: BackgroundSimulator, runner: CliRunner) -> None:
    whole = runner.invoke(app, ["status", "--url", sim.url])
    assert whole.exit_code == 0, whole.output
    assert f"{len(ALL_BOXES)}/{len(ALL_BOXES)} boxes connected" in whole.output
    assert "site-02" in whole.output
    site = runner.invoke(app, ["status", "--url", sim.url, "--site", "site-01"])
    assert "site site-01: 3/3 boxes connected" in site.output
    assert GPU_A in site.output


@pytest.mark.parametrize("args", [["status"], ["status", "--site", "site-01"], ["fault", "list"]])
def test_o_json_and_yaml_print_the_simulators_objects(
    sim: BackgroundSimulator, runner: CliRunner, args: list[str]
) -> None:
    as_json = runner.invoke(app, [*args, "-o", "json", "--url", sim.url])
    as_yaml = runner.invoke(app, [*args, "-o", "yaml", "--url", sim.url])

    assert as_json.exit_code == 0, as_json.output
    assert as_yaml.exit_code == 0, as_yaml.output
    from_json, from_yaml = json.loads(as_json.output), yaml.safe_load(as_yaml.output)
    if args[0] == "fault":
        assert from_json == from_yaml == []  # the other tests clear what they inject
    else:
        # Counters move between the two calls; the objects' shape does not.
        assert isinstance(from_json, dict)
        assert list(from_json) == list(from_yaml)


def test_a_refused_fault_prints_the_simulators_reason(sim: BackgroundSimulator, runner: CliRunner) -> None:
    result = runner.invoke(app, ["fault", "overheat", "--box", "site-01-edge-01", "--url", sim.url])
    assert result.exit_code == 1
    assert "box 'site-01-edge-01' has no GPU to overheat" in result.output
    unknown = runner.invoke(app, ["fault", "stop", "--box", "ghost", "--url", sim.url])
    assert (unknown.exit_code, "no box 'ghost'" in unknown.output) == (1, True)


def test_cut_needs_its_duration(runner: CliRunner) -> None:
    result = runner.invoke(app, ["fault", "cut", "--site", SITE_B])
    assert result.exit_code == 2
    assert "--for" in result.output


def test_no_simulator_raises_unreachable(runner: CliRunner) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    result = runner.invoke(app, ["fault", "list"], env={"EDGEFLEET_SIM_URL": url})
    assert isinstance(result.exception, UnreachableError)
    assert result.exception.where == url
    assert "edgefleet sim run" in result.exception.hint


@pytest.mark.usefixtures("keep_logging")
def test_run_refuses_bad_options_before_connecting_anything(runner: CliRunner, tmp_path: Path) -> None:
    from tests.simulator.fleets import write_inventory

    write_inventory(tmp_path, sites=1, boxes_per_site=2)
    unknown = runner.invoke(app, ["run", "--sites", str(tmp_path), "--site", "atlantis"])
    assert unknown.exit_code == 1
    assert "site(s) 'atlantis' not in the inventory" in unknown.output
    jitter = runner.invoke(app, ["run", "--sites", str(tmp_path), "--jitter", "2"])
    assert (jitter.exit_code, "--jitter must be from 0 to 0.9" in jitter.output) == (1, True)
    broker = runner.invoke(app, ["run", "--sites", str(tmp_path), "--broker", "http://x"])
    assert (broker.exit_code, "scheme must be mqtt://" in broker.output) == (1, True)
    empty = runner.invoke(app, ["run", "--sites", str(tmp_path / "nowhere")])
    assert isinstance(empty.exception, InventoryError)

"""Every import contract in ``pyproject.toml`` is broken on purpose, in a copy of the tree, and ``lint-imports`` must
report that contract and the planted import by name; the unmodified copy, and the imports the contracts allow
(the GPU probe's ``pynvml``, a Kubernetes gateway in ``edgefleet/cloud/k8s/``), must pass.

The copy is analysed, not the installed package: ``lint-imports`` runs in the copy (it puts its working directory
first on ``sys.path``), the copy is first on ``PYTHONPATH`` too, and each case checks its planted importer is named.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

LAYERS = "Layers of edgefleet: the CLI over controller and agent over the shared model, every module placed"
SIMULATOR = "Only the simulator command imports the simulator"
CLOUD_AGENT_APART = "Controller and agent are independent"
SIMULATOR_NO_CONTROLLER = "The simulator uses the agent, never the controller"
AGENT = "The agent stays small: none of the controller's stack, directly or indirectly"
ENTRY = "The edgefleet command reaches the agent without the controller's stack"
NVML = "Only the agent's GPU probe imports pynvml"
KUBERNETES = "Only the Kubernetes gateway (edgefleet.cloud.k8s) imports kubernetes"
PURE_ALERTING = "The pure alerting decisions import no I/O library and none of the controller's I/O modules"
PURE_ALERTING_SHELL_FREE = (
    "The pure alerting decisions start no thread and read no clock, file, socket or random source themselves"
)
PURE_ROLLOUTS = "The pure rollout decisions import no I/O library and none of the controller's I/O modules"
PURE_ROLLOUTS_SHELL_FREE = (
    "The pure rollout decisions start no thread and read no clock, file, socket or random source themselves"
)
PURE_CONSOLE = (
    "The console is view models and assets: no I/O library, not the API, none of the controller's I/O modules"
)
PURE_CONSOLE_SHELL_FREE = (
    "The console's view models start no thread and read no clock, file, socket or random source themselves"
)
ROUTES_APART = "API routes do not import each other"
API_SURFACE = "The API's routes and helpers use the controller's public surface, not its internals"


@dataclass(frozen=True)
class Plant:
    """``line`` added to ``path`` (after its ``from __future__`` line; a new file is created with just that line)."""

    path: str
    line: str


@dataclass(frozen=True)
class Violation:
    plants: tuple[Plant, ...]
    broken: str  # the contract that must be reported broken
    reported: str  # "importer -> imported" as lint-imports prints the first link of the chain


VIOLATIONS = [
    # The four of issue 12, each kept by the contracts they replace.
    Violation((Plant("edgefleet/agent/running.py", "import pynvml"),), NVML, "edgefleet.agent.running -> pynvml"),
    Violation(
        (Plant("edgefleet/cloud/fleet.py", "import kubernetes"),), KUBERNETES, "edgefleet.cloud.fleet -> kubernetes"
    ),
    Violation(
        (Plant("edgefleet/cloud/alerting/evaluating.py", "import httpx"),),
        PURE_ALERTING,
        "edgefleet.cloud.alerting.evaluating -> httpx",
    ),
    Violation(
        (Plant("edgefleet/agent/probes.py", "from edgefleet import manifests"),),
        AGENT,
        "edgefleet.agent.probes -> edgefleet.manifests",
    ),
    # New modules in new places are covered without naming them in the contracts.
    Violation((Plant("simulator/gpus/nvml.py", "import pynvml"),), NVML, "simulator.gpus.nvml -> pynvml"),
    Violation(
        (Plant("edgefleet/cloud/rollouts/applying.py", "from kubernetes import client"),),
        KUBERNETES,
        "edgefleet.cloud.rollouts.applying -> kubernetes",
    ),
    # The agent, indirectly: through a new shared module that pulls in pydantic.
    Violation(
        (
            Plant("edgefleet/conditions.py", "import pydantic"),
            Plant("edgefleet/agent/reporting.py", "from edgefleet import conditions"),
        ),
        AGENT,
        "edgefleet.agent.reporting -> edgefleet.conditions",
    ),
    Violation(
        (Plant("edgefleet/agent/link.py", "from edgefleet.cloud import fleet"),),
        AGENT,
        "edgefleet.agent.link -> edgefleet.cloud.fleet",
    ),
    Violation(
        (Plant("edgefleet/agent/cli.py", "from simulator import faults"),), AGENT, "edgefleet.agent.cli -> simulator"
    ),
    # The layers: the shared model uses no side, and a new module under edgefleet/ must be given a layer.
    Violation(
        (Plant("edgefleet/messages.py", "from edgefleet.agent import sources"),),
        LAYERS,
        "edgefleet.messages -> edgefleet.agent.sources",
    ),
    Violation((Plant("edgefleet/conditions.py", "import json"),), LAYERS, "- edgefleet.conditions"),
    Violation(
        (Plant("edgefleet/cloud/fleet.py", "from simulator import faults"),),
        SIMULATOR,
        "edgefleet.cloud.fleet -> simulator.faults",
    ),
    Violation(
        (Plant("edgefleet/cloud/ingesting.py", "from edgefleet.agent.reporting import BoxReporter"),),
        CLOUD_AGENT_APART,
        "edgefleet.cloud.ingesting -> edgefleet.agent.reporting",
    ),
    Violation(
        (Plant("simulator/boxes.py", "from edgefleet.cloud.fleet import FleetState"),),
        SIMULATOR_NO_CONTROLLER,
        "simulator.boxes -> edgefleet.cloud.fleet",
    ),
    # The dispatcher every box runs before the agent.
    Violation((Plant("edgefleet/cli/__init__.py", "import typer"),), ENTRY, "edgefleet.cli -> typer"),
    # The pure alerting modules, their package's __init__ included, directly and indirectly.
    Violation(
        (Plant("edgefleet/cloud/alerting/__init__.py", "from edgefleet.cloud.alerting import looping"),),
        PURE_ALERTING,
        "edgefleet.cloud.alerting -> edgefleet.cloud.alerting.looping",
    ),
    Violation(
        (Plant("edgefleet/cloud/alerting/notifying.py", "from edgefleet.cloud.alerting.outbox import Outbox"),),
        PURE_ALERTING,
        "edgefleet.cloud.alerting.notifying -> edgefleet.cloud.alerting.outbox",
    ),
    Violation(
        (Plant("edgefleet/cloud/alerting/tracking.py", "import time"),),
        PURE_ALERTING_SHELL_FREE,
        "edgefleet.cloud.alerting.tracking -> time",
    ),
    Violation(
        (Plant("edgefleet/cloud/alerting/reconciling.py", "import threading"),),
        PURE_ALERTING_SHELL_FREE,
        "edgefleet.cloud.alerting.reconciling -> threading",
    ),
    # The node states and the rules on them are pure; the node watch (node_watching.py) is their shell.
    Violation(
        (Plant("edgefleet/cloud/nodes.py", "from edgefleet.cloud import node_watching"),),
        PURE_ALERTING,
        "edgefleet.cloud.nodes -> edgefleet.cloud.node_watching",
    ),
    Violation(
        (Plant("edgefleet/cloud/alerting/node_rules.py", "import time"),),
        PURE_ALERTING_SHELL_FREE,
        "edgefleet.cloud.alerting.node_rules -> time",
    ),
    # The pure rollout decisions: planning, windows, gates, deciding and rendering; facts.py is their shell.
    Violation(
        (Plant("edgefleet/cloud/rollouts/planning.py", "from edgefleet.cloud.rollouts import facts"),),
        PURE_ROLLOUTS,
        "edgefleet.cloud.rollouts.planning -> edgefleet.cloud.rollouts.facts",
    ),
    Violation(
        (Plant("edgefleet/cloud/rollouts/gates.py", "import httpx"),),
        PURE_ROLLOUTS,
        "edgefleet.cloud.rollouts.gates -> httpx",
    ),
    Violation(
        (Plant("edgefleet/cloud/rollouts/deciding.py", "import time"),),
        PURE_ROLLOUTS_SHELL_FREE,
        "edgefleet.cloud.rollouts.deciding -> time",
    ),
    Violation(
        (Plant("edgefleet/cloud/rollouts/windows.py", "import threading"),),
        PURE_ROLLOUTS_SHELL_FREE,
        "edgefleet.cloud.rollouts.windows -> threading",
    ),
    # The console: view models and assets; the API serves it and it never imports the API back.
    Violation(
        (Plant("edgefleet/cloud/console/views.py", "from edgefleet.cloud.api import live"),),
        PURE_CONSOLE,
        "edgefleet.cloud.console.views -> edgefleet.cloud.api",
    ),
    Violation(
        (Plant("edgefleet/cloud/console/charts.py", "import fastapi"),),
        PURE_CONSOLE,
        "edgefleet.cloud.console.charts -> fastapi",
    ),
    Violation(
        (Plant("edgefleet/cloud/console/views.py", "import time"),),
        PURE_CONSOLE_SHELL_FREE,
        "edgefleet.cloud.console.views -> time",
    ),
    # The API.
    Violation(
        (Plant("edgefleet/cloud/api/routes/boxes.py", "from edgefleet.cloud.api.routes import sites"),),
        ROUTES_APART,
        "edgefleet.cloud.api.routes.boxes -> edgefleet.cloud.api.routes.sites",
    ),
    Violation(
        (Plant("edgefleet/cloud/api/routes/boxes.py", "from edgefleet.cloud.store import Store"),),
        API_SURFACE,
        "edgefleet.cloud.api.routes.boxes -> edgefleet.cloud.store",
    ),
    Violation(
        (Plant("edgefleet/cloud/api/paging.py", "import sqlmodel"),),
        API_SURFACE,
        "edgefleet.cloud.api.paging -> sqlmodel",
    ),
]


def copy_tree(destination: Path) -> Path:
    """The packages and the contracts, without bytecode: what ``lint-imports`` reads."""
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for package in ("edgefleet", "simulator"):
        shutil.copytree(REPO / package, destination / package, ignore=ignore)
    shutil.copy2(REPO / "pyproject.toml", destination / "pyproject.toml")
    return destination


def plant(root: Path, planted: Plant) -> None:
    path = root / planted.path
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        for package in path.relative_to(root).parents:
            if package != Path(".") and not (root / package / "__init__.py").exists():
                (root / package / "__init__.py").write_text("")
        path.write_text(f"{planted.line}\n")
        return
    text = path.read_text()
    future = "from __future__ import annotations\n"
    assert future in text, f"{planted.path} has no {future.strip()!r} line to plant after"
    path.write_text(text.replace(future, f"{future}{planted.line}\n", 1))


@dataclass(frozen=True)
class LintResult:
    returncode: int
    output: str

    def contracts(self, state: str) -> set[str]:
        return set(re.findall(rf"^(.+) {state}(?: \(\d+ ignored imports?\))?$", self.output, re.MULTILINE))


def lint(root: Path) -> LintResult:
    done = subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "500", "NO_COLOR": "1"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,  # the tests read the exit status
    )
    return LintResult(done.returncode, done.stdout + done.stderr)


def test_the_unmodified_tree_keeps_every_contract(tmp_path: Path) -> None:
    result = lint(copy_tree(tmp_path))
    assert result.returncode == 0, result.output
    assert not result.contracts("BROKEN")
    # Every contract is broken by at least one violation above, and under its current name: a new contract needs
    # its planted violation here, and renaming one must update this test.
    assert result.contracts("KEPT") == {v.broken for v in VIOLATIONS}, result.output


@pytest.mark.parametrize("violation", VIOLATIONS, ids=lambda v: v.reported)
def test_a_planted_import_breaks_its_contract(tmp_path: Path, violation: Violation) -> None:
    root = copy_tree(tmp_path)
    for planted in violation.plants:
        plant(root, planted)
    result = lint(root)
    assert result.returncode == 1, result.output
    assert violation.broken in result.contracts("BROKEN"), result.output
    assert violation.reported in result.output, result.output


def test_the_gateway_and_the_gpu_probe_may_import_their_libraries(tmp_path: Path) -> None:
    """The allowances are real: a gateway package that imports kubernetes (and a controller module that uses the
    gateway) keeps every contract, so the allowance's spelling in pyproject.toml is checked too."""
    root = copy_tree(tmp_path)
    plant(root, Plant("edgefleet/cloud/k8s/__init__.py", "import kubernetes"))
    plant(root, Plant("edgefleet/cloud/k8s/clients.py", "from kubernetes import client"))
    plant(root, Plant("edgefleet/cloud/controller.py", "from edgefleet.cloud.k8s import clients"))
    result = lint(root)
    assert result.returncode == 0, result.output
    assert {KUBERNETES, NVML} <= result.contracts("KEPT"), result.output

"""The agent as a box runs it (the ``edgefleet`` console script, ``agent run``, GPU probe on) sends a heartbeat
through a real Mosquitto, and every module it loaded on the way - at start, in the probes, in paho's callbacks -
is none of the controller's stack. The import contracts check import statements; this checks the process.

Python's own import log (``PYTHONPROFILEIMPORTTIME``, one stderr line per module imported) is the record, so the
console script runs unchanged. The same record must show what the agent does load (paho, msgspec, pynvml): a
record that missed modules would pass every check.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.agent.conftest import Listener
from tests.support.peers import Mosquitto, wait_for

EDGEFLEET = Path(sys.executable).with_name("edgefleet")

# The controller's, the CLI's and the simulator's libraries, and the modules of ours that would bring them.
FORBIDDEN_PACKAGES = frozenset(
    {
        "fastapi", "starlette", "sqlmodel", "sqlalchemy", "psycopg", "pydantic", "uvicorn", "kubernetes", "typer",
        "click", "rich", "httpx", "yaml", "apscheduler", "prometheus_client", "simulator",
        "cryptography",
    }
)  # fmt: skip
FORBIDDEN_OURS = ("edgefleet.cloud", "edgefleet.manifests", "edgefleet.inventory")
# Of the typer CLI a box loads only the dispatcher in front of the agent: the package's __init__ and __main__.
CLI = "edgefleet.cli"
CLI_DISPATCHER = frozenset({CLI, f"{CLI}.__main__"})

IMPORT_LINE = re.compile(r"^import time:\s+\d+ \|\s+\d+ \|\s*(\S+)$")


def imported_modules(stderr: str) -> set[str]:
    return {m.group(1) for m in map(IMPORT_LINE.match, stderr.splitlines()) if m}


def is_forbidden(module: str) -> bool:
    def within(package: str) -> bool:
        return module == package or module.startswith(f"{package}.")

    return (
        module.partition(".")[0] in FORBIDDEN_PACKAGES
        or any(within(ours) for ours in FORBIDDEN_OURS)
        or (within(CLI) and module not in CLI_DISPATCHER)
    )


def forbidden(modules: set[str]) -> set[str]:
    return {module for module in modules if is_forbidden(module)}


def run_agent_for_one_heartbeat(broker: Mosquitto, log: Path) -> set[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("EDGEFLEET_", "PYTHON"))}
    env["PYTHONPROFILEIMPORTTIME"] = "1"
    listener = Listener(broker.port)
    try:
        with log.open("w") as out:
            agent = subprocess.Popen(
                [str(EDGEFLEET), "agent", "run", "--box", "arch-box", "--site", "test-site", "--broker", broker.url],
                cwd=log.parent,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                text=True,
            )
        try:
            wait_for(lambda: listener.heartbeats("arch-box"), what="the agent's first heartbeat")
            agent.send_signal(signal.SIGTERM)
            assert agent.wait(10) == 0, log.read_text()[-2000:]
        finally:
            if agent.poll() is None:
                agent.kill()
                agent.wait(10)
    finally:
        listener.close()
    return imported_modules(log.read_text())


def test_the_running_agent_loads_none_of_the_controller_stack(broker: Mosquitto, tmp_path: Path) -> None:
    loaded = run_agent_for_one_heartbeat(broker, tmp_path / "agent.log")

    # The record is complete enough to fail: it shows the MQTT client, the wire format, the lazy NVML import
    # the GPU probe makes at its first sample, and the agent's own modules.
    assert {"paho.mqtt.client", "msgspec", "pynvml", "edgefleet.agent.link", "edgefleet.agent.gpu"} <= loaded

    found = forbidden(loaded)
    assert not found, f"the agent loaded {sorted(found)}"


def test_the_check_sees_a_forbidden_module() -> None:
    """``forbidden`` names what it must: a record with the controller's modules in it does not pass."""
    record = {"paho", "edgefleet.cli", "edgefleet.cli.__main__", "edgefleet.agent.cli"}
    assert forbidden(record) == set()
    planted = {"yaml", "sqlalchemy.orm", "edgefleet.cloud", "edgefleet.cloud.fleet", "edgefleet.cli.app"}
    assert forbidden(record | planted) == planted

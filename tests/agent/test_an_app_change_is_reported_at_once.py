"""The real agent process reports a change of its apps (a version, a state) at once, not at its next scheduled
heartbeat: with an interval of an hour, only the early heartbeat can bring the new version. What counts as a change
is each app's name, version and state and the source's error; figures, which move all the time, do not."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from edgefleet.agent.running import app_states
from edgefleet.messages import AppReport, AppState, Heartbeat
from tests.agent.conftest import AgentProcess, Listener
from tests.support.peers import Mosquitto, wait_for

AN_HOUR = 3600.0


def _apps(version: str, state: str = "running", backlog: float = 40.0) -> str:
    app = {"name": "scan-upload", "version": version, "state": state, "figures": {"upload_backlog": backlog}}
    return json.dumps({"apps": [app]})


def test_a_new_version_goes_out_at_once_not_at_the_next_scheduled_heartbeat(
    broker: Mosquitto,
    listen: Callable[..., Listener],
    start_agent: Callable[..., AgentProcess],
    tmp_path: Path,
) -> None:
    apps_file = tmp_path / "apps.json"
    apps_file.write_text(_apps("1.2.0"))
    listener = listen(broker.port)
    start_agent("box-quick", broker.url, "--apps-file", str(apps_file), interval=AN_HOUR)
    first = wait_for(lambda: listener.heartbeats("box-quick"), what="the first heartbeat")[0]
    assert [a.version for a in first.apps.apps] == ["1.2.0"]

    apps_file.write_text(_apps("1.3.0", state="pending"))

    def reported(version: str, state: str) -> Callable[[], list[Heartbeat] | None]:
        def check() -> list[Heartbeat] | None:
            beats = listener.heartbeats("box-quick")
            return beats if (version, state) in {(a.version, a.state) for a in beats[-1].apps.apps} else None

        return check

    beats = wait_for(reported("1.3.0", "pending"), timeout=30, what="an early heartbeat reporting 1.3.0 pending")
    assert [b.seq for b in beats] == [1, 2]
    assert {b.boot for b in beats} == {first.boot}

    apps_file.write_text(_apps("1.3.0", state="running", backlog=55.0))
    beats = wait_for(reported("1.3.0", "running"), timeout=30, what="an early heartbeat reporting 1.3.0 running")
    assert [b.seq for b in beats] == [1, 2, 3]


def test_figures_make_no_change_and_versions_states_and_errors_do() -> None:
    def report(
        version: str = "1.2.0", state: str = "running", backlog: float = 40.0, error: str | None = None
    ) -> AppReport:
        app = AppState(name="scan-upload", version=version, state=state, figures={"upload_backlog": backlog})  # type: ignore[arg-type]
        return AppReport(source="file:/etc/edgefleet/apps.json", error=error, apps=[app])

    assert app_states(report(backlog=40.0)) == app_states(report(backlog=90.0))
    assert app_states(report()) != app_states(report(version="1.3.0"))
    assert app_states(report()) != app_states(report(state="failed"))
    assert app_states(report()) != app_states(report(error="apps file is not UTF-8 text"))
    assert app_states(report()) != app_states(AppReport(source="none"))

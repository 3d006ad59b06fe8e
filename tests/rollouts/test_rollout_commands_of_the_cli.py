"""``edgefleet rollout start|status|pause|resume|promote|abort|rollback`` and ``edgefleet site hold|release``
against the API over the small simulated fleet: start prints the id, status lists and shows waves, sites per state
and gates, ``--watch`` draws until the rollout ends, commands and holds say what they did, refusals exit 1 with
the API's message."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import rollouts
from tests.cli.entry import spawn
from tests.cloud.api.serving import serving
from tests.rollouts.world import SITES, World, release, small_world
from tests.support.access import use_token
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.beat()
        yield built


@pytest.fixture
def api(world: World, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    with serving(world.app()) as url:
        use_token(monkeypatch, world.token)  # the CLI's calls act as "rm", an admin
        yield url


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(app)
    return app


def _run(cli: typer.Typer, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli, list(args), env={"COLUMNS": "200"})
    return result.exit_code, result.output


def test_start_status_and_watch_until_done(
    cli: typer.Typer, api: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rollouts, "WATCH_INTERVAL_S", 0.1)
    path = tmp_path / "scan-upload-1.0.0.yaml"
    path.write_text(release("1.0.0"))
    code, out = _run(cli, "rollout", "start", str(path), "--api", api)
    assert code == 0, out
    rollout_id = out.split()[2]
    assert out.startswith(f"Started rollout {rollout_id} of scan-upload-1.0.0: 4 sites in 2 waves")

    code, out = _run(cli, "rollout", "status", "--api", api)
    assert code == 0, out
    assert rollout_id in out

    world.step(rollout_id)
    code, out = _run(cli, "rollout", "status", rollout_id, "--api", api)
    assert code == 0, out
    assert "canary" in out
    assert "1 in-progress" in out
    assert "kubernetes" in out  # the canary's gates, with their reasons

    # --watch redraws until the rollout ends; the reconciler ticks beside it.
    ticking = threading.Thread(target=world.run_until, args=(rollout_id, "done"))
    ticking.start()
    try:
        code, out = _run(cli, "rollout", "status", rollout_id, "--watch", "--api", api)
    finally:
        ticking.join()
    assert code == 0, out
    assert f"Rollout {rollout_id} of scan-upload-1.0.0: done" in out


def test_commands_holds_and_refusals(cli: typer.Typer, api: str, world: World, tmp_path: Path) -> None:
    path = tmp_path / "release.yaml"
    path.write_text(release("1.0.0"))
    code, out = _run(cli, "rollout", "start", str(path), "--api", api)
    rollout_id = out.split()[2]

    assert _run(cli, "rollout", "pause", rollout_id, "--api", api) == (
        0,
        f"pause: rollout {rollout_id} is running; the controller acts on it within a tick\n",
    )
    code, out = _run(cli, "rollout", "promote", rollout_id, "--api", api)
    assert code == 1
    assert "no wave waits for a promotion" in out
    code, out = _run(cli, "rollout", "start", str(path), "--api", api)
    assert code == 1
    assert f"rollout {rollout_id} of scan-upload-1.0.0 is active" in out

    assert _run(cli, "site", "hold", SITES[3], "--reason", "peak day", "--api", api) == (0, "held site-d: peak day\n")
    assert _run(cli, "site", "release", SITES[3], "--api", api) == (0, "released site-d (was held: peak day)\n")
    code, out = _run(cli, "site", "release", SITES[3], "--api", api)
    assert code == 1
    assert "is not held" in out


def test_watch_without_an_id_follows_the_active_rollout_and_ctrl_c_stops_watching_not_the_rollout(
    cli: typer.Typer, api: str, world: World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out = _run(cli, "rollout", "status", "--watch", "--api", api)
    assert code == 1
    assert "--watch follows one rollout, and none is active" in out
    path = tmp_path / "release.yaml"
    path.write_text(release("1.0.0"))
    rollout_id = _run(cli, "rollout", "start", str(path), "--api", api)[1].split()[2]

    def interrupted(seconds: float) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(rollouts, "_wait", interrupted)
    code, out = _run(cli, "rollout", "status", "--watch", "--api", api)

    assert code == 0, out
    assert out.rstrip().endswith(f"stopped watching; rollout {rollout_id} goes on")
    assert world.rollouts.get(rollout_id).active


def test_watch_piped_prints_the_rollout_at_once_and_a_line_per_change(
    api: str, world: World, tmp_path: Path, cli: typer.Typer
) -> None:
    """Into a pipe (a log, CI, tee) --watch printed nothing until the rollout ended: rich's live screen writes only
    when it stops. The real command in a child process, its stdout a pipe, read while the rollout runs."""
    path = tmp_path / "release.yaml"
    path.write_text(release("1.0.0"))
    rollout_id = _run(cli, "rollout", "start", str(path), "--api", api)[1].split()[2]
    lines: list[str] = []
    watching = spawn("rollout", "status", rollout_id, "--watch", "--api", api)
    assert watching.stdout is not None
    reader = threading.Thread(target=lambda: lines.extend(iter(watching.stdout.readline, "")), daemon=True)  # type: ignore[union-attr]
    reader.start()
    try:
        # Nothing ticks yet: the rollout runs, and the view is there before it ends.
        wait_for(lambda: any(f"Rollout {rollout_id} of scan-upload-1.0.0: running" in line for line in lines),
                 timeout=30, what="the first view")  # fmt: skip
        world.run_until(rollout_id, "done")
        assert watching.wait(timeout=60) == 0
    finally:
        watching.kill()
    reader.join(timeout=10)
    watching.stdout.close()
    out = "".join(lines)
    assert f"\n{rollout_id} done; canary: 1 passed; wave 1: 3 passed\n" in out  # the change, as one line
    assert out.rstrip().endswith("blocked (in a blackout window): -")  # and the whole view at the end
    assert f"Rollout {rollout_id} of scan-upload-1.0.0: done" in out

"""``edgefleet cloud serve``: serves the API until SIGTERM, and refuses to start - in one line, or one line per
inventory problem, exit 1, nothing started - on bad settings, a taken port, a bad inventory, an unreachable
database or a database another controller holds; a holder killed with -9 lets its successor in."""

from __future__ import annotations

import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cloud.controller import Controller
from edgefleet.cloud.leading import DatabaseHeldError
from edgefleet.cloud.settings import Settings
from tests.cli.entry import edgefleet, spawn
from tests.cloud.api.memory import write_inventory
from tests.support.access import bearer, mint_at
from tests.support.peers import Mosquitto, free_port, wait_for


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "sites")


@pytest.fixture
def taken_port() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def test_serves_the_api_until_sigterm_then_stops_the_controller(broker: Mosquitto, sites: Path, tmp_path: Path) -> None:
    port = free_port()
    database = tmp_path / "edgefleet.db"
    with spawn(
        "cloud", "serve", "--listen", f"127.0.0.1:{port}", "--broker", broker.url, "--sites", str(sites),
        "--database", f"sqlite:///{database}",
    ) as process:  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

                def healthy() -> dict[str, object] | None:
                    assert process.poll() is None, "the controller exited"
                    try:
                        response = client.get("/healthz")
                    except httpx.TransportError:
                        return None
                    return response.json() if response.status_code == 200 else None

                assert wait_for(healthy, timeout=20, what="the controller to answer /healthz")["boxes_total"] == 6
                client.headers.update(bearer(mint_at(f"sqlite:///{database}")))
                sites_shown = [s["id"] for s in client.get("/api/v1/sites").json()]
                console = client.get("/")
                # A console page left open: its event stream must not hold the shutdown (and the last save).
                with client.stream("GET", "/api/v1/events") as stream:
                    lines = stream.iter_lines()  # kept: a dropped iterator closes the response
                    assert next(lines).startswith("retry:")
                    process.send_signal(signal.SIGTERM)
                    output, _ = process.communicate(timeout=20)
        except BaseException:
            process.kill()
            print(process.communicate()[0])  # the controller's own account, beside the failure
            raise

    assert sites_shown == ["bj-daxing", "central-bj", "sh-pudong"]
    assert console.status_code == 200
    assert console.headers["content-type"].startswith("text/html")
    assert process.returncode == 0, output
    assert "Started controller" in output
    assert "Stopped controller" in output
    assert output.index("Finished server process") < output.index("Stopped controller")
    assert "Traceback" not in output
    assert database.exists()


def test_a_taken_port_is_one_line_and_nothing_starts(
    cli: typer.Typer, runner: CliRunner, sites: Path, tmp_path: Path, taken_port: int
) -> None:
    database = tmp_path / "edgefleet.db"

    result = runner.invoke(
        cli,
        [
            "cloud",
            "serve",
            "--listen",
            f"127.0.0.1:{taken_port}",
            "--sites",
            str(sites),
            "--database",
            f"sqlite:///{database}",
        ],
    )

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"error: cannot listen on 127.0.0.1:{taken_port}: the port is already in use",
        f"hint: stop what listens there (ss -ltnp 'sport = :{taken_port}') or choose another with --listen HOST:PORT",
    ]
    assert not database.exists()


def test_a_bad_inventory_lists_every_problem_and_nothing_starts(
    cli: typer.Typer, runner: CliRunner, sites: Path, tmp_path: Path
) -> None:
    (sites / "central-bj.yaml").write_text((sites / "central-bj.yaml").read_text().replace("kind: central", "kind: hq"))
    (sites / "extra.yaml").write_text("apiVersion: edgefleet.io/v1\nkind: Site\nmetadata: {name: x\n")
    database = tmp_path / "edgefleet.db"
    port = free_port()

    result = runner.invoke(
        cli,
        [
            "cloud",
            "serve",
            "--listen",
            f"127.0.0.1:{port}",
            "--sites",
            str(sites),
            "--database",
            f"sqlite:///{database}",
        ],
    )

    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert lines[0] == "error: the site inventory has 2 problem(s):"
    assert lines[1].startswith(f"  {sites}/central-bj.yaml:5: spec.kind: Invalid enum value 'hq'")
    assert lines[2].startswith(f"  {sites}/extra.yaml:4: is not valid YAML")
    assert lines[3] == f"hint: fix the files in {sites}; 'edgefleet sites validate' rechecks"
    assert not database.exists()
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the socket was released


@pytest.mark.parametrize(
    ("option", "value", "says"),
    [
        ("--broker", "http://broker:1883", "error: broker_url='http://broker:1883': expected mqtt://HOST:PORT"),
        ("--listen", "localhost", "error: listen='localhost': expected HOST:PORT"),
        ("--database", "mysql://db/x", "error: database_url='mysql://db/x': the 'mysql' database is not supported"),
        ("--kubeconfig", "/nowhere/kubeconfig", "error: --kubeconfig='/nowhere/kubeconfig': no such kubeconfig file"),
        ("--leader-lease", "1s", "error: --leader-lease='1s': expected a leader lease from 2 s to 60 s"),
    ],
)
def test_a_bad_setting_is_one_line(
    cli: typer.Typer, runner: CliRunner, sites: Path, option: str, value: str, says: str
) -> None:
    result = runner.invoke(cli, ["cloud", "serve", "--sites", str(sites), option, value])

    assert result.exit_code == 1
    assert result.output.startswith(says)
    assert len(result.output.splitlines()) == 2  # the error and the hint


def test_an_unreachable_database_is_one_line_from_the_real_command(sites: Path) -> None:
    port = free_port()

    result = edgefleet(
        "cloud", "serve", "--listen", f"127.0.0.1:{free_port()}", "--sites", str(sites),
        "--database", f"postgresql://edgefleet@127.0.0.1:{port}/edgefleet",
    )  # fmt: skip

    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if not line[:4].isdigit()]  # log lines start with the date
    assert lines[0] == f"error: cannot reach the database at postgresql+psycopg://edgefleet@127.0.0.1:{port}/edgefleet"
    assert lines[1].startswith("hint: connection failed: ")
    assert "Traceback" not in result.stderr


def test_a_second_controller_on_the_same_database_is_one_line_and_nothing_starts(
    cli: typer.Typer, runner: CliRunner, broker: Mosquitto, sites: Path, tmp_path: Path
) -> None:
    database = f"sqlite:///{tmp_path / 'edgefleet.db'}"
    holder = Controller(Settings(broker_url=broker.url, database_url=database, sites_dir=sites))
    port = free_port()
    try:
        result = runner.invoke(
            cli,
            ["cloud", "serve", "--listen", f"127.0.0.1:{port}", "--broker", broker.url, "--sites", str(sites),
             "--database", database],
        )  # fmt: skip
    finally:
        holder.stop()

    assert result.exit_code == 1
    lines = [line for line in result.output.splitlines() if not line[:4].isdigit()]  # log lines start with the date
    assert len(lines) == 2, result.output
    assert lines[0].startswith(f"error: another controller holds the database {database}: host ")
    assert f", pid {os.getpid()}, since " in lines[0]
    assert lines[1] == (
        "hint: one controller per database: stop that controller first, or point this one at another database "
        "with --database"
    )
    assert "Started controller" not in result.output
    assert "New client connected" not in broker.config.with_suffix(".log").read_text()  # the broker never heard
    with socket.socket() as s:
        assert s.connect_ex(("127.0.0.1", port)) != 0  # the socket was released


def test_a_controller_killed_with_sigkill_lets_its_successor_start(
    broker: Mosquitto, sites: Path, database_url: str
) -> None:
    if database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL elects a leader among replicas: tests/faults/test_the_leader_is_killed.py")
    port = free_port()
    settings = Settings(broker_url=broker.url, database_url=database_url, sites_dir=sites)
    with spawn(
        "cloud", "serve", "--listen", f"127.0.0.1:{port}", "--broker", broker.url, "--sites", str(sites),
        "--database", database_url,
    ) as process:  # fmt: skip
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:

                def healthy() -> bool:
                    assert process.poll() is None, "the controller exited"
                    try:
                        return client.get("/healthz").status_code == 200
                    except httpx.TransportError:
                        return False

                wait_for(healthy, timeout=20, what="the controller to answer /healthz")
            with pytest.raises(DatabaseHeldError) as refused:
                Controller(settings)
            assert refused.value.holder is not None
            assert refused.value.holder.pid == process.pid  # the refusal names the process that holds

            process.kill()
            process.communicate(timeout=20)
        except BaseException:
            process.kill()
            print(process.communicate()[0])  # the controller's own account, beside the failure
            raise

    def successor() -> Controller | None:
        try:
            return Controller(settings)
        except DatabaseHeldError:
            return None  # PostgreSQL may take a moment to end the killed controller's session

    # SQLite's lock goes with the process; PostgreSQL's with its session, at once on a live host.
    wait_for(successor, timeout=20, interval=0.2, what="the database to be free for a successor").stop()

"""``edgefleet sites``, ``edgefleet boxes`` and ``edgefleet box`` print readable tables from a real API."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from tests.cloud.api.memory import MemoryController, apps
from tests.cloud.builders import gpus


def rows(output: str) -> dict[str, list[str]]:
    """The table's rows by their first cell, cells split on rich's column separator."""
    out = {}
    for line in output.splitlines():
        cells = [c.strip() for c in line.replace("┃", "│").strip().strip("│").split("│")]
        if len(cells) > 1 and cells[0]:
            out[cells[0]] = cells[1:]
    return out


def test_sites_lists_every_site_with_online_total_and_health(
    cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController
) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.beat("bj-daxing-gpu-01")
    memory.beat("bj-daxing-edge-01")

    result = runner.invoke(cli, ["sites", "--api", api_url])

    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert table["sh-pudong"] == ["Shanghai Pudong Transfer Center", "transfer-center", "east", "1/3", "degraded"]
    assert table["bj-daxing"] == ["Beijing Daxing Transfer Center", "transfer-center", "north", "2/2", "ok"]
    assert table["central-bj"] == ["Beijing Central Cluster", "central", "north", "0/1", "unknown"]
    assert "3 sites, 3/6 boxes online" in result.output


def test_sites_takes_the_api_from_the_environment_and_filters(
    cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController
) -> None:
    memory.beat("sh-pudong-gpu-01")

    result = runner.invoke(cli, ["sites", "--health", "degraded"], env={"EDGEFLEET_API_URL": api_url})

    assert result.exit_code == 0, result.output
    assert list(rows(result.output)) == ["site", "sh-pudong"]


def test_boxes_lists_a_sites_boxes(cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController) -> None:
    memory.beat(
        "sh-pudong-gpu-01", gpu=gpus((71.4, 80.0), (60.0, 90.0)), app_report=apps("running", "running", "failed")
    )
    memory.beat("sh-pudong-gpu-02", gpu=gpus((50.0, 10.0)))
    memory.say("sh-pudong-gpu-02", "offline", "shutdown")
    memory.clock.advance(3)

    result = runner.invoke(cli, ["boxes", "--site", "sh-pudong", "--api", api_url])

    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert table["box"] == ["role", "state", "last seen", "gpu temp", "gpu util", "apps"]
    assert table["sh-pudong-gpu-01"] == ["gpu-box", "online", "3s ago", "71°C", "85%", "2 running, 1 failed"]
    assert table["sh-pudong-gpu-02"] == ["gpu-box", "offline", "3s ago", "50°C", "10%", "1 running"]
    assert table["sh-pudong-edge-01"] == ["edge-node", "never-seen", "never", "-", "-", "-"]
    assert "3 boxes, 1 online" in result.output


def test_boxes_filters_by_state(cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.clock.advance(3600 * 2 + 5)  # silent for two hours: offline by heartbeat timeout
    memory.beat("sh-pudong-gpu-02")

    result = runner.invoke(cli, ["boxes", "--site", "sh-pudong", "--state", "offline", "--api", api_url])

    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert list(table) == ["box", "sh-pudong-gpu-01"]
    assert table["sh-pudong-gpu-01"][1:3] == ["offline", "2h ago"]


def test_boxes_unknown_lists_boxes_in_no_manifest(
    cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController
) -> None:
    memory.stranger("rogue-01", "sh-pudong")

    result = runner.invoke(cli, ["boxes", "--unknown", "--api", api_url])

    assert result.exit_code == 0, result.output
    assert rows(result.output)["rogue-01"][0] == "sh-pudong"
    assert "1 unknown box; add them to sites/ or switch them off" in result.output


def test_box_shows_one_box_in_detail(
    cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController
) -> None:
    memory.beat("sh-pudong-gpu-01", gpu=gpus((71.0, 80.0), (60.0, None)), app_report=apps("running", "failed"))
    memory.clock.advance(12)
    memory.beat("sh-pudong-gpu-01", gpu=gpus((72.0, 81.0), (61.0, None)), app_report=apps("running", "failed"))

    result = runner.invoke(cli, ["box", "sh-pudong-gpu-01", "--api", api_url])

    assert result.exit_code == 0, result.output
    out = result.output
    assert "sh-pudong-gpu-01" in out
    assert "2 x NVIDIA L4, driver 550.90.07" in out
    assert "online (connected" in out
    assert "heartbeat #2" in out
    assert "cpu 20%" in out
    assert "memory 25% used of 16.0 GiB" in out
    gpu_rows = rows(out)
    assert gpu_rows["0"][:3] == ["NVIDIA L4", "72°C", "81%"]
    assert gpu_rows["1"][:3] == ["NVIDIA L4", "61°C", "-"]
    assert gpu_rows["app-1"][:2] == ["1.4.2", "failed"]
    assert "2 health points since" in out


def test_boxes_needs_a_site_or_unknown(cli: typer.Typer, runner: CliRunner, api_url: str) -> None:
    result = runner.invoke(cli, ["boxes", "--api", api_url])

    assert result.exit_code == 1
    assert "error: say which boxes to list" in result.output
    assert "Traceback" not in result.output

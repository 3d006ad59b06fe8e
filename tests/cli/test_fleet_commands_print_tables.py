"""``edgefleet sites``, ``edgefleet boxes`` and ``edgefleet box`` print readable tables from a real API."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys

import httpx
import pytest
import typer
import yaml
from typer.testing import CliRunner

from tests.cloud.api.memory import MemoryController, apps
from tests.cloud.builders import gpus
from tests.conftest import REPO
from tests.support.access import bearer
from tests.support.nodes import node_object, publish_nodes


def rows(output: str) -> dict[str, list[str]]:
    """The table's rows by their first cell: piped, a table is plain columns two spaces or more apart."""
    out = {}
    for line in output.splitlines():
        cells = re.split(r"\s{2,}", line.strip())
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
    assert "3 sites, 3/6 boxes online, 2 not ok" in result.output


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
    assert table["box"] == ["role", "state", "node", "last seen", "gpu temp", "gpu util", "apps"]
    # No cluster is watched (the in-memory controller has no gateway): the node column says so, not "ready".
    assert table["sh-pudong-gpu-01"] == [
        "gpu-box",
        "online",
        "not-watched",
        "3s ago",
        "71°C",
        "85%",
        "2 running, 1 failed",
    ]
    assert table["sh-pudong-gpu-02"] == ["gpu-box", "offline", "not-watched", "3s ago", "50°C", "10%", "1 running"]
    assert table["sh-pudong-edge-01"] == ["edge-node", "never-seen", "not-watched", "never", "-", "-", "-"]
    assert "3 boxes, 1 online" in result.output


def test_boxes_show_each_boxs_node_beside_its_agent(
    cli: typer.Typer, runner: CliRunner, api_url: str, api_token: str, memory: MemoryController
) -> None:
    # The seed's pain: the agent of gpu-01 is online while KubeEdge has lost its node; gpu-02's node is Ready;
    # edge-01 never joined the cluster.
    memory.beat("sh-pudong-gpu-01")
    memory.beat("sh-pudong-gpu-02")
    publish_nodes(
        memory.state,
        "test-edge",
        [
            node_object("sh-pudong-gpu-01", "Unknown", taints=(("node.kubernetes.io/unreachable", "NoExecute"),)),
            node_object("sh-pudong-gpu-02", "True"),
        ],
        now=memory.clock.now(),
    )

    table = rows(runner.invoke(cli, ["boxes", "--site", "sh-pudong", "--api", api_url]).output)
    wide = rows(runner.invoke(cli, ["boxes", "--site", "sh-pudong", "-o", "wide", "--api", api_url]).output)
    shown = runner.invoke(cli, ["box", "sh-pudong-gpu-01", "--api", api_url]).output
    site = httpx.get(f"{api_url}/api/v1/sites/sh-pudong", headers=bearer(api_token)).json()

    assert [table[b][1:3] for b in ("sh-pudong-gpu-01", "sh-pudong-gpu-02", "sh-pudong-edge-01")] == [
        ["online", "unknown"],
        ["online", "ready"],
        ["never-seen", "missing"],
    ]
    assert wide["sh-pudong-gpu-01"][3:5] == ["connected", "NodeStatusUnknown"]
    assert "unknown (NodeStatusUnknown), sh-pudong-gpu-01 in cluster test-edge" in shown
    assert "tainted node.kubernetes.io/unreachable:NoExecute" in shown
    assert site["nodes_ready"] == 1
    wide_sites = rows(runner.invoke(cli, ["sites", "-o", "wide", "--api", api_url]).output)
    assert wide_sites["sh-pudong"][5:7] == ["2/3", "1/3"]
    assert site["nodes_by_state"] == {"ready": 1, "not-ready": 0, "unknown": 1, "missing": 1, "not-watched": 0}


def test_boxes_filters_by_state(cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")
    memory.clock.advance(3600 * 2 + 5)  # silent for two hours: offline by heartbeat timeout
    memory.beat("sh-pudong-gpu-02")

    result = runner.invoke(cli, ["boxes", "--site", "sh-pudong", "--state", "offline", "--api", api_url])

    assert result.exit_code == 0, result.output
    table = rows(result.output)
    assert list(table) == ["box", "sh-pudong-gpu-01"]
    assert table["sh-pudong-gpu-01"][1:4] == ["offline", "not-watched", "2h ago"]


def test_boxes_unknown_lists_boxes_in_no_manifest(
    cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController
) -> None:
    memory.stranger("rogue-01", "sh-pudong")

    result = runner.invoke(cli, ["boxes", "--unknown", "--api", api_url])

    assert result.exit_code == 0, result.output
    assert rows(result.output)["rogue-01"][:2] == ["sh-pudong", "-"]  # claims a site; enrolled for none
    assert "1 unknown box; adopt one by adding it to its site's manifest" in " ".join(result.output.split())


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


@pytest.mark.parametrize(
    ("args", "path"),
    [
        (["sites"], "/api/v1/sites"),
        (["boxes", "--site", "sh-pudong"], "/api/v1/sites/sh-pudong/boxes"),
        (["boxes", "--unknown"], "/api/v1/unknown-boxes"),
        (["box", "sh-pudong-gpu-01"], "/api/v1/boxes/sh-pudong-gpu-01"),
    ],
)
@pytest.mark.parametrize("fmt", ["json", "yaml"])
def test_o_json_and_yaml_print_the_apis_objects(
    cli: typer.Typer,
    runner: CliRunner,
    api_url: str,
    api_token: str,
    memory: MemoryController,
    args: list[str],
    path: str,
    fmt: str,
) -> None:
    memory.beat("sh-pudong-gpu-01", gpu=gpus((71.4, 80.0)), app_report=apps("running"))
    memory.stranger("rogue-01", "sh-pudong")

    result = runner.invoke(cli, [*args, "-o", fmt, "--api", api_url])

    assert result.exit_code == 0, result.output
    printed = json.loads(result.output) if fmt == "json" else yaml.safe_load(result.output)
    assert printed == httpx.get(api_url + path, headers=bearer(api_token)).json()


def test_wide_adds_columns(cli: typer.Typer, runner: CliRunner, api_url: str, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01")

    sites = rows(runner.invoke(cli, ["sites", "-o", "wide", "--api", api_url]).output)
    boxes = rows(runner.invoke(cli, ["boxes", "--site", "sh-pudong", "-o", "wide", "--api", api_url]).output)

    assert sites["site"] == ["name", "kind", "region", "timezone", "cluster", "online", "nodes ready", "health"]
    assert sites["sh-pudong"][6] == "-"  # no cluster watched: no count
    assert sites["sh-pudong"][3:5] == ["Asia/Shanghai", "test-edge"]
    assert sites["central-bj"][4] == "central-bj"
    assert boxes["box"][:7] == ["role", "state", "node", "reason", "node reason", "last heartbeat", "agent"]
    assert boxes["sh-pudong-gpu-01"][3:5] == ["connected", "no-gateway"]


def sites_on_a_terminal(api_url: str, **env: str) -> str:
    """``edgefleet sites`` run on a pseudo-terminal, as a person sees it: the raw bytes, colour codes and all."""
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [sys.executable, "-m", "edgefleet.cli", "sites", "--api", api_url],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env={k: v for k, v in os.environ.items() if k not in {"NO_COLOR", "FORCE_COLOR", "TERM"}}
        | {"COLUMNS": "120", "TERM": "xterm-256color", **env},
    ) as child:
        os.close(follower)
        out = b""
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            out += chunk
        child.wait(timeout=60)
    os.close(leader)
    return out.decode()


def test_sites_not_fully_ok_are_flagged_in_colour_on_a_terminal_only(
    cli: typer.Typer, runner: CliRunner, api_url: str, api_token: str, memory: MemoryController
) -> None:
    memory.beat("sh-pudong-gpu-01")  # degraded: 1/3
    memory.beat("bj-daxing-gpu-01")
    memory.beat("bj-daxing-edge-01")  # ok

    coloured = [line for line in sites_on_a_terminal(api_url, EDGEFLEET_TOKEN=api_token).splitlines() if "│" in line]
    plain = sites_on_a_terminal(api_url, NO_COLOR="1", EDGEFLEET_TOKEN=api_token)
    piped = runner.invoke(cli, ["sites", "--api", api_url]).output

    def colours(line: str) -> set[str]:
        return set(re.findall(r"\x1b\[([0-9;]*)m", line)) - {"0", "1"}  # bold is not a colour

    by_site = {re.sub(r"\x1b\[[0-9;]*m", "", line).split("│")[1].strip(): line for line in coloured}
    assert colours(by_site["sh-pudong"]) == {"33"}  # degraded: the whole row yellow
    assert colours(by_site["central-bj"]) == {"35"}  # never heard from: magenta
    assert colours(by_site["bj-daxing"]) == set()
    assert all(colours(line) == set() for line in plain.splitlines())
    assert "│" in plain
    assert "\x1b[" not in piped
    assert "│" not in piped
    assert "3 sites, 3/6 boxes online, 2 not ok" in piped

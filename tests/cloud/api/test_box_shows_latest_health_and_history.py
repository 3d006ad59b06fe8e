"""GET /api/v1/boxes/{box}: reachability, latest heartbeat sections and the health history."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from edgefleet.messages import AppReport, AppState
from tests.cloud.api.memory import MemoryController, apps
from tests.cloud.builders import gpus


def iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, tz=UTC).isoformat().replace("+00:00", "Z")


def test_shows_a_box_with_its_latest_heartbeat(client: httpx.Client, memory: MemoryController) -> None:
    seen_at = memory.clock.now()
    heartbeat = memory.beat(
        "sh-pudong-gpu-01", gpu=gpus((60.0, 50.0), (70.0, None)), app_report=apps("running", "pending"), skew_s=1.5
    )
    memory.clock.advance(4)

    box = client.get("/api/v1/boxes/sh-pudong-gpu-01").json()

    assert box["id"] == "sh-pudong-gpu-01"
    assert (box["site"], box["role"], box["model"]) == ("sh-pudong", "gpu-box", "Advantech MIC-770")
    assert box["reachability"] == {"state": "online", "reason": "connected", "since": iso(seen_at)}
    assert box["last_seen"] == iso(seen_at)
    assert box["last_seen_age_s"] == pytest.approx(4.0)
    assert box["clock_skew_s"] == pytest.approx(1.5)
    assert (box["boot"], box["seq"], box["agent_version"]) == (heartbeat.boot, 1, heartbeat.agent_version)
    assert (box["gpu_temperature_max_c"], box["gpu_utilization_avg_percent"]) == (70.0, 50.0)
    latest = box["latest"]
    assert latest["host"]["cpu_percent"] == 20.0
    assert latest["host"]["memory_total_bytes"] == 16 * 2**30
    assert [(g["index"], g["temperature_c"], g["utilization_percent"]) for g in latest["gpu"]["gpus"]] == [
        (0, 60.0, 50.0),
        (1, 70.0, None),
    ]
    assert latest["gpu"]["gpus"][0]["uuid"].startswith("GPU-")
    assert latest["apps"]["source"] == "file:/etc/edgefleet/apps.json"
    assert [a["state"] for a in latest["apps"]["apps"]] == ["running", "pending"]
    assert latest["sent_at"] == iso(heartbeat.sent_at)


def test_history_covers_the_window_asked_for(client: httpx.Client, memory: MemoryController) -> None:
    start = memory.clock.now()
    for cpu in (10.0, 20.0, 30.0, 40.0):
        memory.beat("sh-pudong-edge-01", cpu=cpu)
        memory.clock.advance(10)
    # now = start + 40; points at start, +10, +20, +30

    default = client.get("/api/v1/boxes/sh-pudong-edge-01").json()
    last_25s = client.get("/api/v1/boxes/sh-pudong-edge-01", params={"history_s": 25}).json()

    assert [p["cpu_percent"] for p in default["history"]] == [10.0, 20.0, 30.0, 40.0]
    assert default["history_since"] == iso(start + 40 - 900)
    assert [p["cpu_percent"] for p in last_25s["history"]] == [30.0, 40.0]
    assert last_25s["history"][0] == {
        "at": iso(start + 20),
        "cpu_percent": 30.0,
        "memory_used_percent": 25.0,
        "disk_used_percent": 20.0,
        "gpu_temperature_max_c": None,
        "gpu_utilization_avg_percent": None,
    }


@pytest.mark.parametrize(
    ("messages", "advance_s", "expected"),
    [
        ([], 0, ("never-seen", "never-seen")),
        (["beat"], 36, ("online", "connected")),  # the boundary (3 x 10 s + 20%) still counts as online
        (["beat"], 36.5, ("offline", "heartbeat-timeout")),  # 3 x 10 s + 20% jitter allowance
        (["beat", "shutdown"], 0, ("offline", "shutdown")),
        (["beat", "lost"], 0, ("offline", "connection-lost")),
    ],
)
def test_says_why_a_box_is_offline(
    client: httpx.Client,
    memory: MemoryController,
    messages: list[str],
    advance_s: float,
    expected: tuple[str, str],
) -> None:
    for message in messages:
        if message == "beat":
            memory.beat("sh-pudong-gpu-02")
        else:
            memory.say("sh-pudong-gpu-02", "offline", "shutdown" if message == "shutdown" else "connection-lost")
    memory.clock.advance(advance_s)

    reachability = client.get("/api/v1/boxes/sh-pudong-gpu-02").json()["reachability"]

    assert (reachability["state"], reachability["reason"]) == expected


def test_an_offline_box_keeps_its_last_readings(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-02", gpu=gpus((66.0, 10.0)))
    memory.clock.advance(600)

    box = client.get("/api/v1/boxes/sh-pudong-gpu-02").json()

    assert box["reachability"]["state"] == "offline"
    assert box["last_seen_age_s"] == pytest.approx(600.0)
    assert box["latest"]["gpu"]["gpus"][0]["temperature_c"] == 66.0


def test_an_unknown_box_is_a_404(client: httpx.Client) -> None:
    response = client.get("/api/v1/boxes/nobody-01")

    assert response.status_code == 404
    assert response.json() == {
        "error": {
            "code": "not-found",
            "message": "no box 'nobody-01' in the inventory; GET /api/v1/sites/{site}/boxes lists a site's boxes",
        }
    }


def test_a_box_that_publishes_but_is_in_no_manifest_gets_a_404_that_says_so(
    client: httpx.Client, memory: MemoryController
) -> None:
    memory.stranger("sh-pudong-gpu-99", "sh-pudong")

    response = client.get("/api/v1/boxes/sh-pudong-gpu-99")

    assert response.status_code == 404
    assert "publishes but is in no site manifest: add it to sites/" in response.json()["error"]["message"]


@pytest.mark.parametrize("history_s", ["0", "-5", "soon", str(8 * 24 * 3600)])
def test_a_bad_history_window_is_a_422(client: httpx.Client, history_s: str) -> None:
    response = client.get("/api/v1/boxes/sh-pudong-gpu-01", params={"history_s": history_s})

    assert response.status_code == 422
    assert response.json()["error"]["message"].startswith("query parameter 'history_s': ")


def test_shows_each_apps_health_figures_as_the_box_sent_them(client: httpx.Client, memory: MemoryController) -> None:
    report = AppReport(
        source="metaserver:http://127.0.0.1:10550",
        apps=[
            AppState(name="sorting-recognition", version="3.5.0", state="running", figures={"fps": 26.5}),
            AppState(name="scan-upload", version="1.13.1", state="failed", detail="CrashLoopBackOff"),
        ],
    )
    memory.beat("sh-pudong-gpu-01", app_report=report)

    shown = client.get("/api/v1/boxes/sh-pudong-gpu-01").json()["latest"]["apps"]["apps"]

    assert [(a["name"], a["figures"]) for a in shown] == [("sorting-recognition", {"fps": 26.5}), ("scan-upload", None)]

"""``POST /api/v1/rollouts/plan`` plans a release over the fleet as the controller hears it now: the versions the
boxes report, the sites no box of which is online; a release the loader refuses (as ``edgefleet releases
validate`` would), or one that cannot be planned, is refused with 422 naming the line and field of each problem.
A real uvicorn over the in-memory controller."""

from __future__ import annotations

import httpx

from edgefleet.messages import AppReport, AppState
from tests.cloud.api.memory import MemoryController

RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata:
  name: sorting-recognition-3-6-0
spec:
  app: sorting-recognition
  version: 3.6.0
  images:
    sorting-recognition: registry.local:5000/edgefleet/sorting-recognition:3.6.0
  model:
    name: rough-handling
    version: 2026.11.2
    sha256: 3f5a000000000000000000000000000000000000000000000000000000000000
    url: https://models.local/rough-handling/2026.11.2.onnx
  strategy:
    canary: {sites: [], coverHardware: true}
    waves: ["100%"]
    soak: 10m
    approvalBefore: [1]
    blackouts:
      - {daily: "20:00-02:00", reason: sorting peak}
"""


def running(version: str) -> AppReport:
    return AppReport(source="simulator", apps=[AppState(name="sorting-recognition", version=version, state="running")])


def test_the_plan_covers_the_hardware_and_lists_offline_and_up_to_date_sites(
    client: httpx.Client, memory: MemoryController
) -> None:
    # sh-pudong (L4) hears and runs 3.5.0; bj-daxing (T4) was never heard: offline, still planned.
    memory.beat("sh-pudong-gpu-01", app_report=running("3.5.0"))

    answer = client.post("/api/v1/rollouts/plan", json={"release": RELEASE})

    assert answer.status_code == 200, answer.text
    plan = answer.json()
    assert [(w["name"], sorted(w["sites"])) for w in plan["waves"]] == [("canary", ["bj-daxing", "sh-pudong"])]
    assert {(h["gpu_model"], h["driver_version"]) for h in plan["waves"][0]["hardware"]} == {
        ("NVIDIA L4", "550.90.07"),
        ("NVIDIA T4", "535.183.01"),
    }
    assert plan["offline"] == ["bj-daxing"]
    assert {s["site"]: s["state"] for s in plan["sites"]} == {"bj-daxing": "offline", "sh-pudong": "ready"}
    assert plan["left_out"][0]["site"] == "central-bj"
    assert plan["soak_s"] == 600
    assert plan["approval_before"] == [1]
    # The loader's warnings come with the plan, each with its line and field.
    assert any(
        w.startswith("line 9, field spec.images['sorting-recognition']: ") and "given by tag only" in w
        for w in plan["warnings"]
    ), plan["warnings"]
    # The fake clock starts at 2026-... UTC; every site lists the sorting peak in Shanghai time.
    window = plan["sites"][0]["next_blackout"] or plan["sites"][0]["blackout_now"]
    assert window["reason"] == "sorting peak"
    assert window["starts"].endswith("T20:00:00+08:00")


def test_a_site_whose_boxes_report_the_version_is_up_to_date(client: httpx.Client, memory: MemoryController) -> None:
    memory.beat("sh-pudong-gpu-01", app_report=running("3.6.0"))
    memory.beat("sh-pudong-gpu-02", app_report=running("3.6.0"))
    memory.beat("bj-daxing-gpu-01", app_report=running("3.5.0"))

    plan = client.post("/api/v1/rollouts/plan", json={"release": RELEASE}).json()

    assert plan["up_to_date"] == ["sh-pudong"]
    assert [w["sites"] for w in plan["waves"]] == [["bj-daxing"]]
    assert plan["offline"] == []


def test_a_release_that_does_not_parse_is_refused_with_line_and_field(client: httpx.Client) -> None:
    broken = RELEASE.replace("  version: 3.6.0\n", "  version: 3.6.0\n  replicas: 3\n")

    answer = client.post("/api/v1/rollouts/plan", json={"release": broken})

    assert answer.status_code == 422
    error = answer.json()["error"]
    assert error["code"] == "invalid-request"
    assert error["message"].startswith("the release was refused: line 8, field spec.replicas: ")
    assert "unknown field" in error["message"]


def test_every_problem_the_loader_finds_is_refused_with_line_and_field(client: httpx.Client) -> None:
    bad = (
        RELEASE.replace('waves: ["100%"]', 'waves: ["ten"]')
        .replace("soak: 10m", "soak: soon")
        .replace("canary: {sites: []", "canary: {sites: [sh-pudung]")
    )

    answer = client.post("/api/v1/rollouts/plan", json={"release": bad})

    assert answer.status_code == 422
    message = answer.json()["error"]["message"]
    assert "line 17, field spec.strategy.waves[0]: 'ten' is no wave" in message
    assert "line 18, field spec.strategy.soak: 'soon' is no duration" in message
    # Checked against the controller's inventory.
    assert "field spec.strategy.canary.sites[0]: names site 'sh-pudung', which the inventory has not; did you mean" in (
        message
    )


def test_a_release_that_cannot_be_planned_over_the_fleet_now_names_the_line_of_its_field(
    client: httpx.Client, memory: MemoryController
) -> None:
    for box in ("sh-pudong-gpu-01", "sh-pudong-gpu-02", "bj-daxing-gpu-01"):
        memory.beat(box, app_report=running("3.6.0"))

    answer = client.post("/api/v1/rollouts/plan", json={"release": RELEASE})

    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == (
        "the release was refused: line 7, field spec.version: every site the release goes to already runs "
        "sorting-recognition 3.6.0"
    )


def test_yaml_that_is_no_release_is_refused(client: httpx.Client) -> None:
    for text, says in [
        ("apiVersion: edgefleet.io/v1\nkind: Site\n", "expected apiVersion 'edgefleet.io/v1' and kind 'Release'"),
        ("spec: [unclosed\n", "is not valid YAML"),
        (RELEASE + "---\n" + RELEASE, "holds more than one document"),
    ]:
        answer = client.post("/api/v1/rollouts/plan", json={"release": text})
        assert answer.status_code == 422, text
        assert says in answer.json()["error"]["message"]


def test_a_release_that_is_no_unicode_text_is_refused_at_the_edge(client: httpx.Client) -> None:
    # JSON can spell a lone surrogate, which no file holds: refused before the release is read.
    answer = client.post(
        "/api/v1/rollouts/plan",
        content=b'{"release": "kind: \\ud800"}',
        headers={"content-type": "application/json"},
    )
    assert answer.status_code == 422
    assert answer.json()["error"]["message"].startswith("body field 'release': Input should be a valid string")


def test_a_character_yaml_refuses_is_named_by_its_line(client: httpx.Client) -> None:
    # Found by schemathesis: a C1 control character made the YAML reader raise past the manifest reader.
    answer = client.post("/api/v1/rollouts/plan", json={"release": "kind: Release\nspec: \x8e\n"})

    assert answer.status_code == 422
    assert answer.json()["error"]["message"] == (
        "the release was refused: line 2: is not valid YAML: control characters are not allowed (character #x008e)"
    )


def test_a_site_that_went_silent_is_offline_and_judged_by_what_its_boxes_last_said(
    client: httpx.Client, memory: MemoryController
) -> None:
    memory.beat("sh-pudong-gpu-01", app_report=running("3.5.0"))
    memory.beat("bj-daxing-gpu-01", app_report=running("3.6.0"))
    memory.clock.advance(3600)  # an hour of silence: every box is past its heartbeat timeout
    memory.beat("sh-pudong-gpu-02", app_report=running("3.5.0"))

    plan = client.post("/api/v1/rollouts/plan", json={"release": RELEASE}).json()

    assert plan["up_to_date"] == ["bj-daxing"]
    assert plan["offline"] == []
    assert [w["sites"] for w in plan["waves"]] == [["sh-pudong"]]

    memory.clock.advance(3600)
    plan = client.post("/api/v1/rollouts/plan", json={"release": RELEASE}).json()
    assert plan["offline"] == ["sh-pudong"]
    assert [w["sites"] for w in plan["waves"]] == [["sh-pudong"]]

"""The apps section: read from a local apps file or from KubeEdge's MetaServer (a real HTTP server on 127.0.0.1
serving a PodList here), with errors that say what to fix and never an exception."""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edgefleet.agent.apps import (
    MAX_APPS,
    FileAppSource,
    MetaServerAppSource,
    NoAppSource,
    PodList,
    image_tag,
    metaserver_answers,
    parse_apps_file,
    pod_state,
)
from edgefleet.messages import AppState
from tests.agent.doubles import FakeMetaServer, pod, serve_metaserver, waiting

# --- the apps file ---------------------------------------------------------------------------------------------


def test_json_apps_file(tmp_path: Path) -> None:
    path = tmp_path / "apps.json"
    path.write_text(
        json.dumps(
            {
                "apps": [
                    {"name": "scan-upload", "version": "2.4.1", "state": "running"},
                    {"name": "sorting-recognition", "version": "1.9.0", "state": "failed", "detail": "exit 137"},
                ]
            }
        )
    )
    report = FileAppSource(path).read()
    assert report.source == f"file:{path}"
    assert report.error is None
    assert report.apps == [
        AppState(name="scan-upload", version="2.4.1", state="running"),
        AppState(name="sorting-recognition", version="1.9.0", state="failed", detail="exit 137"),
    ]


def test_line_apps_file(tmp_path: Path) -> None:
    path = tmp_path / "apps.txt"
    path.write_text(
        "# written by the deploy script\n\nscan-upload 2.4.1 running\nlabel-print 0.3 stopped for maintenance\n"
    )
    assert FileAppSource(path).read().apps == [
        AppState(name="scan-upload", version="2.4.1", state="running"),
        AppState(name="label-print", version="0.3", state="stopped", detail="for maintenance"),
    ]


def test_a_rewritten_file_shows_at_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "apps.txt"
    path.write_text("scan-upload 2.4.1 running\n")
    source = FileAppSource(path)
    assert source.read().apps[0].version == "2.4.1"
    path.write_text("scan-upload 2.5.0 pending\n")
    assert source.read().apps[0] == AppState(name="scan-upload", version="2.5.0", state="pending")


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ('{"apps": [{"name": "a", "version": "1"}]}', "missing required field `state`"),
        ('{"apps": [{"name": "a", "version": "1", "state": "crashed"}]}', "$.apps[0].state"),
        ('{"apps": [{"name": "a", "version": "1", "state": "running"}], "extra": 1}', "unknown field `extra`"),
        ('{"apps": [', "not valid JSON"),
        ("scan-upload 2.4.1\n", "line 1"),
        ("ok 1 running\nscan-upload 2.4.1 crashed\n", "line 2: state 'crashed'"),
    ],
)
def test_malformed_file_gives_an_error_that_says_where(tmp_path: Path, content: str, words: str) -> None:
    path = tmp_path / "apps"
    path.write_text(content)
    report = FileAppSource(path).read()
    assert report.apps == []
    assert report.error is not None
    assert str(path) in report.error
    assert words in report.error
    assert len(report.error) <= 256


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    report = FileAppSource(tmp_path / "nope.json").read()
    assert report.error is not None
    assert "does not exist" in report.error
    assert "--apps-file" in report.error
    report = FileAppSource(tmp_path).read()  # a directory
    assert report.error is not None
    assert "cannot be read" in report.error
    binary = tmp_path / "binary"
    binary.write_bytes(b"\xff\xfe\x00")
    report = FileAppSource(binary).read()
    assert report.error is not None
    assert "UTF-8" in report.error


def test_a_huge_list_is_cut_with_a_note(tmp_path: Path) -> None:
    path = tmp_path / "apps.txt"
    path.write_text("".join(f"app-{i} 1.0 running\n" for i in range(MAX_APPS + 5)))
    report = FileAppSource(path).read()
    assert len(report.apps) == MAX_APPS
    assert report.error == f"{MAX_APPS + 5} apps found, only the first {MAX_APPS} are reported"


def test_long_fields_are_cut_to_fit_the_message() -> None:
    (app,) = parse_apps_file(f"{'n' * 300} {'v' * 300} running {'d' * 300}\n")
    assert len(app.name) == len(app.version) == len(app.detail or "") == 256


def test_a_changing_error_is_logged_once_each(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    source = FileAppSource(tmp_path / "apps.txt")
    for _ in range(3):
        source.read()
    (tmp_path / "apps.txt").write_text("a 1 running\n")
    source.read()
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["Failed to read apps of box", "Read apps of box again"]


def test_no_source() -> None:
    report = NoAppSource().read()
    assert report.source == "none"
    assert report.apps == []
    assert report.error is None


# --- KubeEdge MetaServer ---------------------------------------------------------------------------------------


@pytest.fixture
def metaserver() -> Iterator[tuple[str, type[FakeMetaServer]]]:
    with serve_metaserver() as served:
        yield served


def test_metaserver_pods_become_apps(metaserver: tuple[str, type[FakeMetaServer]]) -> None:
    url, handler = metaserver
    report = MetaServerAppSource(url).read()
    assert handler.paths == ["/api/v1/pods"]
    assert report.source == f"metaserver:{url}"
    assert report.error is None
    assert report.apps == [
        AppState(
            name="scan-upload", version="2.4.1", state="running", detail="pod default/scan-upload-7d9f8b6c5d-x2x4z"
        ),
        AppState(
            name="sorting-recognition",
            version="1.9.0-cuda12",  # no version label: the image tag
            state="failed",
            detail="pod default/sorting-recognition-5c6b7-abcde: container main: CrashLoopBackOff (restarts 7)",
        ),
        AppState(
            name="label-print",
            version="latest",
            state="pending",
            detail="pod default/label-print-0: container main: ContainerCreating",
        ),
        AppState(
            name="nightly-cleanup-28861",
            version="sha256:0123456789ab",
            state="completed",
            detail="pod default/nightly-cleanup-28861",
        ),
    ]


def test_metaserver_is_reached_directly_even_with_a_proxy_set(
    metaserver: tuple[str, type[FakeMetaServer]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("http_proxy", "http://127.0.0.1:9")
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")
    assert MetaServerAppSource(metaserver[0]).read().error is None


@pytest.mark.parametrize(
    ("status", "body", "words"),
    [
        (500, b"{}", "answered HTTP 500"),
        (200, b"<html>hello</html>", "sent no PodList"),
        (200, b'{"kind": "Status", "items": []}', "sent a Status"),
        (200, b'{"kind": "PodList", "items": [{"metadata": {"name": 5}}]}', "sent no PodList"),
    ],
)
def test_metaserver_answers_that_are_no_podlist(
    metaserver: tuple[str, type[FakeMetaServer]], status: int, body: bytes, words: str
) -> None:
    url, handler = metaserver
    handler.status = status
    handler.body = body
    report = MetaServerAppSource(url).read()
    assert report.apps == []
    assert report.error is not None
    assert words in report.error
    assert url in report.error


def test_metaserver_not_running() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: the connection is refused
        report = MetaServerAppSource(f"http://127.0.0.1:{port}").read()
        assert report.error is not None
        assert "cannot reach" in report.error
        assert "edgecore" in report.error
        assert not metaserver_answers(f"http://127.0.0.1:{port}")


def test_metaserver_that_never_answers_times_out() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)  # the kernel accepts the connection; nobody ever answers
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        assert metaserver_answers(url)
        report = MetaServerAppSource(url, timeout_s=0.2).read()
        assert report.error is not None
        assert "did not answer within 0.2 s" in report.error


def podlist(**kwargs: Any) -> PodList:
    import msgspec

    return msgspec.convert({"kind": "PodList", "items": [pod("p-1", **kwargs)]}, PodList)


@pytest.mark.parametrize(
    ("kwargs", "state", "detail"),
    [
        ({}, "running", None),
        (
            {"statuses": [{"name": "main", "ready": True, "restartCount": 3, "state": {"running": {}}}]},
            "running",
            "restarts 3",
        ),
        (
            {"statuses": [{"name": "main", "ready": False, "state": {"running": {}}}]},
            "pending",
            "container main is not ready",
        ),
        (
            {"phase": "Pending", "statuses": waiting("ImagePullBackOff")},
            "failed",
            "container main: ImagePullBackOff (restarts 0)",
        ),
        ({"phase": "Pending", "statuses": []}, "pending", None),
        ({"phase": "Failed"}, "failed", "pod failed"),
        ({"phase": "Succeeded"}, "completed", None),
        ({"phase": "Unknown"}, "unknown", "pod phase Unknown"),
        ({"deletionTimestamp": "2026-11-28T07:00:00Z"}, "stopped", "terminating"),
        (
            {"statuses": [{"name": "main", "state": {"terminated": {"exitCode": 137, "reason": "OOMKilled"}}}]},
            "failed",
            "container main exited with code 137 (OOMKilled)",
        ),
    ],
)
def test_pod_states(kwargs: dict[str, Any], state: str, detail: str | None) -> None:
    pods = podlist(**kwargs)
    assert pods.items is not None
    assert pod_state(pods.items[0]) == (state, detail)


@pytest.mark.parametrize(
    ("image", "tag"),
    [
        ("nginx", "latest"),
        ("nginx:1.25", "1.25"),
        ("registry.local:5000/ops/scan-upload", "latest"),
        ("registry.local:5000/ops/scan-upload:2.4.1", "2.4.1"),
        ("scan-upload:2.4.1@sha256:abcdef0123456789", "2.4.1"),
        ("busybox@sha256:abcdef0123456789", "sha256:abcdef012345"),
    ],
)
def test_image_tags(image: str, tag: str) -> None:
    assert image_tag(image) == tag

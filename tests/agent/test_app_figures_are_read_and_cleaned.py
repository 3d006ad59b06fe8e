"""The agent reads each app's health figures from the apps file or the app's own /metrics page: the Prometheus text
parser (table-driven and against pages it renders itself), the metric -> figure mapping, the cleaning that keeps
the wire's bounds, and the scrape through a real socket on 127.0.0.1, failures included."""

from __future__ import annotations

import copy
import math
import re
import threading
import urllib.request
from pathlib import Path
from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.agent.apps import (
    FIGURES_PORT_ANNOTATION,
    MAX_SCRAPES,
    FileAppSource,
    MetaServerAppSource,
    Pod,
    figures_url,
    parse_apps_file,
)
from edgefleet.agent.figures import (
    MAX_METRICS_BYTES,
    METRICS,
    MetricsParseError,
    Sample,
    clean_figures,
    figures_from_samples,
    parse_prometheus_text,
    scrape_figures,
)
from edgefleet.messages import MAX_FIGURES, AppState
from tests.agent.doubles import METRICS_PAGE, POD_LIST, serve_metaserver, serve_metrics
from tests.support.peers import free_port

PAGE = METRICS_PAGE


# --- the Prometheus text parser ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "samples"),
    [
        ("", []),
        ("# HELP x y\n# TYPE x gauge\n\n", []),
        ("x 1", [Sample("x", (), 1.0)]),
        ("x 1 1700000000000", [Sample("x", (), 1.0)]),
        ("  x\t2.5e-3  ", [Sample("x", (), 0.0025)]),
        ("ns:x_total 7", [Sample("ns:x_total", (), 7.0)]),
        ('x{a="b"} 1', [Sample("x", (("a", "b"),), 1.0)]),
        ('x{a="b",} 1', [Sample("x", (("a", "b"),), 1.0)]),
        ('x{a="b", c="d"} 1', [Sample("x", (("a", "b"), ("c", "d")), 1.0)]),
        ("x{} 1", [Sample("x", (), 1.0)]),
        ('x{a="q\\"u,o}te\\\\n\\n"} 1', [Sample("x", (("a", 'q"u,o}te\\n\n'),), 1.0)]),
        ("x +Inf", [Sample("x", (), math.inf)]),
        ("x -Inf", [Sample("x", (), -math.inf)]),
        ('x_bucket{le="+Inf"} 3', [Sample("x_bucket", (("le", "+Inf"),), 3.0)]),
    ],
)
def test_the_parser_reads_the_text_format(text: str, samples: list[Sample]) -> None:
    assert parse_prometheus_text(text) == samples


def test_the_parser_reads_nan() -> None:
    [sample] = parse_prometheus_text("x NaN")
    assert math.isnan(sample.value)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("x", "line 1: expected 'NAME[{LABELS}] VALUE [TIMESTAMP]'"),
        ("x 1 2 3", "line 1: expected"),
        ("ok 1\nx one", "line 2: 'one' is not a number"),
        ("1x 1", "line 1: '1x 1' does not start with a metric name"),
        ('x{a="b" 1', "line 1: expected , or } after label 'a'"),
        ('x{a="b} 1', "line 1: label 'a' has no closing quote"),
        ("x{a=b} 1", "line 1: expected =\" after label 'a'"),
        ('x{="b"} 1', "line 1: expected a label name at column 3"),
        ('x{a="\\t"} 1', "line 1: bad escape in label 'a'"),
        ('x{a="b"}1', "line 1: expected"),
    ],
)
def test_the_parser_names_the_bad_line(text: str, error: str) -> None:
    with pytest.raises(
        MetricsParseError, match="^" + error.replace("{", "\\{").replace("}", "\\}").replace("[", "\\[")
    ):
        parse_prometheus_text(text)


NAMES = st.from_regex(r"[a-zA-Z_:][a-zA-Z0-9_:]{0,20}", fullmatch=True)
LABEL_NAMES = st.from_regex(r"[a-zA-Z_][a-zA-Z0-9_]{0,10}", fullmatch=True)
LABEL_VALUES = st.text(st.characters(codec="utf-8"), max_size=12)
VALUES = st.floats(allow_nan=False)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _render(sample: Sample) -> str:
    labels = ",".join(f'{k}="{_escape(v)}"' for k, v in sample.labels)
    value = {math.inf: "+Inf", -math.inf: "-Inf"}.get(sample.value, repr(sample.value))
    return f"{sample.name}{{{labels}}} {value}" if sample.labels else f"{sample.name} {value}"


@given(
    st.lists(
        st.builds(
            Sample,
            NAMES,
            st.lists(st.tuples(LABEL_NAMES, LABEL_VALUES), max_size=3).map(tuple),
            VALUES,
        ),
        max_size=6,
    ),
    st.sampled_from(["\n", "\r\n"]),
)
def test_the_parser_reads_back_any_page_in_the_format(samples: list[Sample], newline: str) -> None:
    page = newline.join(["# HELP a page", *(_render(s) for s in samples), "# EOF"])
    assert parse_prometheus_text(page) == samples


# --- metrics -> figures --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("page", "figures"),
    [
        (PAGE, {"upload_backlog": 42.0, "error_rate_percent": 0.42}),
        ("sorting_recognition_fps 25\n", {"fps": 25.0}),
        (
            'sorting_recognition_fps{camera="1"} 24\nsorting_recognition_fps{camera="2"} 28\n'
            'sorting_recognition_inference_latency_seconds{camera="1"} 0.030\n'
            'sorting_recognition_inference_latency_seconds{camera="2"} 0.050\n',
            {"fps": 26.0, "inference_latency_ms": 40.0},
        ),
        ("sorting_recognition_fps NaN\n", {}),
        ('sorting_recognition_fps{c="1"} NaN\nsorting_recognition_fps{c="2"} 20\n', {"fps": 20.0}),
        ("process_cpu_seconds_total 3\n", {}),
    ],
)
def test_known_metrics_become_figures_in_their_units(page: str, figures: dict[str, float]) -> None:
    got = figures_from_samples(parse_prometheus_text(page))
    assert got.keys() == figures.keys()
    for name, value in figures.items():
        assert got[name] == pytest.approx(value)


def test_the_mapping_gives_the_four_figures_the_health_gate_reads() -> None:
    from edgefleet.cloud.rollouts.gates import FIGURES

    assert {m.figure for m in METRICS.values()} == {f.name for figures in FIGURES.values() for f in figures}


# --- cleaning ------------------------------------------------------------------------------------------------

_app_decoder = msgspec.json.Decoder(AppState)


@given(
    st.dictionaries(
        st.text(max_size=45) | st.from_regex(r"[a-z][a-z0-9_]{0,44}", fullmatch=True),
        st.floats() | st.integers() | st.booleans() | st.text(max_size=3) | st.none(),
        max_size=12,
    )
)
def test_cleaned_figures_always_pass_the_controllers_decoder(raw: dict[str, Any]) -> None:
    figures, note = clean_figures(raw)
    app = AppState(name="a", version="1", state="running", figures=figures)
    assert _app_decoder.decode(msgspec.json.encode(app)) == app
    kept = figures or {}
    assert all(raw[name] == value for name, value in kept.items())
    assert (note is None) == (len(kept) == len(raw)), "a note exactly when something was dropped"
    for name in set(raw) - set(kept):
        assert note is not None
        good_name = re.fullmatch(r"[a-z][a-z0-9_]{0,39}", name) is not None
        assert (name if good_name else repr(name[:40])) in note


def test_past_the_eighth_figure_the_first_by_name_are_kept() -> None:
    figures, note = clean_figures({f"f{i}": float(i) for i in range(10)})
    assert figures == {f"f{i}": float(i) for i in range(MAX_FIGURES)}
    assert note == "figures dropped: f8 (more than 8 figures), f9 (more than 8 figures)"


def test_nothing_to_keep_is_no_figures() -> None:
    assert clean_figures({}) == (None, None)
    assert clean_figures({"fps": math.nan}) == (
        None,
        "figures dropped: fps (nan is not a finite number of at most 1e+15)",
    )


# --- the apps file -------------------------------------------------------------------------------------------


def test_the_apps_file_gives_figures_per_app(tmp_path: Path) -> None:
    path = tmp_path / "apps.json"
    path.write_text(
        '{"apps": [{"name": "scan-upload", "version": "2.4.1", "state": "running",'
        ' "figures": {"upload_backlog": 84, "error_rate_percent": 0.31}},'
        ' {"name": "label-print", "version": "0.3.2", "state": "stopped"}]}'
    )
    report = FileAppSource(path).read()
    assert report.error is None
    assert [(a.name, a.figures, a.detail) for a in report.apps] == [
        ("scan-upload", {"upload_backlog": 84.0, "error_rate_percent": 0.31}, None),
        ("label-print", None, None),
    ]


def test_bad_figures_in_the_apps_file_are_dropped_with_a_note_and_the_rest_read() -> None:
    [app] = parse_apps_file(
        '{"apps": [{"name": "sr", "version": "1", "state": "running", "detail": "line 3",'
        ' "figures": {"fps": 25, "Latency": 40, "backlog": "12", "ok": null}}]}'
    )
    assert app.figures == {"fps": 25.0}
    assert app.detail == (
        "line 3; figures dropped: 'Latency' (name not [a-z][a-z0-9_]*, at most 40 characters), backlog (not a number), "
        "ok (not a number)"
    )


def test_figures_that_are_not_an_object_make_the_file_unreadable_with_the_path() -> None:
    with pytest.raises(ValueError, match=r"\$\.apps\[0\]\.figures"):
        parse_apps_file('{"apps": [{"name": "sr", "version": "1", "state": "running", "figures": [25]}]}')


# --- where a pod serves its figures --------------------------------------------------------------------------


def _pod(
    *, annotations: dict[str, str] | None = None, ports: list[dict[str, Any]] | None = None, ip: str | None = "10.0.0.7"
) -> Pod:
    raw: dict[str, Any] = {
        "metadata": {"name": "p", "annotations": annotations},
        "spec": {"containers": [{"name": "c", "image": "x:1", "ports": ports}]},
        "status": {"phase": "Running", "podIP": ip},
    }
    return msgspec.convert(raw, Pod)


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        (_pod(), (None, None)),
        (_pod(annotations={FIGURES_PORT_ANNOTATION: "9102"}), ("http://10.0.0.7:9102/metrics", None)),
        (_pod(ports=[{"name": "metrics", "containerPort": 8000}]), ("http://10.0.0.7:8000/metrics", None)),
        (_pod(ports=[{"name": "http", "containerPort": 8080}]), (None, None)),
        (
            _pod(annotations={FIGURES_PORT_ANNOTATION: "9102"}, ports=[{"name": "metrics", "containerPort": 8000}]),
            ("http://10.0.0.7:9102/metrics", None),
        ),
        (_pod(annotations={FIGURES_PORT_ANNOTATION: "9102"}, ip="fd00::7"), ("http://[fd00::7]:9102/metrics", None)),
        (_pod(annotations={FIGURES_PORT_ANNOTATION: "9102"}, ip=None), (None, "figures: the pod has no IP yet")),
        (
            _pod(annotations={FIGURES_PORT_ANNOTATION: "metrics"}),
            (None, "figures: annotation edgefleet.io/figures-port='metrics' is not a port number"),
        ),
        (
            _pod(annotations={FIGURES_PORT_ANNOTATION: "70000"}),
            (None, "figures: annotation edgefleet.io/figures-port='70000' is not a port number"),
        ),
    ],
)
def test_a_pod_names_where_its_figures_are(pod: Pod, expected: tuple[str | None, str | None]) -> None:
    assert figures_url(pod) == expected


# --- scraping, through real sockets --------------------------------------------------------------------------


OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def test_a_scrape_reads_the_figures() -> None:
    with serve_metrics() as (port, handler):
        figures, note = scrape_figures(f"http://127.0.0.1:{port}/metrics", opener=OPENER)
    assert figures == {"upload_backlog": 42.0, "error_rate_percent": pytest.approx(0.42)}
    assert note is None
    assert handler.paths == ["/metrics"]


@pytest.mark.parametrize(
    ("attributes", "why"),
    [
        ({"status": 503}, "answered HTTP 503"),
        ({"body": b"<html>not metrics</html>"}, "is not Prometheus text (line 1:"),
        ({"body": b"\xff\xfe"}, "sent no UTF-8 text"),
        ({"body": b"go_goroutines 12\n"}, "has none of scan_upload_backlog, "),
        ({"hold": threading.Event()}, "did not answer within 0.2 s"),
        ({"body": b"x 1\n" * (MAX_METRICS_BYTES // 4 + 1)}, f"sent more than {MAX_METRICS_BYTES} bytes"),
    ],
)
def test_a_failed_scrape_gives_no_figures_and_says_why(attributes: dict[str, Any], why: str) -> None:
    with serve_metrics(**attributes) as (port, _):
        url = f"http://127.0.0.1:{port}/metrics"
        figures, note = scrape_figures(url, opener=OPENER, timeout_s=0.2)
    assert figures is None
    assert note is not None
    assert note.startswith(f"figures: {url} ")
    assert why in note


def test_a_scrape_of_nothing_listening_says_it_cannot_reach_it() -> None:
    url = f"http://127.0.0.1:{free_port()}/metrics"
    figures, note = scrape_figures(url, opener=OPENER)
    assert figures is None
    assert note == f"figures: cannot reach {url}: Connection refused"


def _pods_on(ip: str, ports: list[int | None], *, state: str = "running") -> dict[str, Any]:
    """POD_LIST's running scan-upload pod, once per port: annotated with it (None: no metrics port)."""
    base = next(p for p in POD_LIST["items"] if p["metadata"]["name"].startswith("scan-upload"))
    pods = []
    for i, port in enumerate(ports):
        pod = copy.deepcopy(base)
        pod["metadata"]["name"] = f"scan-upload-{i}"
        if port is not None:
            pod["metadata"]["annotations"] = {FIGURES_PORT_ANNOTATION: str(port)}
        pod["status"]["podIP"] = ip
        if state != "running":
            pod["status"]["phase"] = "Pending"
        pods.append(pod)
    return {"kind": "PodList", "items": pods}


def test_the_metaserver_source_scrapes_each_running_pods_figures() -> None:
    with serve_metrics() as (port, handler):
        down = free_port()
        with serve_metaserver(_pods_on("127.0.0.1", [port, None, down])) as (url, _):
            report = MetaServerAppSource(url).read()
    assert report.error is None
    scraped, plain, unreachable = report.apps
    assert scraped.figures == {"upload_backlog": 42.0, "error_rate_percent": pytest.approx(0.42)}
    assert scraped.detail == "pod default/scan-upload-0"
    assert (plain.figures, plain.detail) == (None, "pod default/scan-upload-1")
    assert unreachable.figures is None
    assert unreachable.detail == (
        f"pod default/scan-upload-2; figures: cannot reach http://127.0.0.1:{down}/metrics: Connection refused"
    )
    assert handler.paths == ["/metrics"]


def test_a_pod_that_is_not_running_is_not_scraped() -> None:
    with (
        serve_metrics() as (port, handler),
        serve_metaserver(_pods_on("127.0.0.1", [port], state="pending")) as (url, _),
    ):
        [app] = MetaServerAppSource(url).read().apps
    assert (app.state, app.figures) == ("pending", None)
    assert handler.paths == []


def test_at_most_a_few_pods_are_scraped_per_heartbeat() -> None:
    with (
        serve_metrics() as (port, handler),
        serve_metaserver(_pods_on("127.0.0.1", [port] * (MAX_SCRAPES + 2))) as (url, _),
    ):
        apps = MetaServerAppSource(url).read().apps
    assert [a.figures is not None for a in apps] == [True] * MAX_SCRAPES + [False, False]
    assert apps[-1].detail is not None
    assert apps[-1].detail.endswith(f"figures: not read, at most {MAX_SCRAPES} pods are scraped per heartbeat")
    assert len(handler.paths) == MAX_SCRAPES

"""An app's health figures (``AppState.figures``): read from the app's own Prometheus endpoint, or given in the apps
file, and cleaned so that what goes on the wire always passes the controller's decoder.

- ``parse_prometheus_text`` reads the Prometheus text exposition format (version 0.0.4): the sample lines, with
  their labels; comments, ``# HELP`` and ``# TYPE`` lines are skipped. Small on purpose: the agent needs a few
  gauges and counters, and ``prometheus_client`` is not among the agent's dependencies (docs/decisions.md).
- ``figures_from_samples`` maps the apps' metric names to figure names and units (``METRICS``).
- ``clean_figures`` keeps what the wire accepts (``edgefleet.messages.Figures``) and names what it dropped.
- ``scrape_figures`` does the one HTTP GET (stdlib urllib, a short timeout) and never raises.

Called by ``edgefleet.agent.apps`` for the apps file and the MetaServer's pods, once per app per heartbeat.
"""

from __future__ import annotations

import math
import re
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final, Literal

from edgefleet.messages import FIGURE_NAME_PATTERN, MAX_FIGURE_NAME, MAX_FIGURE_VALUE, MAX_FIGURES

# The app is on this box (or its pod on this node): it answers in milliseconds or is stuck, and a stuck app must
# not push the heartbeat off its schedule. A box runs a handful of apps, so a heartbeat waits at most a few of these.
SCRAPE_TIMEOUT_S: Final = 0.5
# A /metrics page of an app is tens of KB; Go and Python runtimes' own metrics included, well under 1 MB.
MAX_METRICS_BYTES: Final = 1024 * 1024
METRICS_PATH: Final = "/metrics"

Combine = Literal["sum", "mean"]


@dataclass(frozen=True, slots=True)
class MetricFigure:
    """How one Prometheus metric becomes a figure: the figure's name, the factor to its unit, and how several
    series of the metric (one per camera, one per upload queue) combine into one figure."""

    figure: str
    factor: float = 1.0
    combine: Combine = "mean"


# The metrics the apps expose, and the figures they give (docs/protocol.md, "App health figures"). A backlog is
# the sum of the app's queues; rates, fps and latency are the mean of their series.
METRICS: Final[Mapping[str, MetricFigure]] = {
    "scan_upload_backlog": MetricFigure("upload_backlog", combine="sum"),
    "scan_upload_errors_ratio": MetricFigure("error_rate_percent", factor=100.0),
    "sorting_recognition_fps": MetricFigure("fps"),
    "sorting_recognition_inference_latency_seconds": MetricFigure("inference_latency_ms", factor=1000.0),
}

_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_FIGURE_NAME = re.compile(FIGURE_NAME_PATTERN)
_ESCAPES: Final = {"\\": "\\", '"': '"', "n": "\n"}
_SPECIAL_VALUES: Final = {"NaN": math.nan, "+Inf": math.inf, "Inf": math.inf, "-Inf": -math.inf}


class MetricsParseError(ValueError):
    """A line of a /metrics page that is not the Prometheus text format; the message names the line."""


@dataclass(frozen=True, slots=True)
class Sample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _parse_labels(text: str, start: int, number: int) -> tuple[tuple[tuple[str, str], ...], int]:
    """The labels of ``{a="x",b="y"}`` starting after the ``{`` at ``start``; returns them and the index after ``}``."""
    labels: list[tuple[str, str]] = []
    i = start
    while True:
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == "}":
            return tuple(labels), i + 1
        match = _LABEL_NAME.match(text, i)
        if match is None:
            raise MetricsParseError(f"line {number}: expected a label name at column {i + 1}")
        name = match.group()
        i = match.end()
        if text[i : i + 2] != '="':
            raise MetricsParseError(f'line {number}: expected =" after label {name!r}')
        i += 2
        value: list[str] = []
        while True:
            if i >= len(text):
                raise MetricsParseError(f"line {number}: label {name!r} has no closing quote")
            ch = text[i]
            if ch == '"':
                i += 1
                break
            if ch == "\\":
                escaped = _ESCAPES.get(text[i + 1 : i + 2])
                if escaped is None:
                    raise MetricsParseError(f"line {number}: bad escape in label {name!r}")
                value.append(escaped)
                i += 2
                continue
            value.append(ch)
            i += 1
        labels.append((name, "".join(value)))
        while i < len(text) and text[i] in " \t":
            i += 1
        if i < len(text) and text[i] == ",":
            i += 1
        elif i < len(text) and text[i] == "}":
            return tuple(labels), i + 1
        else:
            raise MetricsParseError(f"line {number}: expected , or }} after label {name!r}")


def _parse_value(text: str, number: int) -> float:
    if text in _SPECIAL_VALUES:
        return _SPECIAL_VALUES[text]
    try:
        return float(text)
    except ValueError:
        raise MetricsParseError(f"line {number}: {text[:40]!r} is not a number") from None


def parse_prometheus_text(text: str) -> list[Sample]:
    """Every sample line of a Prometheus text page, in order; raises MetricsParseError naming the first bad line."""
    samples = []
    # Lines end at "\n" only (the format's rule): a label value may hold any other character, "\r" included.
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        match = _NAME.match(line)
        if match is None:
            raise MetricsParseError(f"line {number}: {line[:40]!r} does not start with a metric name")
        name = match.group()
        i = match.end()
        labels: tuple[tuple[str, str], ...] = ()
        if i < len(line) and line[i] == "{":
            labels, i = _parse_labels(line, i + 1, number)
        rest = line[i:].split()
        if not rest or len(rest) > 2 or (i < len(line) and line[i] not in " \t"):
            raise MetricsParseError(f"line {number}: expected 'NAME[{{LABELS}}] VALUE [TIMESTAMP]'")
        samples.append(Sample(name, labels, _parse_value(rest[0], number)))
    return samples


def figures_from_samples(samples: Iterable[Sample], metrics: Mapping[str, MetricFigure] = METRICS) -> dict[str, float]:
    """The figures the known metrics give; unknown metrics and non-finite samples are ignored (a NaN gauge is a
    gauge that has not been set yet, not a figure)."""
    values: dict[str, list[float]] = {}
    for sample in samples:
        if sample.name in metrics and math.isfinite(sample.value):
            values.setdefault(sample.name, []).append(sample.value)
    figures = {}
    for name, found in values.items():
        how = metrics[name]
        total = math.fsum(found)
        figures[how.figure] = (total if how.combine == "sum" else total / len(found)) * how.factor
    return figures


def clean_figures(raw: Mapping[str, object]) -> tuple[dict[str, float] | None, str | None]:
    """The figures the wire accepts (``messages.Figures``: names ``[a-z][a-z0-9_]*``, finite numbers, at most
    MAX_FIGURES, the first by name kept), and a note naming what was dropped (None when nothing was). An empty
    result is None: no figures."""
    kept: dict[str, float] = {}
    dropped: list[str] = []
    for name in sorted(raw, key=str):
        value = raw[name]
        shown = str(name)[:MAX_FIGURE_NAME]
        if not isinstance(name, str) or len(name) > MAX_FIGURE_NAME or not _FIGURE_NAME.fullmatch(name):
            dropped.append(f"{shown!r} (name not [a-z][a-z0-9_]*, at most {MAX_FIGURE_NAME} characters)")
        elif isinstance(value, bool) or not isinstance(value, int | float):
            dropped.append(f"{shown} (not a number)")
        elif not math.isfinite(value) or abs(value) > MAX_FIGURE_VALUE:
            dropped.append(f"{shown} ({value!r} is not a finite number of at most {MAX_FIGURE_VALUE:g})")
        elif len(kept) >= MAX_FIGURES:
            dropped.append(f"{shown} (more than {MAX_FIGURES} figures)")
        else:
            kept[name] = float(value)
    note = f"figures dropped: {', '.join(dropped)}" if dropped else None
    return (kept or None), note


def scrape_figures(
    url: str, *, opener: urllib.request.OpenerDirector, timeout_s: float = SCRAPE_TIMEOUT_S
) -> tuple[dict[str, float] | None, str | None]:
    """GET the app's /metrics page at ``url`` and read its figures; (figures, None) or (None, why not). Never
    raises: a scrape that fails leaves the app without figures and the heartbeat goes out as usual."""
    request = urllib.request.Request(url, headers={"Accept": "text/plain"})
    try:
        with opener.open(request, timeout=timeout_s) as response:
            body = response.read(MAX_METRICS_BYTES + 1)
    except urllib.error.HTTPError as exc:
        return None, f"figures: {url} answered HTTP {exc.code}"
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, TimeoutError):
            return None, f"figures: {url} did not answer within {timeout_s} s"
        return None, f"figures: cannot reach {url}: {getattr(exc.reason, 'strerror', None) or exc.reason}"
    except TimeoutError:
        return None, f"figures: {url} did not answer within {timeout_s} s"
    except (OSError, ValueError) as exc:
        return None, f"figures: cannot read {url}: {exc}"
    if len(body) > MAX_METRICS_BYTES:
        return None, f"figures: {url} sent more than {MAX_METRICS_BYTES} bytes"
    try:
        samples = parse_prometheus_text(body.decode("utf-8"))
    except UnicodeDecodeError:
        return None, f"figures: {url} sent no UTF-8 text"
    except MetricsParseError as exc:
        return None, f"figures: {url} is not Prometheus text ({exc})"
    figures, note = clean_figures(figures_from_samples(samples))
    if figures is None:
        return None, note or f"figures: {url} has none of {', '.join(METRICS)}"
    return figures, note

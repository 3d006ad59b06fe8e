"""The health gate's current figures of a site: per version, the mean of each figure over the site's boxes that
run it (``figures.mean_figures``, pure, table- and property-tested), read from the live fleet's latest heartbeats
(``facts.site_figures``): other sites, other apps, apps that are not running and, when asked, offline boxes are
left out."""

from __future__ import annotations

import math
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st
from msgspec.structs import replace

from edgefleet.cloud.fleet import FleetState, apply_heartbeat
from edgefleet.cloud.rollouts.facts import site_figures
from edgefleet.cloud.rollouts.figures import mean_figures
from edgefleet.ids import BoxId, SiteId
from edgefleet.messages import AppReport, AppRunState, AppState, decode_heartbeat, encode
from tests.cloud.builders import BOX, BOX_2, OTHER_BOX, OTHER_SITE, SITE, T0, heartbeat, inventory


def _app(version: str, figures: dict[str, float] | None, state: AppRunState = "running", name: str = "sr") -> AppState:
    return AppState(name=name, version=version, state=state, figures=figures)


@pytest.mark.parametrize(
    ("apps", "expected"),
    [
        ([], {}),
        ([_app("1", None)], {}),
        ([_app("1", {})], {}),
        ([_app("1", {"fps": 20.0}), _app("1", {"fps": 30.0})], {"1": {"fps": 25.0}}),
        (
            [_app("1", {"fps": 20.0}), _app("2", {"fps": 10.0, "inference_latency_ms": 80.0})],
            {"1": {"fps": 20.0}, "2": {"fps": 10.0, "inference_latency_ms": 80.0}},
        ),
        (
            [_app("1", {"fps": 20.0, "inference_latency_ms": 40.0}), _app("1", {"fps": 30.0})],
            {"1": {"fps": 25.0, "inference_latency_ms": 40.0}},
        ),
        ([_app("1", {"fps": 20.0}), _app("1", {"fps": 2.0}, state="pending")], {"1": {"fps": 20.0}}),
        ([_app("1", {"fps": 2.0}, state="failed")], {}),
    ],
)
def test_figures_are_averaged_per_version_over_running_apps(
    apps: list[AppState], expected: dict[str, dict[str, float]]
) -> None:
    assert mean_figures(apps) == expected


FIGURE = st.sampled_from(["fps", "inference_latency_ms", "upload_backlog"])
APPS = st.lists(
    st.builds(
        _app,
        st.sampled_from(["1.0", "1.1", "2.0"]),
        st.none() | st.dictionaries(FIGURE, st.floats(min_value=-1e15, max_value=1e15), max_size=3),
        st.sampled_from(["running", "running", "failed", "pending"]),
    ),
    max_size=12,
)


@given(APPS, st.randoms(use_true_random=False))
def test_each_mean_lies_within_what_the_boxes_said_whatever_their_order(
    apps: list[AppState], rnd: random.Random
) -> None:
    result = mean_figures(apps)
    counted = [a for a in apps if a.state == "running" and a.figures]
    assert set(result) == {a.version for a in counted}
    for version, figures in result.items():
        for name, mean in figures.items():
            said = [a.figures[name] for a in counted if a.version == version and a.figures and name in a.figures]
            assert said, "a figure nobody reported is never made up"
            assert min(said) - 1e-6 * abs(min(said)) <= mean <= max(said) + 1e-6 * abs(max(said))
            assert math.isclose(mean, math.fsum(said) / len(said))
        assert set(figures) == {n for a in counted if a.version == version for n in (a.figures or {})}
    shuffled = apps[:]
    rnd.shuffle(shuffled)
    again = mean_figures(shuffled)
    assert again.keys() == result.keys()
    for version, figures in result.items():
        assert again[version] == pytest.approx(figures)


def _beat(state: FleetState, box: str, site: str, apps: list[AppState], *, at: float, seq: int = 1) -> None:
    sent = replace(heartbeat(seq, box=box, site=site, sent_at=at), apps=AppReport(source="x", apps=apps))
    received = decode_heartbeat(encode(sent))  # through the wire, as the ingest receives it
    outcome = apply_heartbeat(state.boxes[BoxId(box)], received, received_at=at)
    assert outcome == "accepted"


def test_a_sites_figures_come_from_its_boxes_latest_heartbeats() -> None:
    state = FleetState.for_inventory(inventory())
    _beat(state, BOX, SITE, [_app("3.5.0", {"fps": 20.0}, name="sorting-recognition")], at=T0)
    _beat(
        state,
        BOX_2,
        SITE,
        [
            _app("3.5.0", {"fps": 30.0}, name="sorting-recognition"),
            _app("1.13.1", {"upload_backlog": 50.0}, name="scan-upload"),
        ],
        at=T0 + 100,
    )
    _beat(state, OTHER_BOX, OTHER_SITE, [_app("3.5.0", {"fps": 1.0}, name="sorting-recognition")], at=T0 + 100)

    assert site_figures(state, SITE, "sorting-recognition") == {"3.5.0": {"fps": 25.0}}
    assert site_figures(state, SITE, "scan-upload") == {"1.13.1": {"upload_backlog": 50.0}}
    assert site_figures(state, OTHER_SITE, "sorting-recognition") == {"3.5.0": {"fps": 1.0}}
    assert site_figures(state, SITE, "label-print") == {}
    assert site_figures(state, SiteId("nowhere"), "sorting-recognition") == {}
    # BOX last beat at T0: offline by T0 + 105 (3 missed beats of 10 s), so only BOX_2 counts then.
    assert site_figures(state, SITE, "sorting-recognition", now=T0 + 105) == {"3.5.0": {"fps": 30.0}}

    _beat(state, BOX_2, SITE, [_app("3.6.0", {"fps": 12.0}, name="sorting-recognition")], at=T0 + 110, seq=2)
    assert site_figures(state, SITE, "sorting-recognition") == {"3.5.0": {"fps": 20.0}, "3.6.0": {"fps": 12.0}}, (
        "the latest heartbeat of each box replaces its earlier figures"
    )

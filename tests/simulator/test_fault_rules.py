"""The pure fault model: which requests are refused and why, targeting (box, site), expiry on a clock we move
by hand, clearing, and what the active faults mean for a box."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from edgefleet.ids import BoxId, ClusterId, SiteId
from edgefleet.inventory import Inventory, load_inventory
from simulator.faults import FaultRejected, FaultRequest, Faults, image_app_version
from tests.simulator.fleets import write_inventory
from tests.support.clusters import TEST_HOST

EDGE, GPU, GPU2 = BoxId("site-01-edge-01"), BoxId("site-01-gpu-01"), BoxId("site-01-gpu-02")
OTHER = BoxId("site-02-gpu-01")
SITE, SITE_B = SiteId("site-01"), SiteId("site-02")


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    directory: Path = tmp_path_factory.mktemp("sites")
    write_inventory(directory, sites=2, boxes_per_site=3, central=True)
    return load_inventory(directory)


@pytest.mark.parametrize(
    ("request_", "reason", "field", "words"),
    [
        (FaultRequest(kind="melt", box=GPU), "invalid", "kind", "unknown fault kind 'melt'"),
        (FaultRequest(kind="stop"), "invalid", "box", "needs a box"),
        (FaultRequest(kind="stop", box="nope-01"), "not-found", "box", "no box 'nope-01'"),
        (FaultRequest(kind="stop", box=GPU, site="site-02"), "invalid", "site", "is at site 'site-01'"),
        (FaultRequest(kind="stop", box=GPU, seconds=0), "invalid", "seconds", "more than 0"),
        (FaultRequest(kind="stop", box=GPU, seconds=float("nan")), "invalid", "seconds", "got nan"),
        (FaultRequest(kind="stop", box=GPU, gpu=0), "invalid", "gpu", "'gpu' does not apply to a stop fault"),
        (FaultRequest(kind="drop", box=GPU, gpu=0), "invalid", "gpu", "does not apply to a drop"),
        (FaultRequest(kind="cut", site=SITE), "invalid", "seconds", "needs a duration"),
        (FaultRequest(kind="cut", seconds=5), "invalid", "site", "needs a site"),
        (FaultRequest(kind="cut", site="mars", seconds=5), "not-found", "site", "no site 'mars'"),
        (FaultRequest(kind="cut", site=SITE, box=GPU, seconds=5), "invalid", "box", "does not apply to a cut"),
        (FaultRequest(kind="overheat", box=EDGE), "invalid", "box", "has no GPU"),
        (FaultRequest(kind="overheat", box=GPU, gpu=1), "invalid", "gpu", "has 1 GPU(s)"),
        (FaultRequest(kind="overheat", box=GPU2, gpu=-1), "invalid", "gpu", "from 0 to 1"),
        (FaultRequest(kind="overheat", box=GPU, temperature_c=400), "invalid", "temperature_c", "at most 150"),
        (FaultRequest(kind="skew", box=GPU), "invalid", "offset_s", "needs an offset"),
        (FaultRequest(kind="skew", box=GPU, offset_s=1e12), "invalid", "offset_s", "at most"),
        (FaultRequest(kind="malformed", box=GPU, count=0), "invalid", "count", "from 1 to"),
        (FaultRequest(kind="malformed", box=GPU, variant="xml"), "invalid", "variant", "unknown variant 'xml'"),
    ],
)
def test_bad_requests_are_refused_saying_which_field_and_why(
    fleet: Inventory, request_: FaultRequest, reason: str, field: str, words: str
) -> None:
    with pytest.raises(FaultRejected) as caught:
        Faults(fleet).add(request_, now=0.0)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert words in caught.value.message


def test_defaults_fill_what_a_kind_does_not_need_said(fleet: Inventory) -> None:
    faults = Faults(fleet)
    hot = faults.add(FaultRequest(kind="overheat", box=GPU), now=0.0)
    garbage = faults.add(FaultRequest(kind="malformed", box=GPU), now=0.0)
    assert (hot.gpu, hot.temperature_c, hot.expires_at) == (0, 95.0, None)
    assert (garbage.remaining, garbage.variant) == (1, "mixed")
    assert hot.site == SITE


def test_a_drop_gets_an_id_but_is_not_kept(fleet: Inventory) -> None:
    faults = Faults(fleet)
    drop = faults.add(FaultRequest(kind="drop", box=GPU), now=0.0)
    assert drop.id == "drop-1"
    assert faults.active(0.0) == []


def test_faults_end_on_time_and_expire_hands_them_back(fleet: Inventory) -> None:
    clock = FakeClock()
    faults = Faults(fleet)
    stop = faults.add(FaultRequest(kind="stop", box=GPU, seconds=10), now=clock.monotonic())
    faults.add(FaultRequest(kind="stop", box=EDGE), now=clock.monotonic())
    clock.advance(9.9)
    assert faults.is_stopped(GPU, clock.monotonic())
    assert faults.expire(clock.monotonic()) == []
    clock.advance(0.1)
    assert not faults.is_stopped(GPU, clock.monotonic()), "inactive at its end even before expire() runs"
    assert faults.expire(clock.monotonic()) == [stop]
    assert [f.box for f in faults.active(clock.monotonic())] == [EDGE]
    clock.advance(1e6)
    assert faults.is_stopped(EDGE, clock.monotonic()), "no duration: until cleared"


def test_a_cut_covers_its_site_only_and_the_latest_end_counts(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="cut", site=SITE, seconds=5), now=0.0)
    faults.add(FaultRequest(kind="cut", site=SITE, seconds=20), now=10.0)
    assert faults.is_cut(SITE, 4.9)
    assert not faults.is_cut(SITE_B, 4.9)
    assert not faults.is_cut(SITE, 7.0)
    assert faults.is_cut(SITE, 29.9)
    assert not faults.is_cut(SITE, 30.0)


def test_overheat_and_skew_apply_to_their_box_and_the_later_fault_wins(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="overheat", box=GPU2, gpu=1, temperature_c=96), now=0.0)
    faults.add(FaultRequest(kind="overheat", box=GPU2, gpu=1, temperature_c=101), now=1.0)
    faults.add(FaultRequest(kind="skew", box=GPU, offset_s=30), now=0.0)
    faults.add(FaultRequest(kind="skew", box=GPU, offset_s=-5, seconds=10), now=1.0)
    assert faults.overheat_of(GPU2, 2.0) == {1: 101.0}
    assert faults.overheat_of(GPU, 2.0) == {}
    assert faults.skew_of(GPU, 2.0) == -5.0
    assert faults.skew_of(GPU, 11.0) == 30.0
    assert faults.skew_of(OTHER, 2.0) == 0.0


def test_malformed_hands_out_its_count_in_variant_order_then_ends(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="malformed", box=GPU, count=5), now=0.0)
    taken = [faults.take_malformed(GPU, 0.0) for _ in range(6)]
    assert taken == ["random-bytes", "wrong-shape", "wrong-schema", "other-box", "random-bytes", None]
    assert faults.take_malformed(EDGE, 0.0) is None
    assert [f.kind for f in faults.expire(0.0)] == ["malformed"]


def test_clear_by_id_box_site_or_all(fleet: Inventory) -> None:
    faults = Faults(fleet)
    a = faults.add(FaultRequest(kind="stop", box=GPU), now=0.0)
    b = faults.add(FaultRequest(kind="skew", box=GPU, offset_s=3), now=0.0)
    c = faults.add(FaultRequest(kind="cut", site=SITE_B, seconds=60), now=0.0)
    d = faults.add(FaultRequest(kind="stop", box=EDGE), now=0.0)
    with pytest.raises(FaultRejected, match="no active fault 'stop-99'"):
        faults.clear(fault_id="stop-99")
    with pytest.raises(FaultRejected, match="no box 'ghost'"):
        faults.clear(box="ghost")
    assert faults.clear(fault_id=a.id) == [a]
    assert faults.clear(box=GPU) == [b]
    assert faults.clear(site=SITE_B) == [c]
    assert faults.clear() == [d]
    assert faults.active(0.0) == []


times = st.floats(min_value=0, max_value=1e6, allow_nan=False)
durations = st.one_of(st.none(), st.floats(min_value=0.001, max_value=86_400, allow_nan=False))


@given(start=times, seconds=durations, later=times)
def test_a_fault_is_active_exactly_from_its_start_until_its_end(
    fleet: Inventory, start: float, seconds: float | None, later: float
) -> None:
    faults = Faults(fleet)
    fault = faults.add(FaultRequest(kind="stop", box=GPU, seconds=seconds), now=start)
    now = start + later
    expected = seconds is None or now < start + seconds
    assert faults.is_stopped(GPU, now) is expected
    assert (fault in faults.expire(now)) is not expected


@given(st.lists(st.sampled_from([EDGE, GPU, GPU2, OTHER]), max_size=12))
def test_stop_faults_touch_only_their_boxes(fleet: Inventory, boxes: list[BoxId]) -> None:
    faults = Faults(fleet)
    for box in boxes:
        faults.add(FaultRequest(kind="stop", box=box), now=0.0)
    for box in fleet.boxes:
        assert faults.is_stopped(box, 1.0) is (box in boxes)
    assert len(faults.clear()) == len(boxes)


# --- faults of the simulated clusters -------------------------------------------------------------------------

HOST = TEST_HOST


@pytest.mark.parametrize(
    ("request_", "reason", "field", "words"),
    [
        (FaultRequest(kind="edgecore"), "invalid", None, "needs a box ('box': a box id) or a site"),
        (FaultRequest(kind="edgecore", box="ghost"), "not-found", "box", "no box 'ghost'"),
        (FaultRequest(kind="api-errors", cluster=HOST), "invalid", "rate", "needs a rate"),
        (FaultRequest(kind="api-errors", rate=0.5), "invalid", "cluster", "needs a cluster"),
        (FaultRequest(kind="api-errors", cluster="mars", rate=0.5), "not-found", "cluster", "no cluster 'mars'"),
        (FaultRequest(kind="api-errors", cluster=HOST, rate=0), "invalid", "rate", "more than 0"),
        (FaultRequest(kind="api-errors", cluster=HOST, rate=1.5), "invalid", "rate", "at most 1"),
        (FaultRequest(kind="api-errors", cluster=HOST, rate=0.5, errors="418"), "invalid", "errors", "'418'"),
        (FaultRequest(kind="api-errors", cluster=HOST, rate=0.5, errors=" , "), "invalid", "errors", "unknown"),
        (FaultRequest(kind="api-down", cluster=HOST, site=SITE), "invalid", "site", "does not apply"),
        (FaultRequest(kind="crash-loop", site=SITE), "invalid", "version", "needs an image version"),
        (FaultRequest(kind="crash-loop", version="2.0"), "invalid", "site", "a site ('site') or a GPU model"),
        (FaultRequest(kind="crash-loop", version="2 0", site=SITE), "invalid", "version", "one word"),
        (FaultRequest(kind="crash-loop", version="2.0", gpu_model="H100"), "not-found", "gpu_model", "NVIDIA L4"),
        (FaultRequest(kind="crash-loop", version="2.0", box=GPU), "invalid", "box", "does not apply"),
        (FaultRequest(kind="pull", site=SITE), "invalid", "mode", "needs a mode"),
        (FaultRequest(kind="pull", site=SITE, mode="lazy"), "invalid", "mode", "unknown pull mode 'lazy'"),
        (FaultRequest(kind="pull", site=SITE, mode="fail", delay_s=5), "invalid", "delay_s", "slow pulls only"),
        (FaultRequest(kind="pull", site=SITE, mode="slow", delay_s=-1), "invalid", "delay_s", "more than 0"),
    ],
)
def test_bad_cluster_fault_requests_are_refused_saying_which_field_and_why(
    fleet: Inventory, request_: FaultRequest, reason: str, field: str | None, words: str
) -> None:
    with pytest.raises(FaultRejected) as caught:
        Faults(fleet).add(request_, now=0.0)
    assert (caught.value.reason, caught.value.field) == (reason, field)
    assert words in caught.value.message


def test_edgecore_silences_the_kubelet_of_its_box_or_site_and_a_cut_silences_them_all(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="edgecore", box=GPU, seconds=10), now=0.0)
    assert faults.kubelet_silent(GPU, 5.0)
    assert not faults.kubelet_silent(GPU2, 5.0)
    assert not faults.kubelet_silent(GPU, 10.0)
    assert not faults.is_stopped(GPU, 5.0), "the agent keeps heartbeating"
    faults.add(FaultRequest(kind="edgecore", site=SITE_B), now=0.0)
    assert faults.kubelet_silent(OTHER, 50.0)
    faults.add(FaultRequest(kind="cut", site=SITE, seconds=5), now=20.0)
    assert faults.kubelet_silent(EDGE, 21.0)
    assert not faults.kubelet_silent(EDGE, 25.0)


def test_api_faults_belong_to_their_cluster_and_the_later_one_counts(fleet: Inventory) -> None:
    faults = Faults(fleet)
    first = faults.add(FaultRequest(kind="api-errors", cluster=HOST, rate=0.2), now=0.0)
    assert first.errors == ("409", "429", "500", "503", "timeout"), "every kind when not narrowed"
    faults.add(FaultRequest(kind="api-errors", cluster=HOST, rate=1, errors="timeout,429", seconds=5), now=1.0)
    trouble = faults.api_trouble(ClusterId(HOST), 2.0)
    assert trouble is not None
    assert (trouble.rate, trouble.errors) == (1.0, ("429", "timeout"))
    back = faults.api_trouble(ClusterId(HOST), 6.0)
    assert back is not None
    assert back.rate == 0.2
    assert faults.api_trouble(ClusterId("central-01"), 2.0) is None
    faults.add(FaultRequest(kind="api-down", cluster=HOST, seconds=3), now=0.0)
    assert faults.api_down(ClusterId(HOST), 2.9)
    assert not faults.api_down(ClusterId(HOST), 3.0)
    assert not faults.api_down(ClusterId("central-01"), 1.0)


def test_crash_loops_hit_their_version_where_they_are_set(fleet: Inventory) -> None:
    faults = Faults(fleet)
    faults.add(FaultRequest(kind="crash-loop", version="2.4.0", app="sorting-recognition", site=SITE), now=0.0)
    faults.add(FaultRequest(kind="crash-loop", version="9.9", gpu_model="NVIDIA L4"), now=0.0)
    image = "registry.local:5000/edgefleet/sorting-recognition:2.4.0@sha256:" + "a" * 64
    assert faults.pod_fate(GPU, [image], 1.0).crashes
    assert not faults.pod_fate(OTHER, [image], 1.0).crashes, "another site"
    assert not faults.pod_fate(GPU, [image.replace("2.4.0", "2.3.0")], 1.0).crashes, "another version"
    assert not faults.pod_fate(GPU, ["registry.local:5000/scan-upload:2.4.0"], 1.0).crashes, "another app"
    assert faults.pod_fate(OTHER, ["scan-upload:9.9"], 1.0).crashes, "every box with that GPU model"
    assert not faults.pod_fate(BoxId("site-02-edge-01"), ["scan-upload:9.9"], 1.0).crashes, "no GPU there"


def test_pull_faults_slow_or_fail_pulls_at_their_site(fleet: Inventory) -> None:
    faults = Faults(fleet)
    slow = faults.add(FaultRequest(kind="pull", site=SITE, mode="slow"), now=0.0)
    assert slow.delay_s == 60.0
    assert faults.pod_fate(GPU, ["x:1"], 1.0).pull_s == 60.0
    assert faults.pod_fate(OTHER, ["x:1"], 1.0).pull_s is None
    faults.add(FaultRequest(kind="pull", site=SITE, mode="fail", seconds=5), now=2.0)
    failing = faults.pod_fate(GPU, ["x:1"], 3.0).pull_error
    assert failing is not None
    assert 'failed to pull and unpack image "x:1"' in failing
    assert faults.pod_fate(GPU, ["x:1"], 8.0).pull_error is None


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("scan-upload", ("scan-upload", "latest")),
        ("scan-upload:1.2", ("scan-upload", "1.2")),
        ("registry.local:5000/edgefleet/scan-upload", ("scan-upload", "latest")),
        ("registry.local:5000/edgefleet/scan-upload:1.2@sha256:" + "0" * 64, ("scan-upload", "1.2")),
    ],
)
def test_images_read_as_app_and_version_as_a_runtime_reads_them(image: str, expected: tuple[str, str]) -> None:
    assert image_app_version(image) == expected

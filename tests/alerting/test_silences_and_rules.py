"""Silences match by site, box and kind for a time span and refuse bad input with a clear reason; the detection
rules validate every threshold and override and say how to fix each."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import (
    AlertKey,
    AlertKind,
    AlertRules,
    Overrides,
    Silence,
    Thresholds,
    is_silenced,
    matching_silences,
    validate,
    validate_silence,
)
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import T0, make_inventory

INVENTORY = make_inventory({"alpha": 3, "beta": 3})
BOX_KEY = AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), BoxId("alpha-box-01"))
SITE_KEY = AlertKey(AlertKind.SITE_UNREACHABLE, SiteId("alpha"))
APP_KEY = AlertKey(AlertKind.APP_DOWN, SiteId("beta"), BoxId("beta-box-00"), "sorter")


def silence(**matchers: object) -> Silence:
    return Silence("s1", T0, T0 + 3600, "zhang.min", "switch replacement", **matchers)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("matchers", "silenced"),
    [
        ({"site": SiteId("alpha")}, {BOX_KEY, SITE_KEY}),
        ({"box": BoxId("alpha-box-01")}, {BOX_KEY}),  # a box matcher never matches the site alert
        ({"kind": AlertKind.BOX_LOST}, {BOX_KEY}),
        ({"site": SiteId("alpha"), "kind": AlertKind.SITE_UNREACHABLE}, {SITE_KEY}),
        ({"site": SiteId("beta"), "kind": AlertKind.APP_DOWN}, {APP_KEY}),
        ({"site": SiteId("beta"), "box": BoxId("alpha-box-01")}, set()),
    ],
)
def test_a_silence_matches_by_site_box_and_kind(matchers: dict[str, object], silenced: set[AlertKey]) -> None:
    s = silence(**matchers)
    assert {k for k in (BOX_KEY, SITE_KEY, APP_KEY) if is_silenced(k, [s], T0 + 1)} == silenced


@pytest.mark.parametrize(("at", "active"), [(T0 - 0.001, False), (T0, True), (T0 + 3599.999, True), (T0 + 3600, False)])
def test_a_silence_holds_from_its_start_until_just_before_its_end(at: float, active: bool) -> None:
    assert is_silenced(BOX_KEY, [silence(site=SiteId("alpha"))], at) is active


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.builds(
            Silence,
            id=st.text("abc", min_size=1, max_size=3),
            starts_at=st.floats(T0 - 100, T0 + 100),
            ends_at=st.floats(T0 - 100, T0 + 200),
            created_by=st.just("ops"),
            comment=st.just("x"),
            site=st.sampled_from([None, SiteId("alpha"), SiteId("beta")]),
            box=st.sampled_from([None, BoxId("alpha-box-01"), BoxId("beta-box-00")]),
            kind=st.sampled_from([None, *AlertKind]),
        ),
        max_size=6,
        unique_by=lambda s: s.id,
    ),
    st.floats(T0 - 150, T0 + 250),
)
def test_is_silenced_agrees_with_the_silences_that_match(silences: list[Silence], now: float) -> None:
    for key in (BOX_KEY, SITE_KEY, APP_KEY):
        ids = matching_silences(key, silences, now)
        assert is_silenced(key, silences, now) == bool(ids)
        assert list(ids) == sorted(ids)
        for s in silences:
            if s.id in ids:
                assert s.is_active(now)
                assert s.matches(key)


@pytest.mark.parametrize(
    ("changes", "problem"),
    [
        ({}, "at least one matcher"),
        ({"site": SiteId("alpha"), "ends_at": T0}, "ends_at (2027-01-15T08:00:00Z) must be after the silence starts"),
        ({"site": SiteId("alpha"), "ends_at": T0 + 40 * 86400}, "lasts 40d; at most 30d is allowed"),
        ({"site": SiteId("alpha"), "ends_at": T0 + 1e300}, "lasts 1e+300s; at most 30d is allowed"),
        ({"site": SiteId("alpha"), "ends_at": float("nan")}, "ends_at must be a time"),
        ({"site": SiteId("alpha"), "ends_at": float("inf")}, "ends_at must be a time"),
        ({"site": SiteId("alpha"), "created_by": " "}, "created_by must name who"),
        ({"site": SiteId("alpha"), "comment": ""}, "comment must say why"),
        ({"site": SiteId("alpah")}, "site 'alpah' is not in the inventory; did you mean 'alpha'?"),
        ({"box": BoxId("alpha-box-1")}, "did you mean 'alpha-box-01'?"),
        ({"site": SiteId("beta"), "box": BoxId("alpha-box-01")}, "belongs to site 'alpha', not 'beta'"),
    ],
)
def test_a_bad_silence_is_refused_with_what_to_change(changes: dict[str, object], problem: str) -> None:
    fields = {"id": "s1", "starts_at": T0, "ends_at": T0 + 3600, "created_by": "ops", "comment": "work"} | changes
    problems = validate_silence(Silence(**fields), INVENTORY)  # type: ignore[arg-type]
    assert any(problem in p for p in problems), problems


def test_a_good_silence_has_no_problem_and_an_expired_one_says_so() -> None:
    good = silence(site=SiteId("alpha"), box=BoxId("alpha-box-01"))
    assert validate_silence(good, INVENTORY, now=T0) == []
    assert validate_silence(good, INVENTORY, now=T0 + 4000) == [
        "ends_at (2027-01-15T09:00:00Z) is already past: it is 2027-01-15T09:06:40Z now; give a later time, "
        "or a duration such as 2h"
    ]


def test_the_default_rules_are_valid_and_resolve_by_precedence() -> None:
    rules = AlertRules(
        models={"Advantech MIC-770": Overrides(gpu_temperature_c=80, disk_free_percent=15)},
        sites={SiteId("alpha"): Overrides(gpu_temperature_c=90, site_threshold=0.7)},
    )
    assert validate(AlertRules(), INVENTORY) == []
    assert validate(rules, INVENTORY) == []
    alpha = rules.for_box(SiteId("alpha"), "Advantech MIC-770")
    assert (alpha.gpu_temperature_c, alpha.disk_free_percent, alpha.site_threshold) == (90, 15, 0.7)
    beta = rules.for_box(SiteId("beta"), "Advantech MIC-770")
    assert (beta.gpu_temperature_c, beta.disk_free_percent, beta.site_threshold) == (80, 15, 0.8)
    assert rules.for_box(SiteId("beta"), None) == Thresholds()


@pytest.mark.parametrize(
    ("rules", "path", "reason"),
    [
        (AlertRules(defaults=Thresholds(site_threshold=1.5)), "defaults.site_threshold", "at most 1"),
        (AlertRules(defaults=Thresholds(flapping_transitions=1)), "defaults.flapping_transitions", "from 2 to 16"),
        (AlertRules(defaults=Thresholds(late_after_beats=1.0)), "defaults.late_after_beats", "above 1 heartbeat"),
        (AlertRules(defaults=Thresholds(gpu_temperature_c=float("nan"))), "defaults.gpu_temperature_c", "finite"),
        (
            AlertRules(defaults=Thresholds(site_suspect_share=0.9)),
            "defaults.site_suspect_share",
            "above site_threshold",
        ),
        (
            AlertRules(sites={SiteId("alpha"): Overrides(disk_free_percent=120)}),
            "sites.alpha.disk_free_percent",
            "between 0 and 100",
        ),
        (
            AlertRules(sites={SiteId("alpah"): Overrides(disk_free_percent=20)}),
            "sites.alpah",
            "did you mean 'alpha'?",
        ),
        (
            AlertRules(models={"Advantech MIC-770": Overrides(site_threshold=0.5)}),
            "models.Advantech MIC-770.site_threshold",
            "set it under sites.<site> instead",
        ),
        (AlertRules(models={"Advantech MIC770": Overrides()}), "models.Advantech MIC770", "did you mean"),
        (
            AlertRules(sites={SiteId("alpha"): Overrides(ecc_corrected_rise=1.5)}),  # type: ignore[arg-type]
            "sites.alpha.ecc_corrected_rise",
            "whole number",
        ),
    ],
)
def test_bad_rules_are_reported_with_where_and_how_to_fix(rules: AlertRules, path: str, reason: str) -> None:
    problems = validate(rules, INVENTORY)
    assert any(p.path == path and reason in p.reason for p in problems), [str(p) for p in problems]

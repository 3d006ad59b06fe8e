"""The plan of a rollout (``rollouts.planning``): a canary that covers the fleet's hardware with few sites, then
cumulative waves over the rest; held and offline sites deferred in their wave, never dropped; sites already on the
version left out; and every problem that depends on the fleet refused with its field. What the text of a release
may say is the loader's to refuse (tests/releases/); planning never sees such a release."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from edgefleet.cloud.rollouts.planning import Plan, PlanRefused, SiteFacts, plan_rollout, site_hardware
from edgefleet.errors import ReleaseError
from edgefleet.ids import SiteId
from edgefleet.inventory import Inventory
from tests.rollouts.builders import SiteSpec, fleet, release

L4 = ("NVIDIA L4", "550.90.07")
T4 = ("NVIDIA T4", "535.183.01")
A10 = ("NVIDIA A10", "535.183.01")
A2 = ("NVIDIA A2", "550.90.07")
NOW = datetime(2026, 12, 1, 4, 0, tzinfo=ZoneInfo("UTC")).timestamp()  # 12:00 in Shanghai


def online(inventory: Inventory, version: str = "3.5.0", **overrides: SiteFacts) -> dict[SiteId, SiteFacts]:
    facts = {s: SiteFacts(reachable=True, versions=frozenset({version})) for s in inventory.sites}
    facts.update({SiteId(k.replace("_", "-")): v for k, v in overrides.items()})
    return facts


def waves_of(plan: Plan) -> list[list[str]]:
    return [list(w.sites) for w in plan.waves]


FOUR = fleet(
    [
        ("a-east", "east", [L4]),
        ("b-east", "east", [T4]),
        ("c-north", "north", [L4, T4]),
        ("d-north", "north", [A10]),
    ]
)


def test_the_canary_covers_every_gpu_model_and_driver_with_the_fewest_sites() -> None:
    plan = plan_rollout(release(FOUR, waves=["50%", "100%"]), FOUR, online(FOUR), now=NOW)

    # c covers two pairs at once, d the third; then the rest by region and id, cumulatively.
    assert waves_of(plan) == [["c-north", "d-north"], ["a-east"], ["b-east"]]
    assert plan.waves[0].hardware == (A10, L4, T4)
    assert plan.waves[1].hardware == (L4,)
    assert plan.fleet_hardware == (A10, L4, T4)


def test_a_tie_goes_to_the_site_that_can_start_now_then_to_the_lower_site_id() -> None:
    twins = fleet([("x-one", "east", [L4]), ("y-two", "east", [L4]), ("z-three", "east", [L4])])
    assert waves_of(plan_rollout(release(twins, waves=["100%"]), twins, online(twins), now=NOW))[0] == ["x-one"]

    offline_first = online(twins, x_one=SiteFacts(reachable=False))
    assert waves_of(plan_rollout(release(twins, waves=["100%"]), twins, offline_first, now=NOW))[0] == ["y-two"]


def test_named_canary_sites_come_first_and_sites_are_added_for_the_hardware_they_miss() -> None:
    plan = plan_rollout(release(FOUR, canary={"sites": ["a-east"]}, waves=["100%"]), FOUR, online(FOUR), now=NOW)
    # a covers L4; b (T4) and d (A10) are the fewest that add the rest.
    assert waves_of(plan)[0] == ["a-east", "b-east", "d-north"]


def test_without_cover_hardware_the_canary_is_the_named_sites_only() -> None:
    strategy = {"canary": {"sites": ["a-east"], "coverHardware": False}, "waves": ["100%"]}
    assert waves_of(plan_rollout(release(FOUR, **strategy), FOUR, online(FOUR), now=NOW)) == [
        ["a-east"],
        ["b-east", "c-north", "d-north"],
    ]


def test_waves_are_cumulative_over_the_sites_after_the_canary_by_percentage_or_count() -> None:
    ten = fleet([(f"s{i:02}", "east" if i % 2 else "north", [L4]) for i in range(11)])
    plan = plan_rollout(release(ten, waves=["1", "50%", "100%"]), ten, online(ten), now=NOW)

    rest = sorted((ten.sites[SiteId(s)].region, s) for s in ten.sites if s != "s00")
    order = [s for _, s in rest]
    assert waves_of(plan) == [["s00"], order[:1], order[1:5], order[5:]]
    assert [w.size for w in plan.waves] == ["canary", "1", "50%", "100%"]


def test_a_small_percentage_still_takes_one_site() -> None:
    four = fleet([(f"s{i}", "east", [L4]) for i in range(4)])
    plan = plan_rollout(release(four, waves=["1%", "2%", "100%"]), four, online(four), now=NOW)
    # 1% and 2% of three sites round down to none: each wave still takes one more.
    assert waves_of(plan) == [["s0"], ["s1"], ["s2"], ["s3"]]


def test_held_and_offline_sites_stay_in_their_wave_and_are_listed_apart() -> None:
    facts = online(FOUR, b_east=SiteFacts(reachable=False, versions=frozenset({"3.5.0"})))
    plan = plan_rollout(release(FOUR, waves=["100%"]), FOUR, facts, held=frozenset({SiteId("a-east")}), now=NOW)

    assert waves_of(plan) == [["c-north", "d-north"], ["a-east", "b-east"]]
    assert plan.held == ("a-east",)
    assert plan.offline == ("b-east",)


def test_sites_already_on_the_version_are_up_to_date_and_in_no_wave() -> None:
    facts = online(
        FOUR,
        a_east=SiteFacts(reachable=True, versions=frozenset({"3.6.0"})),
        # half of b's boxes run the new version: b is not done.
        b_east=SiteFacts(reachable=True, versions=frozenset({"3.6.0", "3.5.0"})),
        # d's boxes report no sorting-recognition at all: it must get it.
        d_north=SiteFacts(reachable=True, versions=frozenset()),
    )
    plan = plan_rollout(release(FOUR, waves=["100%"]), FOUR, facts, now=NOW)

    assert plan.up_to_date == ("a-east",)
    assert "a-east" not in plan.sites
    assert sorted(plan.sites) == ["b-east", "c-north", "d-north"]
    # a's L4 is covered by c; the fleet's hardware is that of the sites to update.
    assert plan.fleet_hardware == (A10, L4, T4)


def test_a_central_site_gets_a_transfer_center_app_only_when_the_release_names_it() -> None:
    inventory = fleet([("a-east", "east", [L4]), ("central-bj", "north", [])], central=["central-bj"])

    plan = plan_rollout(release(inventory, app="scan-upload", waves=["100%"]), inventory, online(inventory), now=NOW)
    assert plan.sites == ("a-east",)
    assert plan.left_out[0][0] == "central-bj"
    assert "central site" in plan.left_out[0][1]

    named = release(
        inventory,
        app="scan-upload",
        waves=["100%"],
        overrides=[{"sites": ["central-bj"], "env": {"LOG_LEVEL": "debug"}}],
    )
    assert sorted(plan_rollout(named, inventory, online(inventory), now=NOW).sites) == ["a-east", "central-bj"]


def test_sorting_recognition_skips_a_site_without_gpu_boxes_and_scan_upload_does_not() -> None:
    inventory = fleet([("a-east", "east", [L4]), ("b-east", "east", [])])

    sorting = plan_rollout(release(inventory, waves=["100%"]), inventory, online(inventory), now=NOW)
    scanning = plan_rollout(
        release(inventory, app="scan-upload", waves=["100%"]), inventory, online(inventory), now=NOW
    )

    assert sorting.sites == ("a-east",)
    assert sorting.left_out == (("b-east", "no GPU box to run sorting-recognition on"),)
    assert sorted(scanning.sites) == ["a-east", "b-east"]


def test_each_site_lists_the_blackout_in_force_and_the_next_in_its_local_time() -> None:
    strategy = {
        "waves": ["100%"],
        "blackouts": [
            {"daily": "11:00-13:00", "reason": "lunch peak", "sites": ["a-east"]},
            {"dates": "2026-12-12..2026-12-12", "reason": "Double 12"},
        ],
    }
    plan = plan_rollout(release(FOUR, **strategy), FOUR, online(FOUR), now=NOW)
    windows = {w.site: w for w in plan.windows}

    a = windows[SiteId("a-east")]
    assert a.now is not None
    assert a.now.blackout.reason == "lunch peak"
    assert a.now.starts.isoformat() == "2026-12-01T11:00:00+08:00"
    assert a.next is not None
    assert a.next.starts.isoformat() == "2026-12-02T11:00:00+08:00"
    b = windows[SiteId("b-east")]
    assert b.now is None
    assert b.next is not None
    assert b.next.blackout.reason == "Double 12"


def test_soak_approval_and_max_in_flight_are_carried_into_the_plan() -> None:
    plan = plan_rollout(
        release(FOUR, waves=["50%", "100%"], soak="1h30m", approvalBefore=[2], maxInFlight=3),
        FOUR,
        online(FOUR),
        now=NOW,
    )
    assert (plan.soak_s, plan.approval_before, plan.max_in_flight) == (5400.0, (2,), 3)
    assert [w.needs_approval for w in plan.waves] == [False, False, True]


@pytest.mark.parametrize(
    ("strategy", "held", "field", "says"),
    [
        # Two sites follow the canary (c, d): a count of 5 takes both, leaving nothing to the next wave.
        ({"waves": ["5", "100%"]}, (), "spec.strategy.waves[1]", "wave 2 (100%) is empty"),
        ({"waves": ["1%", "2%", "100%"]}, (), "spec.strategy.waves[2]", "is empty"),
        # d-north alone has the A10, and it is held: no canary can cover it.
        ({}, ("d-north",), "spec.strategy.canary", "cannot cover NVIDIA A10 with driver 535.183.01"),
        ({"canary": {"coverHardware": False}}, (), "spec.strategy.canary", "the canary is empty"),
    ],
)
def test_a_strategy_that_cannot_be_planned_is_refused_with_its_field(
    strategy: dict[str, object], held: tuple[str, ...], field: str, says: str
) -> None:
    with pytest.raises(PlanRefused) as refused:
        plan_rollout(release(FOUR, **strategy), FOUR, online(FOUR), held=frozenset(SiteId(s) for s in held), now=NOW)

    assert any(r.field == field and says in r.reason for r in refused.value.refusals), refused.value.refusals


@pytest.mark.parametrize(
    ("strategy", "field", "says"),
    [
        ({"canary": {"sites": ["nowhere"]}}, "spec.strategy.canary.sites[0]", "names site 'nowhere'"),
        ({"waves": ["10%"]}, "spec.strategy.waves", "must be '100%'"),
        ({"waves": []}, "spec.strategy.waves", "at least one wave"),
        ({"waves": ["ten"]}, "spec.strategy.waves[0]", "is no wave"),
        ({"soak": "10 minutes"}, "spec.strategy.soak", "is no duration"),
        ({"approvalBefore": [4]}, "spec.strategy.approvalBefore[0]", "there is no wave 4"),
        ({"blackouts": [{"daily": "8-9", "reason": "x"}]}, "spec.strategy.blackouts[0].daily", "HH:MM-HH:MM"),
        (
            {"blackouts": [{"daily": "20:00-02:00", "reason": "x", "sites": ["nowhere"]}]},
            "spec.strategy.blackouts[0].sites[0]",
            "names site 'nowhere'",
        ),
    ],
)
def test_what_the_text_of_a_release_gets_wrong_is_the_loaders_to_refuse(
    strategy: dict[str, object], field: str, says: str
) -> None:
    # Planning takes a loaded Release: such a strategy never reaches it.
    with pytest.raises(ReleaseError) as refused:
        release(FOUR, **strategy)

    assert any(p.field == field and says in p.reason for p in refused.value.problems), refused.value.problems


def test_a_canary_site_that_cannot_take_the_app_is_refused() -> None:
    inventory = fleet([("a-east", "east", [L4]), ("b-east", "east", [])])
    # A transfer center the loader takes as a canary; a GPU app still needs a GPU box there.
    with pytest.raises(PlanRefused, match=r"canary.sites\[0\]: 'b-east' cannot take sorting-recognition: no GPU box"):
        plan_rollout(release(inventory, canary={"sites": ["b-east"]}), inventory, online(inventory), now=NOW)


def test_a_release_every_site_runs_already_is_refused() -> None:
    with pytest.raises(PlanRefused, match=r"already runs sorting-recognition 3\.6\.0"):
        plan_rollout(release(FOUR, waves=["100%"]), FOUR, online(FOUR, version="3.6.0"), now=NOW)


def test_every_problem_is_reported_at_once() -> None:
    # d-north alone has the A10 and is held; the canary (c-north) leaves a, b and d, which "5" takes at once.
    with pytest.raises(PlanRefused) as refused:
        plan_rollout(
            release(FOUR, waves=["5", "100%"]), FOUR, online(FOUR), held=frozenset({SiteId("d-north")}), now=NOW
        )
    assert {r.field for r in refused.value.refusals} == {"spec.strategy.canary", "spec.strategy.waves[1]"}


# --- properties -------------------------------------------------------------------------------------------

PAIRS = [L4, T4, A10, A2]


@st.composite
def fleets(draw: st.DrawFn) -> tuple[Inventory, dict[SiteId, SiteFacts], frozenset[SiteId]]:
    count = draw(st.integers(min_value=1, max_value=25))
    sites: list[SiteSpec] = []
    for i in range(count):
        gpus = draw(st.lists(st.sampled_from(PAIRS), min_size=1, max_size=3))
        sites.append((f"site-{i:02}", draw(st.sampled_from(["east", "north", "south"])), gpus))
    inventory = fleet(sites)
    facts = {
        s: SiteFacts(
            reachable=draw(st.booleans()), versions=frozenset(draw(st.sets(st.sampled_from(["3.5.0", "3.6.0"]))))
        )
        for s in inventory.sites
    }
    held = frozenset(draw(st.sets(st.sampled_from(sorted(inventory.sites)), max_size=3)))
    return inventory, facts, held


# What the loader takes: growing counts, then growing shares, ending at 100%.
wave_lists = st.tuples(
    st.lists(st.integers(1, 20), unique=True, max_size=2).map(sorted),
    st.lists(st.integers(1, 99), unique=True, max_size=2).map(sorted),
).map(lambda parts: [*map(str, parts[0]), *(f"{p}%" for p in parts[1]), "100%"])

ALLOWED_REFUSALS = {"spec.strategy.canary", "spec.version"}


@settings(max_examples=300, deadline=None)
@given(fleets(), wave_lists, st.booleans(), st.lists(st.sampled_from([f"site-{i:02}" for i in range(3)]), max_size=2))
def test_every_site_to_update_is_in_exactly_one_wave_and_none_is_dropped(
    world: tuple[Inventory, dict[SiteId, SiteFacts], frozenset[SiteId]],
    waves: list[str],
    cover: bool,
    named: list[str],
) -> None:
    inventory, facts, held = world
    named = [n for n in named if n in inventory.sites]
    strategy = {"canary": {"sites": named, "coverHardware": cover}, "waves": waves}
    plan_release = release(inventory, **strategy)
    try:
        plan = plan_rollout(plan_release, inventory, facts, held=held, now=NOW)
    except PlanRefused as refused:
        event("refused")
        for r in refused.refusals:
            assert r.field in ALLOWED_REFUSALS or "is empty" in r.reason, r
        return
    event("planned")
    to_update = {s for s in inventory.sites if facts[s].versions != {"3.6.0"}}
    listed = [s for w in plan.waves for s in w.sites]

    # Exactly once each, nothing else; up-to-date sites apart.
    assert sorted(listed) == sorted(to_update)
    assert set(plan.up_to_date) == set(inventory.sites) - to_update
    # Held and offline sites are deferred in their wave, never dropped.
    assert set(plan.held) == held & to_update
    assert set(plan.offline) == {s for s in to_update if not facts[s].reachable}
    # Every wave holds a site; after the canary they follow region then site id.
    assert all(w.sites for w in plan.waves)
    rest = [s for w in plan.waves[1:] for s in w.sites]
    assert rest == sorted(rest, key=lambda s: (inventory.sites[s].region, s))
    # Cumulative: a wave reaches at least as far as its size asks, and at most one site past the one before.
    reached = 0
    for wave in plan.waves[1:]:
        size = wave.size
        asked = int(len(rest) * float(size[:-1]) / 100) if size.endswith("%") else min(int(size), len(rest))
        reached += len(wave.sites)
        assert reached == max(min(asked, len(rest)), reached - len(wave.sites) + 1)
    assert reached == len(rest)
    # The canary covers the hardware of every site it could, when asked.
    canary = plan.waves[0].sites
    assert set(named) & to_update <= set(canary)
    if cover:
        covered = {p for s in canary if s not in held for p in site_hardware(inventory, s)}
        assert {p for s in to_update for p in site_hardware(inventory, s)} <= covered
    # Deterministic: the same input, given in another order, plans the same.
    shuffled = Inventory(dict(reversed(list(inventory.sites.items()))), dict(reversed(list(inventory.boxes.items()))))
    again = plan_rollout(plan_release, shuffled, dict(reversed(list(facts.items()))), held=held, now=NOW)
    assert again == plan

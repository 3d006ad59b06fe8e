"""Done when (issue 16, first slice): in a real browser, a new user sees the whole fleet on the overview, watches a
cut site go red without reloading, reaches a box in two clicks, and switches the language, which is remembered.

Debian's headless Chromium against a real controller and the simulator (tests/console/conftest.py). Each test
saves a screenshot of the page it checks under docs/screenshots/.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import BOXES_PER_SITE, SITES, Console, screenshot

pytestmark = pytest.mark.slow

CUT_SITE = "site-02"
# Comfortably more than the chain takes (the broker's Last Will after ~1.5-2 keepalives of 2 s, then at most one
# 0.5 s batch of the event stream), and far less than a heartbeat timeout would.
WITHIN_MS = 15_000


def open_overview(page: Page, console: Console) -> None:
    page.goto(console.url + "/")
    expect(page.locator("body[data-ready=overview]")).to_be_attached()


def test_the_overview_shows_every_box_of_every_site(console: Console, page: Page) -> None:
    open_overview(page, console)

    cells = page.locator("#heatmap .cell")
    expect(cells).to_have_count(len(console.boxes))
    assert sorted(cells.evaluate_all("els => els.map(e => e.dataset.box)")) == console.boxes
    expect(page.locator("#heatmap .site")).to_have_count(SITES + 1)
    expect(page.locator("#heatmap .site[data-site=site-01] .cell")).to_have_count(BOXES_PER_SITE)
    expect(page.locator("#heatmap .cell[data-state=online]")).to_have_count(len(console.boxes))
    expect(page.locator("[data-counter='counter.sites'] b")).to_have_text(str(SITES + 1))
    expect(page.locator("[data-counter='counter.online'] b")).to_have_text(
        f"{len(console.boxes)} / {len(console.boxes)}"
    )

    page.locator("[data-filter='filter.kind']").select_option("central")
    expect(page.locator("#heatmap .site:visible")).to_have_count(1)
    expect(page.locator("#heatmap .site:visible")).to_have_attribute("data-site", "central-01")
    page.locator("[data-filter='filter.kind']").select_option("")
    expect(page.locator("#heatmap .site:visible")).to_have_count(SITES + 1)
    screenshot(page, "overview")

    # Coloured by GPU temperature: a GPU box by its reading (and says it on hover), a box without a GPU grey.
    page.locator("[data-filter='filter.colour']").select_option("temperature")
    gpu_box = page.locator("#heatmap .cell[data-box=site-01-gpu-01]")
    expect(gpu_box).to_have_attribute("style", re.compile(r"background: (rgb|hsl)"))
    expect(gpu_box).not_to_have_class(re.compile(r"\bs-online\b"))
    gpu_box.hover()
    expect(page.locator("#tip")).to_have_text(re.compile(r"^site-01-gpu-01 · online · \d+ °C$"))
    edge = page.locator("#heatmap .cell[data-box=site-01-edge-01]")
    assert edge.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(184, 190, 201)"  # --never-seen grey
    screenshot(page, "overview-temperature")


def test_a_cut_site_turns_red_without_a_reload(console: Console, page: Page) -> None:
    open_overview(page, console)
    page.evaluate("window.sameDocument = true")  # gone if the page reloaded
    cut = page.locator(f"#heatmap .site[data-site={CUT_SITE}] .cell")
    expect(cut).to_have_count(BOXES_PER_SITE)

    fault = console.fault(kind="cut", site=CUT_SITE, seconds=60)

    expect(page.locator(f"#heatmap .site[data-site={CUT_SITE}] .cell[data-state=unreachable]")).to_have_count(
        BOXES_PER_SITE, timeout=WITHIN_MS
    )
    colours = set(cut.evaluate_all("els => els.map(e => getComputedStyle(e).backgroundColor)"))
    assert colours == {"rgb(155, 28, 28)"}, colours  # --unreachable
    expect(page.locator(f"#heatmap .site[data-site={CUT_SITE}]")).to_have_attribute("data-down", "true")
    others = page.locator(f"#heatmap .site:not([data-site={CUT_SITE}]) .cell[data-state=online]")
    expect(others).to_have_count(len(console.boxes) - BOXES_PER_SITE)
    expect(page.locator("[data-counter='counter.lost'] b")).to_have_text(str(BOXES_PER_SITE))
    assert page.evaluate("window.sameDocument") is True
    screenshot(page, "overview-site-cut")

    page.locator("[data-filter='filter.state']").select_option("unreachable")
    expect(page.locator("#heatmap .site:visible")).to_have_count(1)
    expect(page.locator("#heatmap .site:visible")).to_have_attribute("data-site", CUT_SITE)
    page.locator("[data-filter='filter.state']").select_option("")

    console.end_fault(str(fault["id"]))  # the site is back: the other tests want the whole fleet online
    expect(page.locator(f"#heatmap .site[data-site={CUT_SITE}] .cell[data-state=online]")).to_have_count(
        BOXES_PER_SITE, timeout=WITHIN_MS
    )


def test_two_clicks_reach_a_box_through_its_site(console: Console, page: Page) -> None:
    open_overview(page, console)
    box = "site-01-gpu-02"
    cell = page.locator(f"#heatmap .cell[data-box={box}]")
    cell.hover()
    expect(page.locator("#tip")).to_have_text(re.compile(rf"^{box} · (online|degraded)"))

    page.locator("#heatmap .site[data-site=site-01] > a").click()
    expect(page).to_have_url(console.url + "/sites/site-01")
    expect(page.locator("body[data-ready=site]")).to_be_attached()
    expect(page.locator("#boxes tbody tr")).to_have_count(BOXES_PER_SITE)
    expect(page.locator(f"#boxes tr[data-box={box}] .badge")).to_have_attribute("data-state", "online")
    screenshot(page, "site")

    page.locator(f"#boxes tr[data-box={box}] a").click()
    expect(page).to_have_url(console.url + f"/boxes/{box}")
    expect(page.locator("body[data-ready=box]")).to_be_attached()
    expect(page.locator("h1")).to_have_text(f"Box {box}")
    expect(page.locator("[data-fact='col.state'] .badge")).to_have_attribute("data-state", "online")
    # The simulator's box has two GPUs (gpu-02) and runs the fleet's apps; the heartbeat shows them in full.
    expect(page.locator("#gpus tbody tr")).to_have_count(2)
    # Its last hours, charted from the stored history, and its alerts (none: it runs cool).
    expect(page.locator("#box-charts figure[data-chart=temperature]")).not_to_have_attribute("data-points", "0")
    expect(page.locator("#box-alerts table")).to_be_attached()
    screenshot(page, "box")

    page.goto(console.url + "/")
    page.locator(f"#heatmap .cell[data-box={box}]").click()
    expect(page).to_have_url(console.url + f"/boxes/{box}")

    # A mistyped address says what the API says, not a blank page.
    page.goto(console.url + "/boxes/site-01-gpu-99")
    expect(page.locator("main .error")).to_contain_text("no box 'site-01-gpu-99' in the inventory")


def test_the_language_switch_is_remembered(console: Console, page: Page) -> None:
    open_overview(page, console)
    expect(page.locator("h1")).to_have_text("Fleet overview")

    page.locator("#lang").select_option("zh-CN")
    expect(page.locator("h1")).to_have_text("全域总览")
    expect(page.locator("[data-counter='counter.sites'] span")).to_have_text("站点")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")

    page.reload()
    expect(page.locator("body[data-ready=overview]")).to_be_attached()
    expect(page.locator("h1")).to_have_text("全域总览")
    screenshot(page, "overview-zh-CN")

    page.locator("#lang").select_option("en")
    expect(page.locator("h1")).to_have_text("Fleet overview")

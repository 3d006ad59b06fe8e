"""Site staff use tablets at the center: the overview and a site's page, on a touch screen held upright
(768 x 1024) or on its side (1024 x 768), fit the screen's width (and so do the other pages) (nothing scrolls sideways), the heat map's cells
are big enough to tap (``MIN_TOUCH_PX``), and a tap on a cell, or on a box's row of its site, opens the box.

Debian's headless Chromium as a touch tablet (touch events, a coarse pointer) against the package's controller
and simulator (tests/console/conftest.py).
"""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.console.conftest import CENTRAL, Console, opened_page, screenshot

pytestmark = pytest.mark.slow

# WCAG 2.2's minimum target size (2.5.8): 24 x 24 CSS pixels. A finger on a sorting floor wants no less.
MIN_TOUCH_PX = 24
TABLETS = {"portrait": {"width": 768, "height": 1024}, "landscape": {"width": 1024, "height": 768}}
BOX = "site-01-gpu-02"


def sideways_overflow(page: Page) -> int:
    """How many CSS pixels the page is wider than the tablet's screen (0: nothing scrolls sideways). Against the
    screen's width, not ``innerWidth``: a mobile browser widens its layout viewport to a page too wide (and zooms
    out), so ``innerWidth`` grows with the page."""
    return int(page.evaluate("() => document.documentElement.scrollWidth - screen.width"))


@pytest.mark.parametrize("held", TABLETS)
def test_the_overview_and_a_site_fit_a_tablet_and_a_tap_opens_a_box(
    console: Console, browser: Browser, held: str
) -> None:
    with opened_page(browser, viewport=TABLETS[held], touch=True, headers=console.headers) as (page, problems):
        page.goto(console.url + "/")
        expect(page.locator("body[data-ready=overview]")).to_be_attached()
        assert page.evaluate("matchMedia('(pointer: coarse)').matches") is True  # the browser is a touch screen
        assert sideways_overflow(page) == 0
        # The check sees a page that is too wide: a heat map twice the screen's width, planted and taken away.
        page.evaluate("document.getElementById('heatmap').style.minWidth = `${2 * innerWidth}px`")
        assert sideways_overflow(page) > 0
        page.evaluate("document.getElementById('heatmap').style.minWidth = ''")
        assert sideways_overflow(page) == 0

        sizes = page.locator("#heatmap .cell").evaluate_all(
            "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })"
        )
        assert len(sizes) == len(console.boxes)
        too_small = [size for size in sizes if min(size) < MIN_TOUCH_PX]
        assert too_small == [], f"cells smaller than {MIN_TOUCH_PX} px to tap: {too_small[:3]}"
        screenshot(page, f"tablet-{held}-overview")

        page.locator(f"#heatmap .cell[data-box={BOX}]").tap()
        expect(page).to_have_url(console.url + f"/boxes/{BOX}")
        expect(page.locator("body[data-ready=box]")).to_be_attached()
        assert sideways_overflow(page) == 0

        page.goto(console.url + "/sites/site-01")
        expect(page.locator("body[data-ready=site]")).to_be_attached()
        expect(page.locator("#boxes tbody tr")).to_have_count(5)
        assert sideways_overflow(page) == 0
        link = page.locator(f"#boxes tr[data-box={BOX}] a")
        box = link.bounding_box()
        assert box is not None
        assert box["height"] >= MIN_TOUCH_PX, box
        screenshot(page, f"tablet-{held}-site")
        link.tap()
        expect(page).to_have_url(console.url + f"/boxes/{BOX}")

        # The other pages fit too: their wide tables scroll inside their frames, not the page.
        for path, ready in [
            ("/versions", "versions"),
            ("/alerts", "alerts"),
            ("/rollouts", "rollouts"),
            ("/rollouts/new", "new-rollout"),
            (f"/clusters/{CENTRAL}", "cluster"),
        ]:
            page.goto(console.url + path)
            expect(page.locator(f"body[data-ready={ready}]")).to_be_attached()
            assert sideways_overflow(page) == 0, path
    assert problems.errors == []
    assert problems.missing_strings == []

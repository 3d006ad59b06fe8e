"""A release manager starts an urgent rollout from the console while its canary site is inside a blackout window:
the plan preview shows the site in its window, offers to override the windows, and will not start with the
override chosen until a reason is given; the start sends the reason to the API the CLI uses
(``override_blackout`` in ``POST /api/v1/rollouts``), the rollout records and shows it, and the canary starts
inside its window instead of waiting it out.

Debian's headless Chromium against the package's real controller and simulator (tests/console/conftest.py).
"""

from __future__ import annotations

import re

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import Console, Dialogs, screenshot
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

REASON = "INC-4711: the label printer crash"
# Newer than anything the simulator runs and than the other tests' releases; its canary, site-01, is inside a
# blackout for years (a dates window: a daily one cannot last a whole day), the other sites are not. A soak long
# enough that nothing ends while the test looks, and the wave after the canary waits for a promotion.
RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {name: scan-upload-1.17.0}
spec:
  app: scan-upload
  version: 1.17.0
  images:
    scan-upload: registry.local:5000/edgefleet/scan-upload:1.17.0
  strategy:
    canary: {sites: [site-01], coverHardware: false}
    waves: ["100%"]
    soak: 10m
    approvalBefore: [1]
    blackouts:
      - {dates: "2026-01-01..2036-12-31", reason: sorting peak, sites: [site-01]}
"""
WITHIN_MS = 10_000


def api(console: Console, path: str) -> dict[str, object]:
    response = httpx.get(console.url + path, headers=console.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def test_a_rollout_starts_inside_a_blackout_with_a_reason(console: Console, page: Page, dialogs: Dialogs) -> None:
    page.goto(console.url + "/rollouts/new")
    expect(page.locator("body[data-ready=new-rollout]")).to_be_attached()
    page.locator("#release").fill(RELEASE)
    page.locator("#preview").click()

    # The plan shows the canary inside its window, and the override is offered, off.
    blackouts = page.locator("#blackouts li")
    expect(blackouts).to_have_count(1)
    expect(blackouts).to_have_attribute("data-site", "site-01")
    expect(blackouts).to_contain_text("sorting peak")
    override = page.locator("#override-blackout")
    expect(override).not_to_be_checked()
    expect(page.locator("#start")).to_be_enabled()  # without the override, the canary would wait out its window

    # Chosen, the override needs a reason: blanks are none.
    override.check()
    reason = page.locator("#override-reason")
    expect(reason).to_be_visible()
    expect(page.locator("#start")).to_be_disabled()
    expect(page.locator("#needs-reason")).to_be_visible()
    reason.fill("   ")
    expect(page.locator("#start")).to_be_disabled()
    reason.fill(REASON)
    expect(page.locator("#start")).to_be_enabled()
    expect(page.locator("#needs-reason")).to_have_count(0)
    screenshot(page, "rollout-plan-blackout")

    page.locator("#start").click()

    expect(page).to_have_url(re.compile(r"/rollouts/r-\d{8}-[0-9a-z]+$"))
    expect(page.locator("body[data-ready=rollout]")).to_be_attached()
    rollout_id = page.url.rsplit("/", 1)[1]
    (confirmation,) = dialogs.confirmed()
    assert f"starting sites inside their blackout windows ({REASON})" in confirmation
    rollout = api(console, f"/api/v1/rollouts/{rollout_id}")
    assert (rollout["blackout_override"], rollout["created_by"]) == (REASON, "tester")
    expect(page.locator("#facts")).to_contain_text(REASON)

    # The canary starts inside its window (it would be blocked otherwise), and says why on the page.
    canary = page.locator("section.wave[data-wave='0'] tr[data-site=site-01]")
    expect(canary).to_have_attribute("data-state", re.compile("in-progress|soaking"), timeout=WITHIN_MS)
    expect(canary).to_contain_text(REASON)
    screenshot(page, "rollout-blackout-overridden")

    # Aborted, the canary goes back to the release it ran (the overview's tests want the fleet as it was).
    page.locator("#commands button[data-command=abort]").click()
    expect(page.locator("h1 .badge")).to_have_attribute("data-state", "aborted", timeout=30_000)

    def as_before() -> bool:
        cells = api(console, "/api/v1/overview")["cells"]
        assert isinstance(cells, dict)
        return "1.17.0" not in str(cells) and all(cell[1] == "online" for cell in cells.values())

    wait_for(as_before, timeout=30, what="the canary's boxes to run their previous release again, all online")

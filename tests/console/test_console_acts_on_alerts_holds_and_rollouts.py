"""Done when (issue 16, the rest): in a real browser, a user acknowledges and silences an alert from the alerts
page (another open page sees it without a reload), holds and releases a site from its page, which charts its
last hours, sees which version runs where, and previews, starts, pauses and aborts a rollout from the rollout
pages; every action goes through the API the CLI uses, and the API then says it happened.

Debian's headless Chromium against the package's real controller and simulator (tests/console/conftest.py). The
pages ask with the browser's own dialogs (a reason, a confirmation; who acts is who signed in); the tests answer them and keep
what was asked. Each test saves screenshots of the pages it checks under docs/screenshots/.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.console.conftest import WHO, Console, Dialogs, screenshot
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

HOT_BOX = "site-03-gpu-01"
HELD_SITE = "site-04"
# The chain: a heartbeat (0.5 s), the alert loop's evaluation, the live feed's read of the alerts (1 s), one batch
# of the stream (0.5 s), the page reading its API. Comfortably more than that, far less than a test's patience.
WITHIN_MS = 10_000


def api(console: Console, path: str) -> dict[str, object]:
    response = httpx.get(console.url + path, headers=console.headers, timeout=10)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def hot_gpu(console: Console) -> Iterator[str]:
    """A GPU box held at 95 C by the simulator: its gpu-overheat alert fires within a second or two."""
    fault = console.fault(kind="overheat", box=HOT_BOX, seconds=120, temperature_c=95)
    yield HOT_BOX
    console.end_fault(str(fault["id"]))


def test_an_alert_is_acknowledged_and_silenced_from_the_page(
    console: Console, page: Page, dialogs: Dialogs, hot_gpu: str
) -> None:
    page.goto(console.url + "/alerts")
    expect(page.locator("body[data-ready=alerts]")).to_be_attached()
    watcher = page.context.new_page()  # a second page, open all along: it must follow without a reload
    watcher.goto(console.url + "/alerts")
    expect(watcher.locator("body[data-ready=alerts]")).to_be_attached()
    watcher.evaluate("window.sameDocument = true")

    # The alert fires while the page is open: it appears among the firing ones without a reload.
    firing = page.locator("#firing tr[data-state=firing]", has_text=hot_gpu)
    expect(firing).to_have_count(1, timeout=WITHIN_MS)
    alert_id = firing.get_attribute("data-alert")
    assert alert_id is not None
    expect(firing).to_contain_text("gpu-overheat")
    screenshot(page, "alerts")

    firing.locator("button[data-action=ack]").click()

    acknowledged = page.locator(f"#acknowledged tr[data-alert='{alert_id}']")
    expect(acknowledged).to_have_attribute("data-state", "acknowledged")
    expect(acknowledged).to_contain_text(f"by {WHO}")
    alert = api(console, f"/api/v1/alerts/{alert_id}")
    assert (alert["state"], alert["acknowledged_by"]) == ("acknowledged", WHO)
    expect(watcher.locator(f"#acknowledged tr[data-alert='{alert_id}']")).to_have_count(1, timeout=WITHIN_MS)
    assert watcher.evaluate("window.sameDocument") is True

    # Silencing asks how long, why, and for a confirmation that says what it mutes; the alert then folds under
    # its silence.
    dialogs.answers += ["10m", "a fan is being replaced"]
    acknowledged.locator("button[data-action=silence]").click()
    muted = page.locator(f"#muted details[data-muted-by] tr[data-alert='{alert_id}']")
    expect(muted).to_be_attached(timeout=WITHIN_MS)
    (confirmation,) = dialogs.confirmed()
    assert f"gpu-overheat alert of {hot_gpu} for 10m" in confirmation
    alert = api(console, f"/api/v1/alerts/{alert_id}")
    assert alert["muted"] == "silenced"
    page.locator("#muted details summary").first.click()
    expect(page.locator("#muted details summary").first).to_contain_text("a fan is being replaced")
    screenshot(page, "alerts-muted")
    watcher.close()


def test_a_site_is_held_and_released_from_its_page_which_charts_its_last_hours(
    console: Console, page: Page, dialogs: Dialogs
) -> None:
    page.goto(console.url + f"/sites/{HELD_SITE}")
    expect(page.locator("body[data-ready=site]")).to_be_attached()
    # The charts come from the stored history: the site's boxes have beaten since the fixture started.
    for chart in ("temperature", "utilization"):
        expect(page.locator(f"#site-charts figure[data-chart={chart}]")).not_to_have_attribute("data-points", "0")
        expect(page.locator(f"#site-charts figure[data-chart={chart}] svg circle")).to_have_count(1)

    dialogs.answers.append("switch replaced tonight")
    page.locator("#hold button[data-action=hold]").click()

    expect(page.locator("#hold [data-held=true]")).to_contain_text("switch replaced tonight")
    hold = api(console, f"/api/v1/sites/{HELD_SITE}/hold")
    assert (hold["reason"], hold["by"]) == ("switch replaced tonight", WHO)
    screenshot(page, "site-held")

    page.locator("#hold button[data-action=release]").click()
    expect(page.locator("#hold [data-held=false]")).to_be_attached()
    assert (
        httpx.get(f"{console.url}/api/v1/sites/{HELD_SITE}/hold", headers=console.headers, timeout=10).status_code
        == 404
    )
    (confirmation,) = dialogs.confirmed()
    assert f"Release {HELD_SITE}?" in confirmation

    # A box's page charts its own history.
    page.goto(console.url + f"/boxes/{HELD_SITE}-gpu-01")
    expect(page.locator("#box-charts figure[data-chart=temperature]")).not_to_have_attribute("data-points", "0")


# A release newer than anything the simulator runs (1.12.0 or 1.13.1): the canary is site-01, then every other site
# in one wave that waits for a promotion; a soak long enough that nothing ends while the test looks.
RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {name: scan-upload-1.15.0}
spec:
  app: scan-upload
  version: 1.15.0
  images:
    scan-upload: registry.local:5000/edgefleet/scan-upload:1.15.0
  strategy:
    canary: {sites: [site-01], coverHardware: false}
    waves: ["100%"]
    maxInFlight: 10
    soak: 10m
    approvalBefore: [1]
    failureThreshold: {sites: 3, percentOfWave: 100}
    gates: {runningPercent: 100, healthTolerancePercent: 50}
"""


def test_a_rollout_is_previewed_started_paused_and_aborted_from_the_page(
    console: Console, page: Page, dialogs: Dialogs, tmp_path: Path
) -> None:
    page.goto(console.url + "/rollouts")
    expect(page.locator("body[data-ready=rollouts]")).to_be_attached()
    page.locator("#new-rollout").click()
    expect(page.locator("body[data-ready=new-rollout]")).to_be_attached()
    expect(page.locator("#start")).to_be_disabled()  # nothing starts before its plan was seen

    release = tmp_path / "scan-upload-1.15.0.yaml"
    release.write_text(RELEASE)
    page.locator("#release-file").set_input_files(str(release))  # picked from a file: the text fills in
    expect(page.locator("#release")).to_have_value(RELEASE)
    page.locator("#preview").click()

    waves = page.locator("#plan-waves tbody tr")
    expect(waves).to_have_count(2)
    expect(waves.nth(0).locator("[data-site]")).to_have_text(["site-01"])
    expect(waves.nth(1)).to_contain_text("site-02")
    screenshot(page, "rollout-plan")

    page.locator("#start").click()

    expect(page).to_have_url(re.compile(r"/rollouts/r-\d{8}-[0-9a-z]+$"))
    expect(page.locator("body[data-ready=rollout]")).to_be_attached()
    rollout_id = page.url.rsplit("/", 1)[1]
    assert api(console, f"/api/v1/rollouts/{rollout_id}")["created_by"] == WHO
    # The canary goes live on the page as the reconciler moves it (no reload).
    canary = page.locator("section.wave[data-wave='0'] tr[data-site=site-01]")
    expect(canary).to_have_attribute("data-state", re.compile("in-progress|soaking"), timeout=WITHIN_MS)

    # The versions matrix marks the rollout's waves, the canary's as the one under way.
    versions = page.context.new_page()
    versions.goto(console.url + "/versions")
    expect(versions.locator("body[data-ready=versions]")).to_be_attached()
    row = versions.locator("#versions tr[data-app=scan-upload]")
    expect(row.locator("td[data-site=site-01]")).to_have_attribute("data-wave", "0")
    expect(row.locator("td[data-site=site-01]")).to_have_class(re.compile(r"\bcurrent-wave\b"))
    expect(row.locator("td[data-site=site-02]")).to_have_attribute("data-wave", "1")
    expect(row.locator("td[data-site=site-02]")).to_have_attribute("data-lagging", "true")  # 1.15.0 is the target
    expect(row.locator(".rollout-link")).to_contain_text(rollout_id)
    screenshot(versions, "versions")
    versions.close()

    page.locator("#commands button[data-command=pause]").click()
    expect(page.locator("h1 .badge")).to_have_attribute("data-state", "paused")
    assert api(console, f"/api/v1/rollouts/{rollout_id}")["paused"] is True
    expect(page.locator("#commands button[data-command=resume]")).to_be_visible()
    screenshot(page, "rollout")

    page.locator("#commands button[data-command=abort]").click()

    expect(page.locator("h1 .badge")).to_have_attribute("data-state", re.compile("aborting|aborted"))
    assert api(console, f"/api/v1/rollouts/{rollout_id}")["aborted"] is True
    starting, aborting = dialogs.confirmed()
    assert "Start rolling out scan-upload 1.15.0 to 4 sites?" in starting
    assert f"Abort rollout {rollout_id}" in aborting
    # The abort reverts the canary; the page follows to the end without a reload.
    expect(page.locator("h1 .badge")).to_have_attribute("data-state", "aborted", timeout=30_000)

    page.goto(console.url + "/rollouts")
    expect(page.locator(f"#rollouts tr[data-rollout='{rollout_id}'] .badge")).to_have_attribute("data-state", "aborted")
    screenshot(page, "rollouts")

    # Back as it was: the canary's boxes report the release they ran before (the overview's tests want it so).
    def as_before() -> bool:
        cells = api(console, "/api/v1/overview")["cells"]
        assert isinstance(cells, dict)
        return "1.15.0" not in str(cells) and all(cell[1] == "online" for cell in cells.values())

    wait_for(as_before, timeout=30, what="the canary's boxes to run their previous release again, all online")

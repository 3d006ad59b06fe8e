"""Every page of the console speaks Chinese when the browser does: no English catalogue text stands in for a
Chinese one, and no key is shown bare. The pages are opened in a real browser (the ``zh-CN`` locale picks the
language, as a Chinese tablet's browser would) and each string the pages ask for at run time (including those
whose keys are built, like ``state.${s}``, which no reading of the source finds) must be in the zh-CN catalogue:
``t`` says on the browser's console which key a catalogue lacked, and ``opened_page`` collects it. A planted
catalogue, served with one key removed, shows the guard sees it.

The clusters' pages are in the sweep too. Each page's screenshot in Chinese is saved under docs/screenshots/ as ``<page>-zh-CN.png``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser, Page, Route, expect

from edgefleet.cloud.console.assets import static_dir
from tests.console.conftest import CENTRAL, Console, opened_page, screenshot
from tests.support.peers import wait_for

pytestmark = pytest.mark.slow

BOX = "site-01-gpu-01"
# A release every site holds back (a blackout all day, everywhere): its rollout starts, shows its sites blocked,
# and changes nothing in the fleet, so the other tests find it as it was once it is aborted.
BLOCKED_RELEASE = """\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {name: scan-upload-1.16.0}
spec:
  app: scan-upload
  version: 1.16.0
  images:
    scan-upload: registry.local:5000/edgefleet/scan-upload:1.16.0
  strategy:
    canary: {sites: [site-01], coverHardware: false}
    waves: ["100%"]
    soak: 10m
    blackouts:
      - {dates: "2026-01-01..2036-12-31", reason: sorting peak}
"""
CATALOGUE_LINE = re.compile(r'^\s*"([\w.-]+)":\s*"(.*)",?\s*$', re.MULTILINE)
HAN = re.compile(r"[\u4e00-\u9fff]")


def catalogue(name: str) -> dict[str, str]:
    return dict(CATALOGUE_LINE.findall((static_dir() / "strings" / name).read_text(encoding="utf-8")))


def english_only_texts() -> set[str]:
    """The English catalogue's texts that the Chinese one says otherwise, without placeholders: one of them on a
    Chinese page is English standing in."""
    english, chinese = catalogue("en.js"), catalogue("zh-CN.js")
    return {
        text
        for key, text in english.items()
        if "{" not in text and re.search(r"[A-Za-z]{2}", text) and chinese.get(key) != text
    }


def visible_texts(page: Page) -> list[str]:
    """Every text node the page shows (trimmed), the top bar's included."""
    return page.evaluate(
        """() => {
          const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
          const texts = [];
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const text = node.textContent.trim();
            if (text && node.parentElement.checkVisibility()) texts.push(text);
          }
          return texts;
        }"""
    )


@pytest.fixture
def blocked_rollout(console: Console) -> Iterator[str]:
    """A rollout whose every site waits out a blackout (nothing applied), aborted afterwards."""
    response = httpx.post(
        f"{console.url}/api/v1/rollouts", json={"release": BLOCKED_RELEASE}, headers=console.headers, timeout=30
    )
    assert response.status_code == 201, response.text
    rollout_id = str(response.json()["id"])

    def blocked() -> bool:
        body = httpx.get(f"{console.url}/api/v1/rollouts/{rollout_id}", headers=console.headers, timeout=10).json()
        return bool(body["blocked"])

    wait_for(blocked, timeout=15, what="the rollout's sites to show blocked by the blackout")
    yield rollout_id
    httpx.post(f"{console.url}/api/v1/rollouts/{rollout_id}/abort", headers=console.headers, timeout=10)

    def ended() -> bool:
        answer = httpx.get(f"{console.url}/api/v1/rollouts/{rollout_id}", headers=console.headers, timeout=10)
        return bool(answer.json()["state"] == "aborted")

    wait_for(ended, timeout=30, what="the blocked rollout to end aborted")


def test_every_page_speaks_chinese(console: Console, browser: Browser, blocked_rollout: str) -> None:
    pages = [
        ("/", "overview", None),
        ("/sites/site-01", "site", "site"),
        (f"/boxes/{BOX}", "box", "box"),
        ("/versions", "versions", "versions"),
        ("/alerts", "alerts", "alerts"),
        ("/rollouts", "rollouts", "rollouts"),
        (f"/rollouts/{blocked_rollout}", "rollout", "rollout"),
        ("/rollouts/new", "new-rollout", "rollout-plan"),
        ("/clusters", "clusters", "clusters"),
        (f"/clusters/{CENTRAL}", "cluster", None),  # its screenshot: test_console_shows_central_clusters_...
    ]
    english = english_only_texts()
    with opened_page(browser, locale="zh-CN", headers=console.headers) as (page, problems):
        for path, ready, shot in pages:
            page.goto(console.url + path)
            expect(page.locator(f"body[data-ready={ready}]")).to_be_attached()
            expect(page.locator("#live")).to_have_attribute("data-state", "open")
            expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
            expect(page.locator("h1")).to_have_text(HAN)
            if ready == "rollout":
                # The blocked sites and the command that lets them start: strings only this state shows.
                expect(page.locator("#commands button[data-command=override-blackout]")).to_have_text(HAN)
            if ready == "new-rollout":
                page.locator("#release").fill(BLOCKED_RELEASE)
                page.locator("#preview").click()
                expect(page.locator("#plan-waves tbody tr")).to_have_count(2)
            shown = [text for text in visible_texts(page) if text in english]
            assert shown == [], f"{path} shows English where Chinese was due: {shown}"
            assert problems.missing_strings == [], f"{path} asked for strings zh-CN lacks: {problems.missing_strings}"
            if shot is not None:
                screenshot(page, f"{shot}-zh-CN")
    assert problems.errors == []


def test_a_key_missing_from_the_chinese_catalogue_is_caught(console: Console, browser: Browser) -> None:
    """The guard itself: the Chinese catalogue served without ``live.open`` (a key the code builds,
    ``live.${state}``, so only a page that shows it can tell) makes the page report that key, and the English
    text standing in is seen on the page."""
    original = (static_dir() / "strings" / "zh-CN.js").read_text(encoding="utf-8")
    planted = "\n".join(line for line in original.splitlines() if not line.lstrip().startswith('"live.open"'))
    assert planted != original

    def serve_planted(route: Route) -> None:
        route.fulfill(status=200, content_type="text/javascript", body=planted)

    with opened_page(browser, locale="zh-CN", headers=console.headers) as (page, problems):
        page.route("**/console/strings/zh-CN.js", serve_planted)
        page.goto(console.url + "/")
        expect(page.locator("#live")).to_have_attribute("data-state", "open")
        expect(page.locator("#live")).to_have_text(catalogue("en.js")["live.open"])
        wait_for(lambda: problems.missing_strings != [], timeout=5, what="the page to report the missing string")
        assert problems.missing_strings == ["zh-CN live.open"]
        assert catalogue("en.js")["live.open"] in visible_texts(page)

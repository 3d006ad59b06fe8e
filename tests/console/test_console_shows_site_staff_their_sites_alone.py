"""Site staff see their own center and nothing of the others, in the browser too (issue 16: "when roles land, a
site-staff user sees only their sites"; issue 17: object-level checks everywhere). The console draws what the
API gives the caller, so a site-staff token of site-01 gets a heat map of site-01's boxes alone, a versions matrix
of that one site, and another site's page says it is not found, naming nothing of it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, expect

from tests.console.conftest import BOXES_PER_SITE, Console, opened_page
from tests.support.access import bearer, mint_at

pytestmark = pytest.mark.slow

THEIRS, OTHERS = "site-01", "site-02"


def test_site_staff_see_their_site_alone(console: Console, browser: Browser) -> None:
    staff = bearer(mint_at(console.database_url, "site-staff", sites=[THEIRS], name="site-01-staff"))
    with opened_page(browser, headers=staff) as (page, problems):
        page.goto(console.url + "/")
        expect(page.locator("body[data-ready=overview]")).to_be_attached()
        expect(page.locator("#heatmap .cell")).to_have_count(BOXES_PER_SITE)
        shown = page.locator("#heatmap .site").evaluate_all("els => els.map(e => e.dataset.site)")
        assert shown == [THEIRS]
        # The admin's overview of the same fleet has every site: the staff's is filtered, not empty by accident.
        with opened_page(browser, headers=console.headers) as (admin, _):
            admin.goto(console.url + "/")
            expect(admin.locator("#heatmap .cell")).to_have_count(len(console.boxes))

        page.goto(console.url + "/versions")
        expect(page.locator("th[data-site]").first).to_be_attached()
        assert page.locator("th[data-site]").evaluate_all("els => els.map(e => e.dataset.site)") == [THEIRS]

        page.goto(f"{console.url}/sites/{OTHERS}")
        expect(page.locator("main .error")).to_be_visible()
        assert OTHERS + "-gpu-01" not in page.content()
        expect(page.locator("body[data-ready=site]")).not_to_be_attached()
    assert problems.errors == []
    assert problems.missing_strings == []

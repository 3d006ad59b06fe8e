"""Console sign-in in a real browser (Debian's Chromium through Playwright) against the real OpenID Connect
provider: a page asked for without a session goes to /signin, the provider's button leads to its login page, and
after it the console shows the page first asked for, with the person's name; signing out (a POST that must carry
the CSRF token, which the console's script sends) ends the session and comes back to /signin.

``require_access`` is put through its seam to ask the sessions, as identity's glue will (see
test_sessions_need_csrf_and_end_at_signout.py)."""

from __future__ import annotations

import re

from fastapi import Request
from playwright.sync_api import expect, sync_playwright

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.api.errors import Unauthorized
from tests.cloud.signin.conftest import World
from tests.console.conftest import chromium_path


def test_signing_in_through_the_provider_shows_the_console(world: World) -> None:
    def sessions_only(request: Request) -> Principal:
        found = request.state.sessions.principal(request, world.clock.now())
        if found is None:
            raise Unauthorized("sign in first")
        return found  # type: ignore[no-any-return]

    world.app.dependency_overrides[require_access] = sessions_only
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        try:
            context = browser.new_context(locale="en-US")
            page = context.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))

            page.goto(f"{world.url}/versions")
            expect(page).to_have_url(re.compile(r"/signin\?next=%2Fversions$"))
            expect(page.locator("#signin-title")).to_have_text("Sign in to edgefleet")
            page.locator("#provider-link").click()

            expect(page).to_have_url(
                re.compile(re.escape(world.provider.issuer if world.provider else "") + "/interaction/")
            )
            page.locator("#login").fill("alice")
            page.locator("#password").fill("alice-password")
            page.locator("#submit").click()

            expect(page).to_have_url(f"{world.url}/versions")
            expect(page.locator("#who")).to_have_text("alice")
            expect(page.locator("#main")).not_to_be_empty()
            cookies = {c["name"]: c for c in context.cookies(world.url)}
            assert cookies["edgefleet_session"]["httpOnly"] is True
            assert cookies["edgefleet_session"]["sameSite"] == "Lax"

            page.locator("#signout").click()
            expect(page).to_have_url(re.compile(r"/signin$"))
            assert "edgefleet_session" not in {c["name"] for c in context.cookies(world.url)}
            page.goto(f"{world.url}/alerts")
            expect(page).to_have_url(re.compile(r"/signin\?next=%2Falerts$"))
        finally:
            browser.close()
    assert errors == []

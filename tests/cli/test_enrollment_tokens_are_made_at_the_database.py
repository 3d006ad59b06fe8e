"""``edgefleet enrollment create|list`` works on the controller's database with no API token (like ``edgefleet
tokens``): the token is printed once and redeems once for its site, ``list`` never shows it, and a bad expiry or
site is one line naming what to fix."""

from __future__ import annotations

import json
import time

from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.store import Store
from tests.cli.entry import edgefleet


def test_create_then_list_at_the_database(database_url: str) -> None:
    env = {"EDGEFLEET_DATABASE_URL": database_url}

    made = edgefleet("enrollment", "create", "--site", "berlin-1", "--expires", "2h", "-o", "json", env=env)

    assert made.returncode == 0, made.stderr
    created = json.loads(made.stdout)
    secret = created["token"]
    assert created["site"] == "berlin-1"
    assert created["state"] == "usable"
    assert created["expires_at"] - created["created_at"] == 2 * 3600
    store = Store(database_url)
    try:
        with EnrollmentTokens(store).redeeming(secret, box="berlin-1-gpu-01", now=time.time()) as site:
            assert site == "berlin-1"
    finally:
        store.close()

    listed = edgefleet("enrollment", "list", "-o", "json", env=env)
    assert listed.returncode == 0, listed.stderr
    assert secret not in listed.stdout
    assert [(t["site"], t["state"], t["used_by"]) for t in json.loads(listed.stdout)] == [
        ("berlin-1", "used", "berlin-1-gpu-01")
    ]
    table = edgefleet("enrollment", "create", "--site", "berlin-1", env=env)
    assert table.returncode == 0, table.stderr
    assert "shown this once" in table.stdout


def test_bad_requests_are_one_line(database_url: str) -> None:
    env = {"EDGEFLEET_DATABASE_URL": database_url}

    too_long = edgefleet("enrollment", "create", "--site", "berlin-1", "--expires", "30d", env=env)
    bad_site = edgefleet("enrollment", "create", "--site", "Berlin 1", env=env)

    assert too_long.returncode == 1
    assert "an enrollment token lasts at most 7 days" in too_long.stderr
    assert bad_site.returncode == 1
    assert bad_site.stderr.startswith("error: site: ")

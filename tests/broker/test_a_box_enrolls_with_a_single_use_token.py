"""Box enrollment end to end, on real parts: a real ``Controller`` (SQLite) behind the API, a real Mosquitto run
from what ``edgefleet broker config`` writes, and the agent's own ``enroll`` and ``run --config`` code.

A box of the token's site enrolls, and the agent starts from the files enrollment wrote (0600 secrets), connects
with its issued login and its heartbeat is taken; revoking the box cuts it off at once. A used token, an expired
token and a token of another site are refused, and a refused or failed enrollment leaves a good token usable.
"""

from __future__ import annotations

import json
import logging
import stat
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from edgefleet.agent import cli as agent_cli
from edgefleet.agent.enrolling import ENV_FILE, KEY_FILE, PASSWORD_FILE, read_env_file, with_env_file
from edgefleet.agent.link import BoxLink
from edgefleet.agent.reporting import BoxReporter
from edgefleet.clock import SystemClock
from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.api import create_app
from edgefleet.cloud.broker import grants
from edgefleet.cloud.settings import Settings
from edgefleet.cloud.store import Store
from tests.cloud.api.memory import apps, host, write_inventory
from tests.cloud.api.serving import serving
from tests.cloud.builders import gpus
from tests.support.access import bearer, mint_at
from tests.support.peers import wait_for
from tests.support.secured_broker import SecuredBroker, secured_broker

SITE, BOX, OTHER_SITE_BOX, NEW_BOX = "sh-pudong", "sh-pudong-gpu-01", "bj-daxing-edge-01", "sh-pudong-gpu-99"


@dataclass
class Fleet:
    api: httpx.Client
    url: str
    secured: SecuredBroker
    database_url: str

    def token(self, site: str = SITE) -> str:
        answer = self.api.post(f"/api/v1/sites/{site}/enrollment-tokens", json={"expires_in": "10m"})
        assert answer.status_code == 201, answer.text
        token: str = answer.json()["token"]
        return token

    def enroll(self, token: str, box: str) -> httpx.Response:
        return self.api.post("/api/v1/enroll", json={"token": token, "box": box})


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with secured_broker(tmp_path) as secured:
        cert, key = secured.controller_cert()
        sites = write_inventory(tmp_path / "sites")
        (sites / "bj-daxing.yaml").write_text(
            (sites / "bj-daxing.yaml").read_text() + "  boxes:\n    - {name: bj-daxing-edge-01, role: edge-node}\n"
        )
        settings = Settings(
            broker_url=f"mqtts://127.0.0.1:{secured.port}",
            broker_username=grants.CONTROLLER_USERNAME,
            broker_password=secured.controller_password(),
            broker_ca_file=secured.ca_file,
            broker_cert_file=cert,
            broker_key_file=key,
            database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}",
            sites_dir=sites,
            broker_dir=secured.config_dir,
            pki_dir=secured.pki_dir,
        )
        with serving(create_app(settings)) as url, httpx.Client(base_url=url, timeout=30) as client:
            wait_for(lambda: client.get("/healthz").status_code == 200, what="the controller to hear the broker")
            # The installer's admin token, made at the controller's database as 'edgefleet tokens create' does.
            client.headers.update(bearer(mint_at(settings.database_url, name="installer")))
            yield Fleet(client, url, secured, settings.database_url)


def _run_agent(env_file: Path) -> BoxLink:
    """The agent as ``edgefleet agent run --config`` sets it up, minus the probes: its link, connecting."""
    args = agent_cli.build_parser().parse_args(["run", "--config", str(env_file), "--no-gpu"])
    settings = agent_cli.resolve_settings(args, with_env_file({}, env_file))
    link = BoxLink(BoxReporter(settings.box, settings.site, interval_s=10.0, clock=SystemClock()), settings.broker)
    link.connect_async()
    link.client.loop_start()
    return link


def test_an_enrolled_box_reports_with_its_own_login_and_revoking_cuts_it_off(
    fleet: Fleet, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    caplog.set_level(logging.DEBUG)
    token = fleet.token()
    directory = tmp_path / "box-etc"

    status = agent_cli.main(
        ["enroll", "--token", token, "--controller", fleet.url, "--box", BOX, "--dir", str(directory)]
    )

    printed = capsys.readouterr()
    assert status == 0, printed.err
    env = read_env_file(directory / ENV_FILE)
    assert env["EDGEFLEET_BOX"] == BOX
    assert env["EDGEFLEET_SITE"] == SITE
    for secret_file in (directory / ENV_FILE, directory / PASSWORD_FILE, directory / KEY_FILE):
        assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600, secret_file
    password = (directory / PASSWORD_FILE).read_text().strip()
    # No secret in what the command printed, nor in any log line of the controller or the agent.
    for secret in (token, password):
        assert secret not in printed.out + printed.err
        assert secret not in caplog.text
    assert password not in (directory / ENV_FILE).read_text()
    # The audit names the token's maker and the box that redeemed it, and neither secret.
    entries = fleet.api.get("/api/v1/audit").json()
    made = [e for e in entries if e["action"] == "create-enrollment-token"]
    enrolled = [e for e in entries if e["action"] == "enroll-box"]
    assert [e["principal"] for e in made] == ["installer"]
    assert [(e["principal"], e["target"], e["site"]) for e in enrolled] == [
        (f"box {BOX}", {"kind": "box", "id": BOX}, SITE)
    ]
    assert token not in json.dumps(entries)
    assert password not in json.dumps(entries)

    link = _run_agent(directory / ENV_FILE)
    try:
        wait_for(lambda: link.connected, what="the enrolled box to connect with its own login")

        def online() -> dict[str, Any] | None:
            # A heartbeat sent before the controller's subscription is active is lost (not retained): resend.
            link.send(link.reporter.heartbeat(host(), gpus((60.0, 50.0)), apps("running")))
            box: dict[str, Any] = fleet.api.get(f"/api/v1/boxes/{BOX}").json()
            return box if box["reachability"]["state"] == "online" else None

        assert wait_for(online, interval=0.2, what="the enrolled box's heartbeat taken")["boot"] == link.reporter.boot

        with fleet.secured.accounts() as accounts:
            accounts.revoke_box(BOX)
        wait_for(lambda: not link.connected, what="the revoked box cut off")
    finally:
        link.client.loop_stop()
        link.client.disconnect()


def test_a_used_token_is_refused(fleet: Fleet) -> None:
    token = fleet.token()
    assert fleet.enroll(token, BOX).status_code == 200

    again = fleet.enroll(token, "sh-pudong-gpu-02")

    assert again.status_code == 401
    assert again.json()["error"]["message"].startswith("the enrollment token is unknown, used or expired")


def test_an_expired_token_is_refused(fleet: Fleet) -> None:
    store = Store(fleet.database_url)
    try:
        token, _ = EnrollmentTokens(store).create(SITE, created_by="test", now=time.time() - 120, expires_in_s=60)
    finally:
        store.close()

    assert fleet.enroll(token, BOX).status_code == 401


def test_a_token_of_one_site_cannot_enroll_a_box_of_another(fleet: Fleet) -> None:
    token = fleet.token(SITE)

    refused = fleet.enroll(token, OTHER_SITE_BOX)

    assert refused.status_code == 403
    assert "use a token of the box's own site" in refused.json()["error"]["message"]
    with fleet.secured.accounts() as accounts:
        assert [entry.box for entry in accounts.list_boxes()] == []
    # The refusal did not spend the token: the site's own box still enrolls with it.
    assert fleet.enroll(token, BOX).status_code == 200


def test_a_box_in_no_manifest_enrolls_and_is_listed_unknown_with_its_enrolled_site(
    fleet: Fleet, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    directory = tmp_path / "new-box"
    argv = ["enroll", "--token", fleet.token(), "--controller", fleet.url, "--box", NEW_BOX, "--dir", str(directory)]

    assert agent_cli.main(argv) == 0
    assert "in no site manifest yet" in capsys.readouterr().out
    link = _run_agent(directory / ENV_FILE)
    try:
        wait_for(lambda: link.connected, what="the new box to connect")

        def listed() -> list[dict[str, Any]] | None:
            link.send(link.reporter.heartbeat(host(), gpus((60.0, 50.0)), apps("running")))
            unknown: list[dict[str, Any]] = fleet.api.get("/api/v1/unknown-boxes").json()
            return unknown or None

        (unknown,) = wait_for(listed, interval=0.2, what="the new box in the unknown list")
    finally:
        link.client.loop_stop()
        link.client.disconnect()
    # The site it claims is its own word; the site it enrolled for is the controller's.
    assert (unknown["box"], unknown["claimed_site"], unknown["enrolled_site"]) == (NEW_BOX, SITE, SITE)


def test_a_box_enrolled_already_is_refused_and_the_token_kept(fleet: Fleet) -> None:
    assert fleet.enroll(fleet.token(), BOX).status_code == 200
    token = fleet.token()

    refused = fleet.enroll(token, BOX)

    assert refused.status_code == 409
    assert "revoke it first" in refused.json()["error"]["message"]
    assert fleet.enroll(token, "sh-pudong-gpu-02").status_code == 200


def test_token_guesses_are_rate_limited_per_source(fleet: Fleet) -> None:
    answers = [fleet.enroll(f"ef_guess-{n}", BOX).status_code for n in range(12)]

    assert answers[:10] == [401] * 10
    assert answers[10:] == [429, 429]
    # While refused, even a good token gets 429: a guesser learns nothing from the answer.
    limited = fleet.enroll(fleet.token(), BOX)
    assert limited.status_code == 429
    assert int(limited.headers["Retry-After"]) > 0


def test_two_boxes_racing_with_one_token_one_wins(database_url: str) -> None:
    store = Store(database_url)
    try:
        tokens = EnrollmentTokens(store)
        tokens.create_schema()
        secret, _ = tokens.create(SITE, created_by="test", now=time.time())
        won: list[str] = []
        start = threading.Barrier(2)

        def race(box: str) -> None:
            start.wait()
            with tokens.redeeming(secret, box=box, now=time.time()) as site:
                if site is not None:
                    won.append(box)
                    # Hold the transaction open, as enrollment does while it makes the broker account.
                    time.sleep(0.2)

        racers = [threading.Thread(target=race, args=(box,)) for box in ("sh-pudong-gpu-01", "sh-pudong-gpu-02")]
        for racer in racers:
            racer.start()
        for racer in racers:
            racer.join()

        assert len(won) == 1
        (record,) = tokens.tokens()
        assert record.used_by == won[0]
    finally:
        store.close()

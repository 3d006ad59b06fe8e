"""The simulator's receivers (simulator.inbox): its DingTalk-like robot answers as DingTalk's custom robot does
(token, signature made by the controller's own signing code, timestamp window, size and rate limits, message
shape) and keeps only what it accepted; the webhook keeps JSON; ``edgefleet sim inbox`` shows what arrived."""

from __future__ import annotations

import json
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest
from typer.testing import CliRunner

from edgefleet.cli.sim import app
from edgefleet.cloud.alerting.delivery import dingtalk_url
from simulator.inbox import (
    BAD_BODY,
    MAX_BODY_BYTES,
    OK,
    PER_MINUTE,
    SIGN_MISMATCH,
    TIMESTAMP_INVALID,
    TOKEN_UNKNOWN,
    TOO_FAST,
    TOO_LONG,
    Inbox,
)
from simulator.running import SimulatorOptions, start_in_background

TOKEN, SECRET = "a1b2c3", "SECdemo-secret"
NOW = 1_780_000_000.0
MESSAGE = {"msgtype": "markdown", "markdown": {"title": "edgefleet", "text": "### rollout r-1 aborted"}}


def _query(*, token: str = TOKEN, secret: str = SECRET, at: float = NOW) -> dict[str, str]:
    """The query the controller's DingTalk sender puts on the robot URL (edgefleet's own signing code)."""
    url = dingtalk_url(f"http://sim/receivers/dingtalk/ops/robot/send?access_token={token}", secret, int(at * 1000))
    return dict(parse_qsl(urlsplit(url).query))


def _body(message: object = MESSAGE) -> bytes:
    return json.dumps(message).encode()


@pytest.mark.parametrize(
    ("query", "body", "answer"),
    [
        (_query(), _body(), OK),
        (_query(token="wrong"), _body(), TOKEN_UNKNOWN),
        (_query(secret="SECsomething-else"), _body(), SIGN_MISMATCH),
        (_query(at=NOW - 3700), _body(), TIMESTAMP_INVALID),  # signed over an hour before
        ({"access_token": TOKEN}, _body(), TIMESTAMP_INVALID),  # not signed at all
        (_query(), b"x" * (MAX_BODY_BYTES + 1), TOO_LONG),
        (_query(), b"not json", BAD_BODY),
        (_query(), _body({"msgtype": "markdown"}), BAD_BODY),  # the type without its content
        (_query(), _body({"msgtype": "video", "video": {}}), BAD_BODY),
    ],
)
def test_the_robot_answers_as_dingtalk_and_keeps_only_what_it_accepted(
    query: dict[str, str], body: bytes, answer: tuple[int, str]
) -> None:
    inbox = Inbox(TOKEN, SECRET)
    assert inbox.dingtalk("ops", query, body, now=NOW) == answer
    assert len(inbox.messages()) == (1 if answer == OK else 0)


def test_a_robot_takes_twenty_messages_a_minute_then_refuses_until_the_minute_has_passed() -> None:
    inbox = Inbox(TOKEN, SECRET)
    answers = [inbox.dingtalk("ops", _query(at=NOW + i), _body(), now=NOW + i) for i in range(PER_MINUTE + 1)]
    assert answers == [OK] * PER_MINUTE + [TOO_FAST]
    assert inbox.dingtalk("other", _query(at=NOW + 30), _body(), now=NOW + 30) == OK  # per robot
    assert inbox.dingtalk("ops", _query(at=NOW + 61), _body(), now=NOW + 61) == OK
    assert [m.number for m in inbox.messages(since=PER_MINUTE)] == [PER_MINUTE + 1, PER_MINUTE + 2]


def test_without_a_token_and_secret_any_robot_call_of_the_right_shape_is_kept() -> None:
    inbox = Inbox()
    assert inbox.dingtalk("ops", {}, _body(), now=NOW) == OK
    assert inbox.dingtalk("ops", {}, b"{}", now=NOW) == BAD_BODY


def test_the_webhook_keeps_json_and_refuses_the_rest() -> None:
    inbox = Inbox()
    assert inbox.webhook("tickets", b'{"events": []}', now=NOW)
    assert not inbox.webhook("tickets", b"<xml/>", now=NOW)
    assert [(m.kind, m.receiver, m.body) for m in inbox.messages()] == [("webhook", "tickets", {"events": []})]


def test_a_running_simulator_receives_and_the_inbox_command_shows_it(options: SimulatorOptions) -> None:
    running = start_in_background(replace(options, dingtalk_token=TOKEN, dingtalk_secret=SECRET))
    try:
        base = f"{running.url}/receivers"
        url = dingtalk_url(f"{base}/dingtalk/ops/robot/send?access_token={TOKEN}", SECRET, int(time.time() * 1000))
        assert httpx.post(url, content=_body()).json() == {"errcode": 0, "errmsg": "ok"}
        refused = httpx.post(url.replace(TOKEN, "guess"), content=_body()).json()
        assert refused == {"errcode": TOKEN_UNKNOWN[0], "errmsg": TOKEN_UNKNOWN[1]}
        assert httpx.post(f"{base}/webhook/tickets", json={"rollout": "r-1", "event": "aborted"}).status_code == 200
        assert httpx.post(f"{base}/webhook/tickets", content=b"no json").status_code == 400

        runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1", "EDGEFLEET_SIM_URL": running.url})
        shown = runner.invoke(app, ["inbox"])
        assert shown.exit_code == 0, shown.output
        assert "#1" in shown.output
        assert "dingtalk/ops" in shown.output
        assert "### rollout r-1 aborted" in shown.output
        assert "#2" in shown.output
        assert "webhook/tickets" in shown.output
        assert '"aborted"' in shown.output
        assert TOKEN not in shown.output
        assert SECRET not in shown.output
        as_json = json.loads(runner.invoke(app, ["inbox", "-o", "json"]).output)
        assert [m["receiver"] for m in as_json] == ["ops", "tickets"]
    finally:
        running.stop()

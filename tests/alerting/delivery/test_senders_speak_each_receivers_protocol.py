"""Each sender speaks its receiver's protocol: DingTalk's signed robot URL and errcodes, a webhook's HTTP status,
Alertmanager's ``POST /api/v2/alerts`` (checked against a real Alertmanager); errors say whether to retry and
never show a URL's token or a secret."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from edgefleet.clock import FakeClock
from edgefleet.cloud.alerting import AlertKind, Channel, Notification, Routes
from edgefleet.cloud.alerting.config import ChannelTarget
from edgefleet.cloud.alerting.delivery import (
    DINGTALK_BLOCKED_RETRY_S,
    AlertmanagerSender,
    DeliveryError,
    DingTalkSender,
    PermanentDeliveryError,
    TemporaryDeliveryError,
    WebhookSender,
    alertmanager_alerts_url,
    dingtalk_sign,
    dingtalk_url,
    http_client,
)
from tests.alerting.builders import Scenario, make_inventory
from tests.support.peers import free_port, wait_for
from tests.support.receivers import RecordingReceiver, alertmanager
from tests.support.secrets import SecretWatch

TOKEN = "tok3f9a0c1d2e"
# Computed outside Python, by the documented algorithm:
#   printf '%s\n%s' 1700000000000 SECd4f1c0ffee5eed | openssl dgst -sha256 -hmac SECd4f1c0ffee5eed -binary | base64
SIGN_VECTORS = [
    ("SECd4f1c0ffee5eed", 1_700_000_000_000, "/TWjOev5EjASAtRbR9UWPxuOminRp5IzZDricYDwl7w="),
    ("SEC000000000000000000000", 1_577_836_800_000, "+nNCK5RddMDikgXSXJcDpPb9RZqSQXlesQPy6NpNYUk="),
]
ROBOT = Channel("dingtalk", "ops")
HOOK = Channel("webhook", "tickets")
BODY = json.dumps({"msgtype": "markdown", "markdown": {"title": "t", "text": "### 告警"}}, ensure_ascii=False).encode()


def message(channel: Channel, body: bytes = BODY) -> Notification:
    return Notification(f"{channel.kind}:{channel.name}:1", channel, ("bj-daxing",), (), body, 1_700_000_000.0, 1)


def robot(receiver: RecordingReceiver, secret: str | None = "SECd4f1c0ffee5eed") -> ChannelTarget:
    return ChannelTarget(ROBOT, f"{receiver.url}/robot/send?access_token={TOKEN}", secret)


@pytest.mark.parametrize(("secret", "timestamp_ms", "expected"), SIGN_VECTORS)
def test_dingtalk_sign_follows_the_documented_algorithm(secret: str, timestamp_ms: int, expected: str) -> None:
    encoded = expected.replace("+", "%2B").replace("/", "%2F").replace("=", "%3D")
    assert dingtalk_sign(secret, timestamp_ms) == encoded
    assert dingtalk_url("https://oapi.dingtalk.com/robot/send?access_token=t", secret, timestamp_ms) == (
        f"https://oapi.dingtalk.com/robot/send?access_token=t&timestamp={timestamp_ms}&sign={encoded}"
    )


def test_dingtalk_robot_gets_a_signed_request_with_the_body(receiver: RecordingReceiver, client: httpx.Client) -> None:
    sender = DingTalkSender(client, clock=FakeClock(start=1_700_000_000.0))
    sender.deliver(message(ROBOT), robot(receiver))
    [request] = receiver.received
    assert request.method == "POST"
    assert request.path == "/robot/send"
    assert request.query == {
        "access_token": TOKEN,
        "timestamp": "1700000000000",
        "sign": "/TWjOev5EjASAtRbR9UWPxuOminRp5IzZDricYDwl7w=",
    }
    assert "sign=%2FTWjOev5EjASAtRbR9UWPxuOminRp5IzZDricYDwl7w%3D" in request.raw_query  # URL-encoded once
    assert request.body == BODY
    assert request.headers["content-type"] == "application/json; charset=utf-8"


def test_a_robot_without_secret_gets_no_signature(receiver: RecordingReceiver, client: httpx.Client) -> None:
    DingTalkSender(client).deliver(message(ROBOT), robot(receiver, secret=None))
    assert receiver.received[0].query == {"access_token": TOKEN}


@pytest.mark.parametrize(
    ("status", "errcode", "error", "retry_after_s", "words"),
    [
        (200, -1, TemporaryDeliveryError, 5.0, "errcode -1"),
        (200, 130101, TemporaryDeliveryError, DINGTALK_BLOCKED_RETRY_S, "errcode 130101"),
        (200, 410100, TemporaryDeliveryError, DINGTALK_BLOCKED_RETRY_S, "errcode 410100"),
        (200, 310000, PermanentDeliveryError, None, "check the robot's security settings"),
        (200, 300001, PermanentDeliveryError, None, "check the access_token"),
        (200, 460101, PermanentDeliveryError, None, "lower spec.dingtalk.maxBytes"),
        (200, 400013, PermanentDeliveryError, None, "errcode 400013"),
        (500, None, TemporaryDeliveryError, None, "HTTP 500"),
        (404, None, PermanentDeliveryError, None, "HTTP 404"),
    ],
)
def test_dingtalk_answers_decide_retry_or_give_up(
    receiver: RecordingReceiver,
    client: httpx.Client,
    status: int,
    errcode: int | None,
    error: type[DeliveryError],
    retry_after_s: float | None,
    words: str,
) -> None:
    receiver.answer(status=status, errcode=errcode)
    with pytest.raises(DeliveryError) as caught:
        DingTalkSender(client).deliver(message(ROBOT), robot(receiver))
    assert type(caught.value) is error
    assert words in str(caught.value)
    assert "dingtalk:ops at http://127.0.0.1" in str(caught.value)
    if isinstance(caught.value, TemporaryDeliveryError):
        assert caught.value.retry_after_s == retry_after_s


def test_an_answer_that_is_not_dingtalks_is_permanent(receiver: RecordingReceiver, client: httpx.Client) -> None:
    receiver.answer(status=200, body=b"<html>login</html>")
    with pytest.raises(PermanentDeliveryError, match="without DingTalk's errcode: <html>login</html>; is the URL"):
        DingTalkSender(client).deliver(message(ROBOT), robot(receiver))


def test_errors_never_show_the_token_or_the_secret(
    receiver: RecordingReceiver, client: httpx.Client, secret_watch: SecretWatch
) -> None:
    secret_watch.not_ours(receiver.url)  # it echoes the token on purpose: edgefleet's errors must not
    target = robot(receiver)
    receiver.answer(
        body=json.dumps({"errcode": 310000, "errmsg": f"sign not match {TOKEN} SECd4f1c0ffee5eed"}).encode()
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        DingTalkSender(client).deliver(message(ROBOT), target)
    assert "sign not match *** ***" in str(caught.value)
    refused = ChannelTarget(
        ROBOT, f"http://127.0.0.1:{free_port()}/robot/send?access_token={TOKEN}", "SECd4f1c0ffee5eed"
    )
    with pytest.raises(TemporaryDeliveryError) as unreachable:
        DingTalkSender(client).deliver(message(ROBOT), refused)
    for error in (caught.value, unreachable.value):
        assert TOKEN not in str(error)
        assert "SECd4f1c0ffee5eed" not in str(error)
        assert "access_token=***" in str(error)


@pytest.mark.parametrize(
    ("status", "headers", "error", "retry_after_s"),
    [
        (200, {}, None, None),
        (202, {}, None, None),
        (204, {}, None, None),
        (500, {}, TemporaryDeliveryError, None),
        (503, {"Retry-After": "7"}, TemporaryDeliveryError, 7.0),
        (429, {"Retry-After": "Wed, 21 Oct 2026 07:28:00 GMT"}, TemporaryDeliveryError, None),
        (429, {"Retry-After": "86400"}, TemporaryDeliveryError, 3600.0),
        (400, {}, PermanentDeliveryError, None),
        (401, {}, PermanentDeliveryError, None),
        (410, {}, PermanentDeliveryError, None),
        (301, {"Location": "http://127.0.0.1:1/elsewhere"}, PermanentDeliveryError, None),
    ],
)
def test_webhook_status_decides_retry_or_give_up(
    receiver: RecordingReceiver,
    client: httpx.Client,
    status: int,
    headers: dict[str, str],
    error: type[DeliveryError] | None,
    retry_after_s: float | None,
) -> None:
    receiver.answer(status=status, headers=headers, body=b"" if status == 204 else b'{"ok": false}')
    target = ChannelTarget(HOOK, f"{receiver.url}/hooks/edgefleet", headers={"Authorization": "Bearer t0ken"})
    sender = WebhookSender(client)
    if error is None:
        sender.deliver(message(HOOK), target)
    else:
        with pytest.raises(error) as caught:
            sender.deliver(message(HOOK), target)
        assert f"webhook:tickets at {receiver.url}/hooks/edgefleet" in str(caught.value)
        assert f"HTTP {status}" in str(caught.value)
        if isinstance(caught.value, TemporaryDeliveryError):
            assert caught.value.retry_after_s == retry_after_s
    [request] = receiver.received
    assert request.path == "/hooks/edgefleet"
    assert request.body == BODY
    assert request.headers["authorization"] == "Bearer t0ken"
    assert request.headers["content-type"] == "application/json"


def test_a_receiver_that_does_not_answer_in_time_is_temporary(receiver: RecordingReceiver) -> None:
    receiver.answer(delay_s=5.0)
    target = ChannelTarget(HOOK, f"{receiver.url}/hook")
    started = time.monotonic()
    with http_client(timeout_s=0.3) as client, pytest.raises(TemporaryDeliveryError, match="did not answer in time"):
        WebhookSender(client).deliver(message(HOOK), target)
    assert time.monotonic() - started < 2.0


def test_a_closed_port_is_temporary(client: httpx.Client) -> None:
    target = ChannelTarget(HOOK, f"http://127.0.0.1:{free_port()}/hook")
    with pytest.raises(TemporaryDeliveryError, match="could not be reached"):
        WebhookSender(client).deliver(message(HOOK), target)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093/api/v2/alerts"),
        ("http://127.0.0.1:9093/", "http://127.0.0.1:9093/api/v2/alerts"),
        ("http://am.local/prefix", "http://am.local/prefix/api/v2/alerts"),
        ("http://127.0.0.1:9093/api/v2/alerts", "http://127.0.0.1:9093/api/v2/alerts"),
    ],
)
def test_alertmanager_alerts_url(url: str, expected: str) -> None:
    assert alertmanager_alerts_url(url) == expected


def test_a_real_alertmanager_lists_the_alerts_with_their_labels(tmp_path: Path, client: httpx.Client) -> None:
    manager_channel = Channel("alertmanager", "am")
    scenario = Scenario(make_inventory({"alpha": 10}), routes=Routes(default=(manager_channel,)), now=time.time() - 300)
    alpha = scenario.site("alpha")
    scenario.readings = {alpha[0]: {"gpu_temperature": 96.0}}
    scenario.start()
    scenario.cut([alpha[1]])
    scenario.run(150)
    firing = {(str(k.kind), k.site, k.box) for k, a in scenario.active().items() if a.muted is None}
    assert firing == {("gpu-overheat", "alpha", alpha[0]), ("box-lost", "alpha", alpha[1])}
    with alertmanager(tmp_path) as manager:
        target = ChannelTarget(manager_channel, manager.url)
        sender = AlertmanagerSender(client)
        for sent in scenario.sent(manager_channel):
            sender.deliver(sent, target)
        listed = manager.alerts()
        assert {(a["labels"]["kind"], a["labels"]["site"], a["labels"]["box"]) for a in listed} == firing
        for alert in listed:
            assert alert["labels"]["severity"] in {"critical", "warning"}
            assert alert["labels"]["alertname"] == alert["labels"]["kind"]
            assert alert["annotations"]["summary"]
        # The box comes back: its resolve reaches Alertmanager, which stops listing it.
        delivered = len(scenario.sent(manager_channel))
        scenario.restore([alpha[1]])
        scenario.run(20)
        for sent in scenario.sent(manager_channel)[delivered:]:
            sender.deliver(sent, target)
        assert wait_for(
            lambda: {a["labels"]["kind"] for a in manager.alerts()} == {str(AlertKind.GPU_OVERHEAT)},
            what="Alertmanager to drop the resolved alert",
        )


def test_alertmanager_refuses_a_bad_batch_for_good(tmp_path: Path, client: httpx.Client) -> None:
    with alertmanager(tmp_path) as manager:
        target = ChannelTarget(Channel("alertmanager", "am"), manager.url)
        with pytest.raises(PermanentDeliveryError, match="HTTP 400"):
            AlertmanagerSender(client).deliver(message(Channel("alertmanager", "am"), b'[{"labels": {}}]'), target)

"""``spec.allowedUrls`` keeps notifications from becoming a way into internal services: a channel URL no pattern
admits is refused at load (file, line, field), a bad pattern likewise, the senders refuse such a URL again before
any request, and a receiver's redirect to another host is not followed."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.alerting import Channel, Notification
from edgefleet.cloud.alerting.allowing import UrlPatternError, admitted, parse_pattern
from edgefleet.cloud.alerting.config import ChannelTarget, NotificationConfigError, load_notifications
from edgefleet.cloud.alerting.delivery import PermanentDeliveryError, WebhookSender
from tests.support.receivers import RecordingReceiver

HOOK = Channel("webhook", "hook")

FILE = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata:
  name: test
spec:
  allowedUrls:
    - https://*.dingtalk.com
    - http://127.0.0.1:9000
  channels:
    - name: ops
      kind: dingtalk
      url: https://oapi.dingtalk.com/robot/send?access_token=tok3f9a0c1d2e
    - name: hook
      kind: webhook
      url: {hook}
  defaultChannels: [ops, hook]
"""


def _problems(tmp_path: Path, text: str) -> list[str]:
    path = tmp_path / "notifications.yaml"
    path.write_text(text)
    with pytest.raises(NotificationConfigError) as caught:
        load_notifications(path, environ={})
    return [str(p) for p in caught.value.problems]


def test_admitted_urls_load_with_the_list_on_every_target(tmp_path: Path) -> None:
    path = tmp_path / "notifications.yaml"
    path.write_text(FILE.format(hook="http://127.0.0.1:9000/hook"))

    config = load_notifications(path, environ={})

    assert [p.host for p in config.targets["hook"].allowed] == ["*.dingtalk.com", "127.0.0.1"]


@pytest.mark.parametrize(
    "hook",
    [
        "http://169.254.169.254/latest/meta-data",  # a cloud metadata endpoint
        "http://127.0.0.1:8000/api/v1/inventory/reload",  # the controller's own API, another port
        "https://127.0.0.1:9000/hook",  # another scheme
        "http://127.0.0.1:9000@10.0.0.1/hook",  # the allowed host as a login, the real host after it
        "https://dingtalk.com.evil.example/robot",
    ],
)
def test_a_channel_url_outside_the_list_is_refused_at_its_line(tmp_path: Path, hook: str) -> None:
    found = _problems(tmp_path, FILE.format(hook=hook))

    assert len(found) == 1, found
    assert ":15: spec.channels[1].url: " in found[0]
    assert "is not admitted by spec.allowedUrls" in found[0]
    assert "tok3f9a0c1d2e" not in found[0]


def test_a_bad_pattern_is_refused_at_its_line(tmp_path: Path) -> None:
    text = FILE.format(hook="http://127.0.0.1:9000/hook").replace("https://*.dingtalk.com", "oapi.dingtalk.com/x")

    found = _problems(tmp_path, text)

    assert ":7: spec.allowedUrls[0]: 'oapi.dingtalk.com/x' is no URL pattern" in found[0]


@pytest.mark.parametrize("text", ["ftp://host", "https://host/path", "https://*", "http://host:70000", "http://a b"])
def test_patterns_that_are_no_receiver_are_refused(text: str) -> None:
    with pytest.raises(UrlPatternError):
        parse_pattern(text)


def test_no_list_admits_every_url() -> None:
    assert admitted("http://10.0.0.1:1234/x", ())


def test_the_sender_refuses_a_url_outside_the_list_before_any_request(receiver: RecordingReceiver) -> None:
    target = ChannelTarget(HOOK, f"{receiver.url}/hook", allowed=(parse_pattern("https://*.dingtalk.com"),))
    notification = Notification("webhook:hook:1", HOOK, ("bj-daxing",), (), b"{}", 1_700_000_000.0, 1)

    with httpx.Client() as client, pytest.raises(PermanentDeliveryError, match="not admitted by"):
        WebhookSender(client).deliver(notification, target)

    assert receiver.received == []


def test_a_redirect_to_another_host_is_not_followed(receiver: RecordingReceiver, client: httpx.Client) -> None:
    allowed = (parse_pattern(f"http://127.0.0.1:{receiver.port}"),)
    target = ChannelTarget(HOOK, f"{receiver.url}/hook", allowed=allowed)
    receiver.answer(status=302, body=b"", headers={"Location": "http://169.254.169.254/latest/meta-data"})
    notification = Notification("webhook:hook:1", HOOK, ("bj-daxing",), (), b"{}", 1_700_000_000.0, 1)

    with pytest.raises(PermanentDeliveryError):
        WebhookSender(client).deliver(notification, target)

    assert [r.path for r in receiver.received] == ["/hook"]

"""A DingTalk robot's access_token can come from the environment or a file, like its signing secret: the URL in
the notification file then carries no secret, the sender still gets the whole URL, and a token given twice (or to
a channel that takes none) is refused at its line."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edgefleet.cloud.alerting.config import NotificationConfigError, load_notifications
from tests.support.secrets import DINGTALK_SECRET, DINGTALK_TOKEN

TEMPLATE = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata:
  name: test
spec:
  channels:
    - name: ops
      kind: dingtalk
      url: {url}
      secretFrom: {{env: OPS_SECRET}}
{token}
    - name: hook
      kind: webhook
      url: http://127.0.0.1:9000/hook
{hook_token}
  defaultChannels: [ops, hook]
"""
ROBOT = "https://oapi.dingtalk.com/robot/send"
ENV = {"OPS_SECRET": DINGTALK_SECRET, "OPS_TOKEN": DINGTALK_TOKEN}


def _write(tmp_path: Path, *, url: str = ROBOT, token: str = "", hook_token: str = "") -> Path:
    path = tmp_path / "notifications.yaml"
    path.write_text(TEMPLATE.format(url=url, token=token, hook_token=hook_token))
    return path


@pytest.mark.parametrize("how", ["env", "file"])
def test_the_token_from_the_environment_or_a_file_completes_the_url(
    tmp_path: Path, how: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    (tmp_path / "ops-token").write_text(DINGTALK_TOKEN + "\n")
    token = "      tokenFrom: {env: OPS_TOKEN}" if how == "env" else "      tokenFile: ops-token"

    config = load_notifications(_write(tmp_path, token=token), environ=ENV)

    target = config.targets["ops"]
    assert target.url == f"{ROBOT}?access_token={DINGTALK_TOKEN}"
    assert target.secret == DINGTALK_SECRET
    assert str(target) == f"dingtalk:ops ({ROBOT}?access_token=***)"
    assert config.warnings == ()


def test_a_token_added_to_a_url_with_a_query_keeps_it(tmp_path: Path) -> None:
    config = load_notifications(
        _write(tmp_path, url=f"{ROBOT}?lang=zh", token="      tokenFrom: {env: OPS_TOKEN}"), environ=ENV
    )

    assert config.targets["ops"].url == f"{ROBOT}?lang=zh&access_token={DINGTALK_TOKEN}"


@pytest.mark.parametrize(
    ("change", "says"),
    [
        (
            {"url": f"{ROBOT}?access_token=inline0token", "token": "      tokenFrom: {env: OPS_TOKEN}"},
            ":11: spec.channels[0].tokenFrom: the URL carries an access_token and tokenFrom gives one too",
        ),
        (
            {"token": "      tokenFrom: {env: OPS_TOKEN}\n      tokenFile: ops-token"},
            ":12: spec.channels[0].tokenFile: give the token one way: tokenFrom or tokenFile, not both",
        ),
        (
            {"token": "      tokenFrom: {env: MISSING_TOKEN}"},
            ":11: spec.channels[0].tokenFrom.env: the environment variable MISSING_TOKEN is not set",
        ),
        ({}, ":9: spec.channels[0].url: a DingTalk robot's URL carries its token: give it with tokenFrom"),
        (
            {"token": "      tokenFrom: {env: OPS_TOKEN}", "hook_token": "      tokenFrom: {env: OPS_TOKEN}"},
            ":15: spec.channels[1].tokenFrom: only DingTalk robots take a token",
        ),
    ],
)
def test_a_token_given_twice_missing_or_misplaced_is_refused_at_its_line(
    tmp_path: Path, change: dict[str, str], says: str
) -> None:
    with pytest.raises(NotificationConfigError) as refused:
        load_notifications(_write(tmp_path, **change), environ=ENV)

    assert says in str(refused.value)
    assert DINGTALK_TOKEN not in str(refused.value)

"""The notification file loads whole or not at all: every problem names its file, line, field and reason, secrets
come from the environment or a file (inline only with a warning), and no URL token or secret is ever shown."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKind, Channel, Severity
from edgefleet.cloud.alerting.config import (
    NotificationConfig,
    NotificationConfigError,
    load_notifications,
    parse_duration,
    redact,
)
from edgefleet.inventory import Inventory, load_inventory
from tests.support.secrets import DINGTALK_TOKEN

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "notifications.example.yaml"
TOKEN = "tok3f9a0c1d2e"
SECRET = "SEC0123456789abcdef"

GOOD = f"""\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata:
  name: test
spec:
  timing:
    groupWait: 0s
    groupInterval: 30s
    repeatInterval: 4h
  channels:
    - name: ops
      kind: dingtalk
      url: https://oapi.dingtalk.com/robot/send?access_token={TOKEN}
      secretFrom: {{env: OPS_SECRET}}
    - name: hook
      kind: webhook
      url: http://127.0.0.1:9000/hook
  routes:
    - severities: [critical]
      channels: [ops]
  defaultChannels: [hook]
  rules:
    defaults:
      gpuTemperatureC: 85
    sites:
      bj-daxing:
        gpuTemperatureFor: 5m
"""
ENV = {"OPS_SECRET": SECRET}


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(REPO / "sites")


def write(directory: Path, text: str, name: str = "notifications.yaml") -> Path:
    path = directory / name
    path.write_text(text)
    return path


def problems_of(path: Path, *, environ: dict[str, str] | None = None, inventory: Inventory | None = None) -> list[str]:
    with pytest.raises(NotificationConfigError) as caught:
        load_notifications(path, environ=ENV if environ is None else environ, inventory=inventory)
    return [str(p) for p in caught.value.problems]


def test_a_good_file_builds_routes_rules_and_targets(tmp_path: Path) -> None:
    config = load_notifications(write(tmp_path, GOOD), environ=ENV)
    ops, hook = Channel("dingtalk", "ops"), Channel("webhook", "hook")
    assert config.routes.routes[0].channels == (ops,)
    assert config.routes.routes[0].severities == frozenset({Severity.CRITICAL})
    assert config.routes.default == (hook,)
    assert config.routes.timing.repeat_interval_s == 4 * 3600
    assert config.rules.defaults.gpu_temperature_c == 85
    assert config.rules.for_site("bj-daxing").gpu_temperature_for_s == 300  # type: ignore[arg-type]
    assert config.targets["ops"].secret == SECRET
    assert config.targets["ops"].url.endswith(TOKEN)
    assert config.warnings == ()


def test_the_shipped_example_loads_against_the_shipped_inventory(tmp_path: Path, inventory: Inventory) -> None:
    shutil.copy(EXAMPLE, tmp_path / "notifications.yaml")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "bj-daxing-dingtalk").write_text("SECdaxing\n")
    (tmp_path / "secrets" / "bj-daxing-dingtalk-token").write_text(f"{DINGTALK_TOKEN}\n")
    environ = {"EDGEFLEET_DINGTALK_OPS_SECRET": "SECops", "EDGEFLEET_DINGTALK_OPS_TOKEN": TOKEN}
    config = load_notifications(tmp_path / "notifications.yaml", environ=environ, inventory=inventory)
    assert config.warnings == ()
    assert "access_token" not in EXAMPLE.read_text(), "the example writes no token into a URL"
    assert config.targets["ops-dingtalk"].url.endswith(f"/robot/send?access_token={TOKEN}")
    assert config.targets["bj-daxing-dingtalk"].url.endswith(f"/robot/send?access_token={DINGTALK_TOKEN}")
    assert {str(c) for c in config.routes.channels()} == {
        "alertmanager:alertmanager",
        "dingtalk:ops-dingtalk",
        "dingtalk:bj-daxing-dingtalk",
        "webhook:tickets",
    }
    assert config.targets["bj-daxing-dingtalk"].secret == "SECdaxing"  # the file's newline is not part of it
    assert config.targets["tickets"].headers == {"X-Source": "edgefleet"}
    assert config.rules.for_site("kashi-shule").gpu_temperature_c == 90  # type: ignore[arg-type]
    assert config.rules.for_box("sh-pudong", "Inspur NF5260M6").gpu_temperature_c == 88  # type: ignore[arg-type]
    site_route = config.routes.routes[3]
    assert site_route.kinds == frozenset({AlertKind.SITE_UNREACHABLE, AlertKind.BOX_LOST})


def test_the_example_without_its_secrets_says_which_are_missing(tmp_path: Path) -> None:
    shutil.copy(EXAMPLE, tmp_path / "notifications.yaml")
    found = problems_of(tmp_path / "notifications.yaml", environ={})
    assert len(found) == 4
    assert (
        "spec.channels[0].tokenFrom.env: the environment variable EDGEFLEET_DINGTALK_OPS_TOKEN is not set" in found[0]
    )
    assert (
        "spec.channels[0].secretFrom.env: the environment variable EDGEFLEET_DINGTALK_OPS_SECRET is not set" in found[1]
    )
    assert "spec.channels[1].tokenFile: cannot read the secret file" in found[2]
    assert str(tmp_path / "secrets" / "bj-daxing-dingtalk-token") in found[2]
    assert "spec.channels[1].secretFile: cannot read the secret file" in found[3]
    assert str(tmp_path / "secrets" / "bj-daxing-dingtalk") in found[3]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("kind: dingtalk", "kind: dingtlak"),
            ":12: spec.channels[0].kind: Invalid enum value 'dingtlak'; expected one of dingtalk, webhook, alertmanager",
        ),
        (
            ("[critical]", "[critcal]"),
            ":19: spec.routes[0].severities[0]: Invalid enum value 'critcal'; expected one of critical, warning, info",
        ),
        (
            ("channels: [ops]", "channels: [opz]"),
            ":20: spec.routes[0].channels[0]: no channel is named 'opz'; did you mean 'ops'?",
        ),
        (
            ("defaultChannels: [hook]", "defaultChannels: [hok]"),
            ":21: spec.defaultChannels[0]: no channel is named 'hok'; did you mean 'hook'?",
        ),
        (("groupInterval: 30s", "groupInterval: soon"), ":8: spec.timing.groupInterval: 'soon' is no duration"),
        (
            ("repeatInterval: 4h", "repeatInterval: 10s"),
            ":9: spec.timing.repeatInterval: timing.repeatInterval (10.0) must be at least timing.groupInterval (30.0)",
        ),
        (
            ("groupWait: 0s", "groupWait: -5"),
            ":7: spec.timing.groupWait: timing.groupWait must be 0 or more seconds, got -5.0",
        ),
        (
            ("  timing:\n", "  timezone: Asia/Beijing\n  timing:\n"),
            ":6: spec.timezone: timezone 'Asia/Beijing' is no IANA time zone",
        ),
        (
            ("  channels:\n", "  dingtalk:\n    perMinute: 25\n  channels:\n"),
            ":11: spec.dingtalk.perMinute: dingtalk.perMinute must be 1 to 20",
        ),
        (
            ("gpuTemperatureC: 85", "gpuTemperatureC: 185"),
            ":24: spec.rules.defaults.gpuTemperatureC: must be a temperature in C between 0 and 150 (85 by default); got 185",
        ),
        (
            ("gpuTemperatureC: 85", 'gpuTemperatureC: "hot"'),
            ":24: spec.rules.defaults.gpuTemperatureC: must be a number, got str 'hot'",
        ),
        (
            ("gpuTemperatureC: 85", "gpuTemperatureCelsius: 85"),
            ":24: spec.rules.defaults.gpuTemperatureCelsius: 'gpuTemperatureCelsius' is no threshold; did you mean 'gpuTemperatureC'?",
        ),
        (
            ("gpuTemperatureFor: 5m", "gpuTemperatureFor: five"),
            ":27: spec.rules.sites.bj-daxing.gpuTemperatureFor: 'five' is no duration",
        ),
        (
            ("gpuTemperatureFor: 5m", "siteSuspectShare: 0.9"),
            ":27: spec.rules.sites.bj-daxing.siteSuspectShare: 0.9 is above siteThreshold 0.8",
        ),
        (
            (
                "    sites:\n      bj-daxing:\n        gpuTemperatureFor: 5m\n",
                '    models:\n      "Advantech MIC-770":\n        siteThreshold: 0.5\n',
            ),
            ":27: spec.rules.models.Advantech MIC-770.siteThreshold: applies to a site's boxes together",
        ),
        (
            ("url: http://127.0.0.1:9000/hook", "url: ftp://127.0.0.1/hook"),
            ":17: spec.channels[1].url: 'ftp://127.0.0.1/hook' is no http:// or https:// URL with a host",
        ),
        ((f"send?access_token={TOKEN}", "send"), ":13: spec.channels[0].url: a DingTalk robot's URL carries its token"),
        (
            (
                "  routes:\n",
                "    - name: hook\n      kind: webhook\n      url: http://127.0.0.1:9001/other\n  routes:\n",
            ),
            ":18: spec.channels[2].name: channel 'hook' is already defined at spec.channels[1]",
        ),
        (("name: hook", "name: Hook_1"), ":15: spec.channels[1].name: must be an id"),
        (
            ("  name: test\n", "  name: test\n  owner: ops\n"),
            ":5: metadata.owner: Object contains unknown field `owner` (check its spelling and indentation; docs/alerting.md lists the fields)",
        ),
        (
            ("kind: Notifications", "kind: Notification"),
            ":2: apiVersion/kind: expected apiVersion 'edgefleet.io/v1' and kind 'Notifications'",
        ),
        (
            ("{env: OPS_SECRET}", "{env: NO_SUCH_VARIABLE}"),
            ":14: spec.channels[0].secretFrom.env: the environment variable NO_SUCH_VARIABLE is not set",
        ),
        (
            ("{env: OPS_SECRET}", "{env: OPS_SECRET}\n      secretFile: ops.secret"),
            ":15: spec.channels[0].secretFile: give the secret one way: secretFrom or secretFile, not both",
        ),
        (
            (
                "      url: http://127.0.0.1:9000/hook\n",
                "      url: http://127.0.0.1:9000/hook\n      secretFile: hook.secret\n",
            ),
            ":18: spec.channels[1].secretFile: only DingTalk robots sign messages",
        ),
        (
            ("    - severities: [critical]\n", "    - sites: []\n"),
            ":19: spec.routes[0].sites: routes[0].sites is empty and matches nothing",
        ),
        (("      channels: [ops]\n", ""), ":19: spec.routes[0]: routes[0] names no channel"),
        (("channels: [ops]", "channels: [ops"), ":21: is not valid YAML"),
    ],
)
def test_each_problem_names_line_field_and_reason(tmp_path: Path, change: tuple[str, str], expected: str) -> None:
    old, new = change
    assert old in GOOD
    found = problems_of(write(tmp_path, GOOD.replace(old, new, 1)))
    assert len(found) == 1, found
    assert found[0].startswith(str(tmp_path / "notifications.yaml") + ":")
    assert expected in found[0], found[0]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    text = GOOD.replace("channels: [ops]", "channels: [opz]").replace("groupWait: 0s", "groupWait: later")
    text = text.replace("gpuTemperatureC: 85", "gpuTemperatureC: 200").replace("{env: OPS_SECRET}", "{env: NOPE}")
    found = problems_of(write(tmp_path, text))
    assert [f.split(": ", 2)[1] for f in found] == [
        "spec.channels[0].secretFrom.env",
        "spec.routes[0].channels[0]",
        "spec.timing.groupWait",
        "spec.rules.defaults.gpuTemperatureC",
    ]


def test_names_must_exist_in_the_inventory(tmp_path: Path, inventory: Inventory) -> None:
    text = GOOD.replace("- severities: [critical]", "- sites: [bj-daxin]\n      regions: [nort]")
    text = text.replace("      bj-daxing:\n", "      bj-daxin:\n")
    text += '    models:\n      "Advantech MIC-77":\n        diskFreePercent: 5\n'
    found = problems_of(write(tmp_path, text), inventory=inventory)
    assert found == [
        f"{tmp_path / 'notifications.yaml'}:19: spec.routes[0].sites[0]: site 'bj-daxin' is not in the inventory; did you mean 'bj-daxing'?",
        f"{tmp_path / 'notifications.yaml'}:20: spec.routes[0].regions[0]: region 'nort' is not in the inventory; did you mean 'north'?",
        f"{tmp_path / 'notifications.yaml'}:27: spec.rules.sites.bj-daxin: site 'bj-daxin' is not in the inventory; did you mean 'bj-daxing'?",
        f"{tmp_path / 'notifications.yaml'}:30: spec.rules.models.Advantech MIC-77: no box of the inventory has model 'Advantech MIC-77'; did you mean 'Advantech MIC-770'?",
    ]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "holds no manifest; expected exactly one of kind 'Notifications'"),
        (GOOD + "---\n" + GOOD, "holds 2 manifests"),
        ("- just\n- a list\n", ":1: a manifest must be a mapping"),
    ],
)
def test_the_file_must_hold_one_manifest(tmp_path: Path, text: str, expected: str) -> None:
    found = problems_of(write(tmp_path, text))
    assert len(found) == 1
    assert expected in found[0]


def test_a_missing_file_is_one_problem(tmp_path: Path) -> None:
    found = problems_of(tmp_path / "nowhere.yaml")
    assert found == [
        f"{tmp_path / 'nowhere.yaml'}: cannot be read: [Errno 2] No such file or directory: '{tmp_path / 'nowhere.yaml'}'"
    ]


def test_a_secret_file_is_read_relative_to_the_notification_file(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "ops").write_text(f"{SECRET}\n")
    config = load_notifications(
        write(tmp_path, GOOD.replace("secretFrom: {env: OPS_SECRET}", "secretFile: secrets/ops")), environ={}
    )
    assert config.targets["ops"].secret == SECRET


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, "cannot read the secret file '{file}': No such file or directory"),
        ("dir", "cannot read the secret file '{file}': Is a directory"),
        ("\n\n", "the secret file '{file}' is empty"),
        ("x" * 5000, "'{file}' is over 4096 bytes; a secret file holds the secret alone"),
        (b"\xff\xfe", "'{file}' is not UTF-8 text"),
    ],
)
def test_a_secret_file_that_cannot_be_the_secret_is_refused(
    tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    secret = tmp_path / "ops.secret"
    if content == "dir":
        secret.mkdir()
    elif isinstance(content, bytes):
        secret.write_bytes(content)
    elif content is not None:
        secret.write_text(content)
    found = problems_of(write(tmp_path, GOOD.replace("secretFrom: {env: OPS_SECRET}", "secretFile: ops.secret")))
    assert len(found) == 1
    assert ":14: spec.channels[0].secretFile: " + expected.format(file=secret) in found[0]


def test_an_empty_secret_is_refused(tmp_path: Path) -> None:
    found = problems_of(write(tmp_path, GOOD), environ={"OPS_SECRET": "  \n"})
    assert found == [
        f"{tmp_path / 'notifications.yaml'}:14: spec.channels[0].secretFrom.env: the environment variable OPS_SECRET is empty"
    ]


def test_an_inline_secret_loads_with_a_warning_that_never_shows_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    text = GOOD.replace("secretFrom: {env: OPS_SECRET}", f"secret: {SECRET}")
    with caplog.at_level(logging.WARNING, logger="edgefleet.cloud.alerting.config"):
        config = load_notifications(write(tmp_path, text), environ={})
    assert config.targets["ops"].secret == SECRET
    assert len(config.warnings) == 1
    assert config.warnings[0].line == 14
    assert "secretFrom: {env: NAME} or secretFile: PATH" in config.warnings[0].reason
    assert [r.getMessage() for r in caplog.records] == ["Accepted notification file with a warning"]
    assert_hidden(config, caplog)


def test_a_robot_without_secret_and_an_unused_channel_are_warned_about(tmp_path: Path) -> None:
    text = GOOD.replace("      secretFrom: {env: OPS_SECRET}\n", "")
    text = text.replace(
        "  routes:\n", "    - name: spare\n      kind: alertmanager\n      url: http://127.0.0.1:9093\n  routes:\n"
    )
    config = load_notifications(write(tmp_path, text), environ={})
    assert [(w.line, w.field) for w in config.warnings] == [(11, "spec.channels[0]"), (17, "spec.channels[2].name")]
    assert "has no signing secret" in config.warnings[0].reason
    assert "nothing is sent to it" in config.warnings[1].reason


def assert_hidden(config: NotificationConfig, caplog: pytest.LogCaptureFixture) -> None:
    shown = [repr(config), *(str(t) for t in config.targets.values()), *(repr(t) for t in config.targets.values())]
    shown += [caplog.text, *(str(w) for w in config.warnings)]
    for text in shown:
        assert TOKEN not in text
        assert SECRET not in text


def test_targets_never_show_the_token_or_secret(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = load_notifications(write(tmp_path, GOOD), environ=ENV)
    assert str(config.targets["ops"]) == "dingtalk:ops (https://oapi.dingtalk.com/robot/send?access_token=***)"
    assert_hidden(config, caplog)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (
            f"https://oapi.dingtalk.com/robot/send?access_token={TOKEN}",
            "https://oapi.dingtalk.com/robot/send?access_token=***",
        ),
        ("http://ops:hunter2@127.0.0.1:9000/hook?x=1&y=2", "http://ops:***@127.0.0.1:9000/hook?x=***&y=***"),
        (
            "https://hooks.example.com/services/T0123/B0456/Xy7dK2mN9pQ4rS8tU1vW",
            "https://hooks.example.com/services/T0123/B0456/***",
        ),
        ("http://127.0.0.1:9093", "http://127.0.0.1:9093"),
        ("http://[::1]:9093/api", "http://[::1]:9093/api"),
        ("http://127.0.0.1:99999/x?token=abc", "http://127.0.0.1:99999/x?token=***"),
    ],
)
def test_redact_masks_tokens_and_passwords(url: str, shown: str) -> None:
    assert redact(url) == shown


@given(
    token=st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=4, max_size=64)
)
def test_redact_never_shows_a_query_value(token: str) -> None:
    # The whole value goes: comparing the query as shown, not searching it for the token (a token like "acce"
    # is found inside the name "access_token" itself).
    assert redact(f"https://oapi.dingtalk.com/robot/send?access_token={token}").split("?", 1)[1] == "access_token=***"


_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


@given(parts=st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from(list(_UNITS))), min_size=1, max_size=4))
def test_durations_add_up_their_parts(parts: list[tuple[int, str]]) -> None:
    text = "".join(f"{n}{unit}" for n, unit in parts)
    assert parse_duration(text) == pytest.approx(sum(n * _UNITS[unit] for n, unit in parts))


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (90, 90.0),
        (1.5, 1.5),
        ("90", 90.0),
        ("1h30m", 5400.0),
        ("500ms", 0.5),
        (" 2m ", 120.0),
        ("soon", None),
        (True, None),
        (None, None),
        ("5 m", None),
    ],
)
def test_durations_are_numbers_or_unit_texts(value: object, seconds: float | None) -> None:
    assert parse_duration(value) == seconds

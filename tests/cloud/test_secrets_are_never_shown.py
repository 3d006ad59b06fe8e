"""Secrets are masked wherever a URL or value could be shown (one helper, ``credentials.mask_url``; the log's mask of
registered values), broker logins given two ways are refused in one line, and the suite's guard
(tests/support/secrets.py) really fails a test that logs or answers a secret: planted here and seen."""

from __future__ import annotations

import logging
import string
from pathlib import Path

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.cloud.settings import Settings
from edgefleet.credentials import hide_in_logs, mask_url
from edgefleet.logs import PlainFormatter
from tests.support.secrets import (
    BROKER_PASSWORD,
    BROKER_USERNAME,
    DATABASE_PASSWORD,
    DINGTALK_TOKEN,
    SecretWatch,
)

BROKER = f"mqtt://{BROKER_USERNAME}:{BROKER_PASSWORD}@127.0.0.1:1883"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (BROKER, f"mqtt://{BROKER_USERNAME}:***@127.0.0.1:1883"),
        ("mqtt://ops:pa/ss@127.0.0.1:1883", "mqtt://ops:***@127.0.0.1:1883"),  # a raw '/' in the password
        ("mqtt://ops@127.0.0.1", "mqtt://ops@127.0.0.1"),
        (
            f"postgresql+psycopg://edgefleet:{DATABASE_PASSWORD}@127.0.0.1:5432/edgefleet_0a1b2c3d4e5f6a7b",
            "postgresql+psycopg://edgefleet:***@127.0.0.1:5432/edgefleet_0a1b2c3d4e5f6a7b",
        ),
        (f"postgresql://db.internal/fleet?password={DATABASE_PASSWORD}", "postgresql://db.internal/fleet?password=***"),
        ("sqlite:///var/edgefleet.db", "sqlite:///var/edgefleet.db"),
        (
            f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}&timestamp=1&sign=x",
            "https://oapi.dingtalk.com/robot/send?access_token=***&timestamp=***&sign=***",
        ),
        (f"https://h.example/robot#{DINGTALK_TOKEN}", "https://h.example/robot#***"),
    ],
)
def test_one_helper_masks_every_kind_of_url(url: str, shown: str) -> None:
    assert mask_url(url) == shown


@given(password=st.text(alphabet=string.ascii_letters + string.digits + "-_.!$&'()*+,;=%:", min_size=1, max_size=40))
def test_a_broker_password_never_survives_masking(password: str) -> None:
    assert mask_url(f"mqtt://ops:{password}@127.0.0.1:1883") == "mqtt://ops:***@127.0.0.1:1883"


def test_settings_show_their_urls_masked_and_keep_secrets_out_of_repr(tmp_path: Path) -> None:
    settings = Settings.from_env(
        {"EDGEFLEET_BROKER_URL": BROKER, "EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}"}
    )

    assert settings.broker_url_shown == f"mqtt://{BROKER_USERNAME}:***@127.0.0.1:1883"
    assert settings.broker_login == (BROKER_USERNAME, BROKER_PASSWORD)
    assert BROKER_PASSWORD not in repr(settings)


def test_a_broker_url_error_shows_the_url_masked() -> None:
    with pytest.raises(ValueError, match=r"EDGEFLEET_BROKER_URL='mqtt://edgefleet-cloud:\*\*\*@127.0.0.1:99999'") as e:
        Settings.from_env({"EDGEFLEET_BROKER_URL": f"mqtt://{BROKER_USERNAME}:{BROKER_PASSWORD}@127.0.0.1:99999"})
    assert BROKER_PASSWORD not in str(e.value)


@pytest.mark.parametrize(
    ("environ", "says"),
    [
        (
            {"EDGEFLEET_BROKER_URL": BROKER, "EDGEFLEET_BROKER_PASSWORD": "other-password"},
            "carries a password and EDGEFLEET_BROKER_PASSWORD gives another; give the broker password one way",
        ),
        (
            {"EDGEFLEET_BROKER_URL": BROKER, "EDGEFLEET_BROKER_USERNAME": "someone"},
            "carries a username and EDGEFLEET_BROKER_USERNAME gives another",
        ),
        (
            {
                "EDGEFLEET_BROKER_USERNAME": "ops",
                "EDGEFLEET_BROKER_PASSWORD": "x1",
                "EDGEFLEET_BROKER_PASSWORD_FILE": "f",
            },
            "EDGEFLEET_BROKER_PASSWORD and EDGEFLEET_BROKER_PASSWORD_FILE are both set",
        ),
        ({"EDGEFLEET_BROKER_PASSWORD": "x1"}, "EDGEFLEET_BROKER_PASSWORD gives a broker password but there is no user"),
        (
            {"EDGEFLEET_BROKER_USERNAME": "ops", "EDGEFLEET_BROKER_PASSWORD_FILE": "/nonexistent/pw"},
            "EDGEFLEET_BROKER_PASSWORD_FILE: cannot read the secret file '/nonexistent/pw'",
        ),
    ],
)
def test_a_login_given_two_ways_or_half_is_refused_in_one_line(environ: dict[str, str], says: str) -> None:
    with pytest.raises(ValueError, match=r"(?i)broker") as refused:
        Settings.from_env(environ)

    assert says in str(refused.value)
    assert "\n" not in str(refused.value)
    assert BROKER_PASSWORD not in str(refused.value)


def test_the_command_line_password_file_wins_over_the_variables(tmp_path: Path) -> None:
    file = tmp_path / "pw"
    file.write_text(BROKER_PASSWORD)

    settings = Settings.from_env(
        {"EDGEFLEET_BROKER_URL": f"mqtt://{BROKER_USERNAME}@127.0.0.1", "EDGEFLEET_BROKER_PASSWORD": "from-env"},
        broker_password_file=file,
    )

    assert settings.broker_login == (BROKER_USERNAME, BROKER_PASSWORD)


def test_the_log_masks_a_registered_secret_wherever_a_record_puts_it() -> None:
    hide_in_logs(BROKER_PASSWORD)
    record = logging.LogRecord("edgefleet.x", logging.ERROR, __file__, 1, "Said %s", (BROKER_PASSWORD,), None)
    record.__dict__["detail"] = f"with {BROKER_PASSWORD} inside"

    line = PlainFormatter().format(record)

    assert BROKER_PASSWORD not in line
    assert line.count("***") == 2


def test_the_guard_sees_a_secret_in_a_log_record(secret_watch: SecretWatch) -> None:
    logging.getLogger("edgefleet.planted").warning("Connected", extra={"broker": BROKER})

    leaks = secret_watch.leaks()
    secret_watch.clear()  # the leak was planted: this test must not fail for it

    assert len(leaks) == 1
    assert "edgefleet.planted" in leaks[0]
    assert BROKER_PASSWORD in leaks[0]


def test_the_guard_sees_a_secret_in_an_http_answer(secret_watch: SecretWatch) -> None:
    transport = httpx.MockTransport(lambda request: httpx.Response(503, json={"problems": [BROKER]}))
    with httpx.Client(transport=transport, base_url="http://controller") as client:
        client.get("/healthz")

    leaks = secret_watch.leaks()
    secret_watch.clear()

    assert leaks == [f"HTTP answer to GET /healthz shows ['{BROKER_PASSWORD}']"]

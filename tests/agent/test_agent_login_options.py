"""The agent's broker login: from the broker URL (percent-decoded) or from ``--username`` with ``--password-file`` /
``--password`` (or their ``EDGEFLEET_MQTT_*`` variables) - one way only. A login given twice, a password without a
username or an unreadable password file ends the command with one ``error:`` line naming the places, status 2, and
never the password; the password is registered with the log mask and the broker is shown masked."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest

from edgefleet.agent.cli import AgentSettings, build_parser, main, resolve_settings
from edgefleet.agent.link import BrokerAddress
from edgefleet.credentials import forget_hidden, mask_secrets
from tests.support.secrets import BROKER_PASSWORD, WRONG_BROKER_PASSWORD, assert_no_secret

RUN = ["run", "--box", "box-login", "--site", "site-1"]
URL_WITH_LOGIN = f"mqtt://box-login:{BROKER_PASSWORD}@127.0.0.1:1883"


def settings(argv: list[str], env: dict[str, str] | None = None) -> AgentSettings:
    return resolve_settings(build_parser().parse_args(argv), env or {})


@pytest.fixture
def password_file(tmp_path: Path) -> Path:
    path = tmp_path / "broker-password"
    path.write_text(BROKER_PASSWORD + "\n")  # as an editor saves it
    return path


def test_the_login_in_the_url_is_used_and_shown_masked() -> None:
    s = settings([*RUN, "--broker", URL_WITH_LOGIN])
    assert (s.broker.host, s.broker.port) == ("127.0.0.1", 1883)
    assert (s.username, s.password) == ("box-login", BROKER_PASSWORD)
    assert str(s.broker) == "mqtt://box-login:***@127.0.0.1:1883"
    assert_no_secret(repr(s), where="the settings' repr")


def test_the_login_in_the_url_is_percent_decoded() -> None:
    s = settings([*RUN, "--broker", "mqtt://box%40site:p%2Fw%3Fd%23%40x@broker.lan:1884"])
    assert (s.username, s.password) == ("box@site", "p/w?d#@x")
    assert str(s.broker) == "mqtt://box%40site:***@broker.lan:1884"


def test_a_username_alone_in_the_url_takes_the_password_file(password_file: Path) -> None:
    s = settings([*RUN, "--broker", "mqtt://box-login@127.0.0.1:1883", "--password-file", str(password_file)])
    assert (s.username, s.password) == ("box-login", BROKER_PASSWORD)


@pytest.mark.parametrize("where", ["command line", "environment"])
def test_username_with_a_password_file(password_file: Path, where: str) -> None:
    if where == "command line":
        s = settings([*RUN, "--username", "box-login", "--password-file", str(password_file)])
    else:
        env = {"EDGEFLEET_MQTT_USERNAME": "box-login", "EDGEFLEET_MQTT_PASSWORD_FILE": str(password_file)}
        s = settings(RUN, env)
    assert s.broker == BrokerAddress("127.0.0.1", 1883, "box-login", BROKER_PASSWORD)
    assert str(s.broker) == "mqtt://box-login:***@127.0.0.1:1883"


def test_a_password_option_wins_over_the_environment_as_every_option_does(password_file: Path) -> None:
    env = {"EDGEFLEET_MQTT_USERNAME": "box-login", "EDGEFLEET_MQTT_PASSWORD": WRONG_BROKER_PASSWORD}
    assert settings([*RUN, "--password-file", str(password_file)], env).password == BROKER_PASSWORD


def test_no_login_is_anonymous() -> None:
    s = settings(RUN)
    assert (s.username, s.password) == (None, None)
    assert str(s.broker) == "mqtt://127.0.0.1:1883"


def test_the_password_is_registered_with_the_log_mask(password_file: Path) -> None:
    forget_hidden()
    try:
        settings([*RUN, "--username", "box-login", "--password-file", str(password_file)])
        assert mask_secrets(f"a line that shows {BROKER_PASSWORD} by mistake") == "a line that shows *** by mistake"
    finally:
        forget_hidden()


@pytest.mark.parametrize(
    ("extra", "env", "words"),
    [
        (
            ["--broker", URL_WITH_LOGIN, "--password-file", "PASSWORD_FILE"],
            {},
            "--broker='mqtt://box-login:***@127.0.0.1:1883' carries a password and --password-file gives another",
        ),
        (
            ["--broker", URL_WITH_LOGIN],
            {"EDGEFLEET_MQTT_PASSWORD": WRONG_BROKER_PASSWORD},
            "carries a password and EDGEFLEET_MQTT_PASSWORD (environment) gives another",
        ),
        (
            [],
            {"EDGEFLEET_BROKER_URL": URL_WITH_LOGIN, "EDGEFLEET_MQTT_PASSWORD_FILE": "PASSWORD_FILE"},
            "EDGEFLEET_BROKER_URL (environment)='mqtt://box-login:***@127.0.0.1:1883' carries a password and "
            "EDGEFLEET_MQTT_PASSWORD_FILE (environment) gives another",
        ),
        (
            ["--broker", URL_WITH_LOGIN, "--username", "other"],
            {},
            "carries a username and --username gives another; give the username one way",
        ),
        (
            ["--username", "box-login", "--password", WRONG_BROKER_PASSWORD, "--password-file", "PASSWORD_FILE"],
            {},
            "--password and --password-file both give the password; give it one way",
        ),
        (
            ["--username", "box-login"],
            {"EDGEFLEET_MQTT_PASSWORD": WRONG_BROKER_PASSWORD, "EDGEFLEET_MQTT_PASSWORD_FILE": "PASSWORD_FILE"},
            "EDGEFLEET_MQTT_PASSWORD (environment) and EDGEFLEET_MQTT_PASSWORD_FILE (environment) both give the "
            "password",
        ),
        (
            ["--password-file", "PASSWORD_FILE"],
            {},
            "--password-file gives a password but there is no username; add --username (or "
            "EDGEFLEET_MQTT_USERNAME), or put it in the broker URL",
        ),
        (["--username", "box-login", "--password-file", "MISSING"], {}, "--password-file: cannot read the secret file"),
        (["--username", "box-login", "--password-file", "EMPTY"], {}, "--password-file: the secret file"),
        (["--username", "", "--password-file", "PASSWORD_FILE"], {}, "--username is empty"),
        (["--broker", f"mqtt://:{BROKER_PASSWORD}@127.0.0.1:1883"], {}, "the username in the URL is empty"),
        (
            ["--broker", f"mqtt://box-login:{BROKER_PASSWORD}/x@127.0.0.1:1883"],
            {},
            "--broker: broker URL 'mqtt://box-login:***@127.0.0.1:1883': expected mqtt://[USER:PASSWORD@]HOST:PORT "
            "with nothing after the port; percent-encode",
        ),
        (
            ["--broker", f"mqtt://box-login:{BROKER_PASSWORD}@127.0.0.1:port"],
            {},
            "--broker: broker URL 'mqtt://box-login:***@127.0.0.1:port' has an invalid port",
        ),
    ],
)
def test_a_login_given_twice_or_half_is_one_error_line_without_the_password(
    extra: list[str],
    env: dict[str, str],
    words: str,
    password_file: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    (tmp_path / "empty").write_text("\n")
    files = {
        "PASSWORD_FILE": str(password_file),
        "MISSING": str(tmp_path / "missing"),
        "EMPTY": str(tmp_path / "empty"),
    }
    for name in [n for n in os.environ if n.startswith("EDGEFLEET_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, files.get(value, value))
    assert main([*RUN, *(files.get(word, word) for word in extra)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert words in err
    assert_no_secret(err, where="the error line")


def test_sample_ignores_the_login(password_file: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO)
    env = {"EDGEFLEET_BROKER_URL": URL_WITH_LOGIN, "EDGEFLEET_MQTT_PASSWORD_FILE": str(password_file)}
    s = settings(["sample", "--no-gpu"], env)
    assert (s.username, s.password) == (None, None)

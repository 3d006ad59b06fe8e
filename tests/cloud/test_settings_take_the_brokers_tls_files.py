"""``Settings``: a ``mqtts://`` broker URL with the CA and client certificate files the controller connects with;
TLS files with a plain URL, a certificate without its key and a missing file are each one clear error."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from edgefleet.cloud.settings import BrokerTls, Settings


@pytest.fixture
def files(tmp_path: Path) -> dict[str, str]:
    made = {}
    for name in ("ca", "cert", "key"):
        path = tmp_path / f"{name}.pem"
        path.write_text("PEM\n")
        made[name] = str(path)
    return made


def test_a_tls_url_with_its_files(files: dict[str, str]) -> None:
    settings = Settings.from_env(
        {
            "EDGEFLEET_BROKER_URL": "mqtts://broker.example",
            "EDGEFLEET_BROKER_CA_FILE": files["ca"],
            "EDGEFLEET_BROKER_CERT_FILE": files["cert"],
            "EDGEFLEET_BROKER_KEY_FILE": files["key"],
        }
    )
    assert settings.broker_port == 8883
    assert settings.broker_tls == BrokerTls(Path(files["ca"]), Path(files["cert"]), Path(files["key"]))
    assert Settings.from_env({"EDGEFLEET_BROKER_URL": "mqtts://b:9"}).broker_tls == BrokerTls(None, None, None)
    assert Settings.from_env({"EDGEFLEET_BROKER_URL": "mqtt://b:9"}).broker_tls is None


@pytest.mark.parametrize(
    ("env", "words"),
    [
        (
            {"EDGEFLEET_BROKER_URL": "mqtt://b:1883", "EDGEFLEET_BROKER_CA_FILE": "{ca}"},
            "EDGEFLEET_BROKER_CA_FILE is for TLS, but the broker URL 'mqtt://b:1883' is plain; use mqtts://",
        ),
        (
            {"EDGEFLEET_BROKER_URL": "mqtts://b", "EDGEFLEET_BROKER_CERT_FILE": "{cert}"},
            "EDGEFLEET_BROKER_CERT_FILE and EDGEFLEET_BROKER_KEY_FILE go together",
        ),
        (
            {"EDGEFLEET_BROKER_URL": "mqtts://b", "EDGEFLEET_BROKER_CA_FILE": "{ca}.missing"},
            "EDGEFLEET_BROKER_CA_FILE='{ca}.missing': no such file",
        ),
        ({"EDGEFLEET_BROKER_URL": "https://b"}, "expected mqtt://HOST:PORT or mqtts://HOST:PORT (TLS)"),
    ],
)
def test_bad_tls_settings_are_refused(files: dict[str, str], env: dict[str, str], words: str) -> None:
    with pytest.raises(ValueError, match=re.escape(words.format(**files))):
        Settings.from_env({key: value.format(**files) for key, value in env.items()})

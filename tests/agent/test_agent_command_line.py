"""``edgefleet agent``: options from the command line or the environment, one clear ``error:`` line for a bad value,
``sample`` printing a valid heartbeat, and plain-text log lines with their fields."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from edgefleet.agent.apps import FileAppSource, MetaServerAppSource, NoAppSource
from edgefleet.agent.cli import (
    DEFAULT_INTERVAL_S,
    AgentSettings,
    UsageError,
    build_parser,
    choose_app_source,
    main,
    resolve_settings,
)
from edgefleet.agent.link import DEFAULT_KEEPALIVE_S, BrokerAddress
from edgefleet.logs import PlainFormatter
from edgefleet.messages import decode_heartbeat

REPO = Path(__file__).resolve().parents[2]
RUN = ["run", "--box", "sh-qingpu-gpu-01", "--site", "sh-qingpu"]


def settings(argv: list[str], env: dict[str, str] | None = None) -> AgentSettings:
    return resolve_settings(build_parser().parse_args(argv), env or {})


def test_defaults() -> None:
    s = settings(RUN)
    assert (s.box, s.site) == ("sh-qingpu-gpu-01", "sh-qingpu")
    assert s.broker == BrokerAddress("127.0.0.1", 1883)
    assert s.interval_s == DEFAULT_INTERVAL_S
    assert s.keepalive_s == DEFAULT_KEEPALIVE_S
    assert s.gpu
    assert s.apps_file is None
    assert s.metaserver_url is None
    assert s.username is None
    assert s.password is None
    assert s.log_level == "info"


def test_environment_fills_what_the_command_line_leaves_out() -> None:
    env = {
        "EDGEFLEET_BOX": "env-box",
        "EDGEFLEET_SITE": "env-site",
        "EDGEFLEET_BROKER_URL": "mqtt://10.0.0.5:1884",
        "EDGEFLEET_INTERVAL": "2.5",
        "EDGEFLEET_APPS_FILE": "/etc/edgefleet/apps.json",
        "EDGEFLEET_MQTT_USERNAME": "env-box",
        "EDGEFLEET_MQTT_PASSWORD": "env-box-pw-7f3a",
    }
    s = settings(["run"], env)
    assert (s.box, s.site, s.interval_s) == ("env-box", "env-site", 2.5)
    assert s.broker == BrokerAddress("10.0.0.5", 1884, "env-box", "env-box-pw-7f3a")
    assert s.apps_file == Path("/etc/edgefleet/apps.json")
    assert (s.username, s.password) == ("env-box", "env-box-pw-7f3a")
    s = settings(["run", "--box", "cli-box", "--interval", "1"], env)
    assert (s.box, s.site, s.interval_s) == ("cli-box", "env-site", 1.0)


def test_the_password_stays_out_of_reprs() -> None:
    s = settings([*RUN, "--username", "u"], {"EDGEFLEET_MQTT_PASSWORD": "hunter2"})
    assert s.password == "hunter2"
    assert "hunter2" not in repr(s)


def test_sample_needs_no_box_or_site_and_ignores_broker_settings() -> None:
    s = settings(["sample", "--no-gpu"], {"EDGEFLEET_BROKER_URL": "ws://not-used", "EDGEFLEET_MQTT_PASSWORD": "p"})
    assert (s.box, s.site) == ("unconfigured", "unconfigured")
    assert not s.gpu
    assert s.log_level == "warning"


@pytest.mark.parametrize(
    ("argv", "env", "words"),
    [
        (["run", "--site", "s"], {}, "--box is required"),
        (["run", "--box", "b"], {}, "--site is required"),
        ([*RUN[:2], "Box_1", *RUN[3:]], {}, "--box: 'Box_1' is not a valid id"),
        (["run"], {"EDGEFLEET_BOX": "b", "EDGEFLEET_SITE": "-bad"}, "EDGEFLEET_SITE (environment): '-bad'"),
        ([*RUN, "--broker", "http://x:1883"], {}, "--broker: broker URL 'http://x:1883': scheme must be mqtt://"),
        ([*RUN, "--broker", "mqtt://:1883"], {}, "--broker: broker URL 'mqtt://:1883' names no host"),
        ([*RUN, "--broker", "mqtt://h:99999"], {}, "--broker: broker URL 'mqtt://h:99999' has an invalid port"),
        (RUN, {"EDGEFLEET_BROKER_URL": "ws://h"}, "EDGEFLEET_BROKER_URL (environment): broker URL 'ws://h'"),
        ([*RUN, "--interval", "0"], {}, "--interval: '0' is not a number of seconds > 0 and <= 3600"),
        ([*RUN, "--interval", "-1"], {}, "--interval: '-1' is not a number"),
        ([*RUN, "--interval", "ten"], {}, "--interval: 'ten' is not a number"),
        ([*RUN, "--interval", "nan"], {}, "--interval: 'nan'"),
        ([*RUN, "--interval", "7200"], {}, "--interval: '7200'"),
        (RUN, {"EDGEFLEET_INTERVAL": "0"}, "EDGEFLEET_INTERVAL (environment): '0'"),
        ([*RUN, "--keepalive", "0"], {}, "--keepalive: '0' is not a whole number of seconds from 1 to 65535"),
        ([*RUN, "--keepalive", "1.5"], {}, "--keepalive: '1.5'"),
        ([*RUN, "--metaserver", "127.0.0.1:10550"], {}, "--metaserver: '127.0.0.1:10550' is not a URL"),
        ([*RUN, "--metaserver", "http://h:port"], {}, "--metaserver: 'http://h:port' has an invalid port"),
        ([*RUN, "--metaserver", "http://h", "--apps-file", "a"], {}, "--apps-file and --metaserver both"),
        ([*RUN, "--password", "p"], {}, "--password gives a password but there is no username"),
        ([*RUN, "--log-level", "loud"], {}, "argument --log-level: invalid choice: 'loud'"),
        ([*RUN, "--colour"], {}, "unrecognized arguments: --colour"),
        ([], {}, "the following arguments are required: {run,sample,enroll}"),
    ],
)
def test_bad_values_end_in_one_error_line(
    argv: list[str],
    env: dict[str, str],
    words: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in [n for n in os.environ if n.startswith("EDGEFLEET_")]:
        monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(argv) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("error: ")
    assert err.count("\n") == 1
    assert words in err


def test_usage_error_is_raised_not_printed_by_the_resolver() -> None:
    with pytest.raises(UsageError, match="--interval"):
        settings([*RUN, "--interval", "0"])


def test_help_ends_with_status_zero(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["run", "--help"]) == 0
    assert "--apps-file" in capsys.readouterr().out


def test_app_source_choice(tmp_path: Path) -> None:
    assert isinstance(choose_app_source(settings([*RUN, "--apps-file", str(tmp_path / "a")])), FileAppSource)
    chosen = choose_app_source(settings([*RUN, "--metaserver", "http://127.0.0.1:1"]))
    assert isinstance(chosen, MetaServerAppSource)
    assert chosen.url == "http://127.0.0.1:1"


def test_no_app_source_when_no_metaserver_answers() -> None:
    # Only meaningful where nothing listens on the MetaServer's port (this machine runs no edgecore).
    from edgefleet.agent.apps import metaserver_answers

    if metaserver_answers():
        pytest.skip("something listens on 127.0.0.1:10550")
    assert isinstance(choose_app_source(settings(RUN)), NoAppSource)


def test_sample_prints_a_valid_heartbeat_of_this_box(tmp_path: Path) -> None:
    apps = tmp_path / "apps.txt"
    apps.write_text("scan-upload 2.4.1 running\n")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "edgefleet.cli",
            "agent",
            "sample",
            "--box",
            "b-1",
            "--site",
            "s-1",
            "--apps-file",
            str(apps),
        ],
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode()
    heartbeat = decode_heartbeat(result.stdout)
    assert (heartbeat.box, heartbeat.site, heartbeat.seq) == ("b-1", "s-1", 1)
    assert heartbeat.host.memory_total_bytes
    assert heartbeat.host.cpu_percent is not None
    assert heartbeat.host.uptime_s is not None
    assert heartbeat.apps.apps[0].name == "scan-upload"
    if not heartbeat.gpu.available:  # this machine has no NVIDIA driver: the section says why
        assert heartbeat.gpu.reason
    assert b"Traceback" not in result.stderr


def test_a_bad_option_through_the_real_entry_point_has_no_traceback() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet.cli", "agent", "run", "--box", "BAD BOX", "--site", "s"],
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert result.stdout == b""
    assert result.stderr.decode().startswith("error: --box: 'BAD BOX' is not a valid id")
    assert result.stderr.count(b"\n") == 1


def test_log_lines_are_plain_text_with_their_fields() -> None:
    record = logging.LogRecord("edgefleet.agent.link", logging.INFO, __file__, 1, "Connected box to broker", None, None)
    record.box = "b-1"
    record.broker = "mqtt://127.0.0.1:1883"
    record.reason = "Not authorized"
    record.empty = ""
    line = PlainFormatter().format(record)
    assert line.endswith(
        'INFO edgefleet.agent.link: Connected box to broker box=b-1 broker=mqtt://127.0.0.1:1883 reason="Not authorized" empty=""'
    )
    assert "\n" not in line
    try:
        raise ValueError("boom")
    except ValueError:
        record.exc_info = sys.exc_info()
    assert PlainFormatter().format(record).splitlines()[-1] == "ValueError: boom"


def test_sample_reads_the_hosts_proc_and_disk_where_a_container_mounts_them(tmp_path: Path) -> None:
    """The DaemonSet in deploy/ mounts the host's /proc at /host/proc: --proc-root and --disk-path (or their
    variables) point the probe there."""
    proc = tmp_path / "host" / "proc"
    proc.mkdir(parents=True)
    (proc / "stat").write_text("cpu  1000 0 500 8000 500 0 0 0 0 0\n")
    (proc / "meminfo").write_text("MemTotal:       16384000 kB\nMemAvailable:    8192000 kB\n")
    (proc / "uptime").write_text("4242.50 100.00\n")
    result = subprocess.run(
        [sys.executable, "-m", "edgefleet.cli", "agent", "sample", "--no-gpu", "--proc-root", str(proc)],
        capture_output=True,
        cwd=REPO,
        timeout=30,
        check=False,
        env={**os.environ, "EDGEFLEET_DISK_PATH": str(tmp_path)},
    )
    assert result.returncode == 0, result.stderr.decode()
    heartbeat = decode_heartbeat(result.stdout)
    assert heartbeat.host.uptime_s == 4242.5
    assert heartbeat.host.memory_total_bytes == 16384000 * 1024
    assert heartbeat.host.disk_path == str(tmp_path)


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--proc-root", "/nonexistent"], {}, "error: --proc-root: '/nonexistent' holds no 'stat' file"),
        ([], {"EDGEFLEET_DISK_PATH": "/nonexistent"}, "error: EDGEFLEET_DISK_PATH (environment): '/nonexistent'"),
    ],
)
def test_a_missing_proc_root_or_disk_path_is_one_error_line(
    argv: list[str],
    env: dict[str, str],
    message: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main([*RUN, *argv]) == 2
    assert capsys.readouterr().err.startswith(message)

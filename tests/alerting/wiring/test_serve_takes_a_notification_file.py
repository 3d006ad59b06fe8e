"""The notification file is a setting of the controller (``EDGEFLEET_NOTIFICATIONS`` / ``--notifications``); a bad
file stops ``edgefleet cloud serve`` before anything listens, with every problem on a line of its own."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.cloud.settings import Settings
from tests.alerting.wiring.fleets import write_sites
from tests.cli.entry import edgefleet
from tests.support.peers import free_port


@pytest.mark.parametrize(
    ("environ", "override", "expected"),
    [
        ({}, None, None),
        ({"EDGEFLEET_NOTIFICATIONS": "/etc/edgefleet/notifications.yaml"}, None, "/etc/edgefleet/notifications.yaml"),
        ({"EDGEFLEET_NOTIFICATIONS": "  "}, None, None),
        ({"EDGEFLEET_NOTIFICATIONS": "/etc/a.yaml"}, "/srv/b.yaml", "/srv/b.yaml"),
        ({}, Path("relative/n.yaml"), "relative/n.yaml"),
    ],
)
def test_the_notification_file_comes_from_the_environment_or_the_command_line(
    environ: dict[str, str], override: str | Path | None, expected: str | None, tmp_path: Path
) -> None:
    settings = Settings.from_env(
        {"EDGEFLEET_DATABASE_URL": f"sqlite:///{tmp_path / 'e.db'}", **environ}, notifications_file=override
    )
    assert settings.notifications_file == (Path(expected) if expected is not None else None)


def test_a_bad_notification_file_stops_serve_with_every_problem(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites", {"alpha": 2})
    notifications = tmp_path / "notifications.yaml"
    notifications.write_text(
        "apiVersion: edgefleet.io/v1\nkind: Notifications\nmetadata: {name: broken}\nspec:\n"
        "  channels:\n    - {name: tickets, kind: webhook, url: 'http://127.0.0.1:9/hook'}\n"
        "  routes:\n    - {sites: [alpah], channels: [tickets]}\n"
        "    - {channels: [pager]}\n"
    )
    result = edgefleet(
        "cloud", "serve", "--listen", f"127.0.0.1:{free_port()}", "--broker", "mqtt://127.0.0.1:1",
        "--sites", str(sites), "--database", f"sqlite:///{tmp_path / 'e.db'}", "--notifications", str(notifications),
    )  # fmt: skip
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert lines[0] == "error: the notification file has 2 problem(s):"
    assert any("spec.routes[0].sites" in line and "'alpah'" in line for line in lines), lines
    assert any("spec.routes[1].channels" in line and "'pager'" in line for line in lines), lines
    assert lines[-1] == "hint: fix the notification file; docs/alerting.md describes its fields"

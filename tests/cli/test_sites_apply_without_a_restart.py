"""``edgefleet sites apply`` and SIGHUP put a changed sites directory in force in a running ``edgefleet cloud
serve``: a new site's boxes are listed at once; a directory with a problem is refused whole, naming file, line,
field and reason, and the version in force stays (``/healthz`` names it)."""

from __future__ import annotations

import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.inventory import inventory_version
from tests.cli.entry import edgefleet, spawn
from tests.cloud.api.memory import write_inventory
from tests.cloud.test_inventory_changes_without_a_restart import NEW_SITE
from tests.support.access import as_cli, mint_at, use_token
from tests.support.peers import Mosquitto, free_port, wait_for


@pytest.fixture
def sites(tmp_path: Path) -> Path:
    return write_inventory(tmp_path / "sites")


@pytest.fixture
def serving(
    broker: Mosquitto, sites: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, subprocess.Popen[str]]]:
    port = free_port()
    process = spawn(
        "cloud", "serve", "--listen", f"127.0.0.1:{port}", "--broker", broker.url, "--sites", str(sites),
        "--database", f"sqlite:///{tmp_path / 'edgefleet.db'}",
    )  # fmt: skip
    api = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        if process.poll() is not None:
            output, _ = process.communicate()
            raise AssertionError(f"the controller exited ({process.returncode}):\n{output}")
        try:
            return httpx.get(f"{api}/healthz", timeout=5).status_code in (200, 503)
        except httpx.TransportError:
            return False

    try:
        wait_for(answers, timeout=20, what="the controller to answer")
        # The CLI (run as a child, which inherits the environment) and the API calls here act as an admin.
        use_token(monkeypatch, mint_at(f"sqlite:///{tmp_path / 'edgefleet.db'}"))
        yield api, process
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()


def version_in_force(api: str) -> str:
    version: str = httpx.get(f"{api}/healthz", timeout=5).json()["inventory_version"]
    assert version == as_cli.get(f"{api}/api/v1/inventory", timeout=5).json()["version"]
    return version


def test_apply_adds_a_site_and_its_boxes_are_listed_at_once(serving: tuple[str, object], sites: Path) -> None:
    api, _ = serving
    before = version_in_force(api)
    assert before == inventory_version(sites)
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)

    applied = edgefleet("sites", "apply", str(sites), "--api", api)

    assert applied.returncode == 0, applied.stderr
    assert f"Applied inventory {inventory_version(sites)} (was {before}): 4 sites, 8 boxes (+1 site, +2 boxes)" in (
        applied.stdout
    )
    assert version_in_force(api) == inventory_version(sites)
    listed = edgefleet("boxes", "--site", "gz-baiyun", "--api", api)
    assert listed.returncode == 0, listed.stderr
    assert "gz-baiyun-gpu-01" in listed.stdout
    assert "gz-baiyun-edge-01" in listed.stdout

    again = edgefleet("sites", "apply", str(sites), "--api", api)
    assert again.returncode == 0, again.stderr
    assert "is already in force: nothing changed" in again.stdout


def test_apply_refuses_a_bad_directory_whole_before_asking_the_controller(
    serving: tuple[str, object], sites: Path
) -> None:
    api, _ = serving
    before = version_in_force(api)
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE.replace("role: edge-node", "role: edge-nod"))

    refused = edgefleet("sites", "apply", str(sites), "--api", api)

    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "gz-baiyun.yaml:12: spec.boxes[1].role:" in refused.stderr, refused.stderr
    assert "nothing was applied" in refused.stderr
    assert version_in_force(api) == before


def test_apply_of_another_directory_than_the_controllers_is_refused(
    serving: tuple[str, object], sites: Path, tmp_path: Path
) -> None:
    api, _ = serving
    before = version_in_force(api)
    elsewhere = write_inventory(tmp_path / "elsewhere")
    (elsewhere / "gz-baiyun.yaml").write_text(NEW_SITE)

    refused = edgefleet("sites", "apply", str(elsewhere), "--api", api)

    assert refused.returncode == 1
    assert f"the controller's sites directory {sites} holds inventory version {before}" in refused.stderr
    assert version_in_force(api) == before


def test_sighup_reloads_and_a_bad_directory_is_logged_and_refused(
    serving: tuple[str, subprocess.Popen[str]], sites: Path
) -> None:
    api, process = serving
    (sites / "gz-baiyun.yaml").write_text(NEW_SITE)
    process.send_signal(signal.SIGHUP)
    wait_for(lambda: version_in_force(api) == inventory_version(sites), timeout=10, what="the new version in force")
    assert [b["id"] for b in as_cli.get(f"{api}/api/v1/sites/gz-baiyun/boxes", timeout=5).json()] == [
        "gz-baiyun-gpu-01",
        "gz-baiyun-edge-01",
    ]

    # The reload is in the audit log: nobody is known to have sent the signal, only where it went.
    (reload,) = as_cli.get(f"{api}/api/v1/audit", params={"action": "reload-inventory"}, timeout=5).json()
    assert reload["principal"] == "SIGHUP"
    assert reload["source"] == f"signal to pid {process.pid} on {socket.gethostname()}"
    assert reload["target"] == {"kind": "inventory", "id": inventory_version(sites)}
    assert reload["after"]["sites_added"] == ["gz-baiyun"]

    good = version_in_force(api)
    (sites / "broken.yaml").write_text("apiVersion: edgefleet.io/v1\nkind: Site\nmetadata: {name: x}\n")
    process.send_signal(signal.SIGHUP)
    refused = as_cli.post(f"{api}/api/v1/inventory/reload", timeout=10)
    assert refused.status_code == 422
    assert "broken.yaml" in refused.json()["error"]["message"]
    assert version_in_force(api) == good

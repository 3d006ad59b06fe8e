"""The console's browser tests: Debian's headless Chromium, driven by Playwright, against a real controller (the
app's lifespan runs it: SQLite, a real Mosquitto, the gateway on the simulator's clusters, the alert loop and the
rollout reconciler) and the simulator playing a small fleet over MQTT. One of each for the whole package:
starting them costs seconds, a page costs milliseconds. The modules run in name order, and each leaves the fleet
online as it found it (the overview's tests count online boxes).

Playwright never downloads a browser here: ``executable_path`` is the ``chromium`` package's
(``scripts/test`` installs it where missing). Screenshots go to docs/screenshots/ (the README shows them).
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, ConsoleMessage, Dialog, Page, sync_playwright

from edgefleet.cloud.api import create_app
from edgefleet.cloud.settings import Settings
from simulator.running import BackgroundSimulator, SimulatorOptions, start_in_background
from simulator.sources import site_release
from tests.cloud.api.serving import serving
from tests.conftest import REPO
from tests.simulator.fleets import write_inventory
from tests.support.access import bearer, mint_at
from tests.support.peers import mosquitto, wait_for

SCREENSHOTS = REPO / "docs" / "screenshots"
# Fast enough that a change shows within a second; a keepalive short enough that a cut site's Last Wills come
# within seconds (the broker waits ~1.5-2 x keepalive).
INTERVAL_S = 0.5
KEEPALIVE_S = 2
SITES = 4
BOXES_PER_SITE = 5
SEED = 7
# sorting-recognition ships its recognition model (docs/releases.md).
MODEL = """\
  model:
    name: rough-handling
    version: 2026.11.2
    sha256: ab22e69636038f76058fae6ec99ebe449a8968e2db050f96fd17657b238aaf61
    url: https://models.local/rough-handling/2026.11.2.onnx
"""
# The reconciler's schedule: short, so a rollout's sites move within a second or two.
ROLLOUT_TICK_S = 0.3
# The alerting rules of the console's controller: a GPU held hot fires at once (the default waits two minutes,
# which a test would wait out); the route (to a port nothing listens on) only makes the file complete.
NOTIFICATIONS = """\
apiVersion: edgefleet.io/v1
kind: Notifications
metadata: {name: console-tests}
spec:
  channels:
    - {name: nowhere, kind: webhook, url: "http://127.0.0.1:9/hooks"}
  routes:
    - {kinds: [clock-skew], channels: [nowhere]}
  rules:
    defaults: {gpuTemperatureFor: 1s, eccCorrectedRise: 1000000}
"""


# The central cluster, as the company runs theirs (sites/central-sh-dc1.yaml): GPU workers in a host group, a
# big-data host kept for its namespace at night, overcommit, apps kept apart, a namespace left out of the audit.
# The simulator seeds it with the company's workloads and their planted violations (simulator/cluster/central.py);
# the clusters' page shows its policy, audit and GPUs.
CENTRAL = "central-01"
CENTRAL_SITE = """\
apiVersion: edgefleet.io/v1
kind: Site
metadata: {name: central-01}
spec:
  kind: central
  displayName: "central-01"
  region: test
  timezone: Asia/Shanghai
  cluster: central-01
  heartbeat: {intervalSeconds: 10, missedBeats: 3}
  boxes:
    - {name: central-01-cp-01, role: cluster-node, model: Dell PowerEdge R660}
    - name: central-01-worker-01
      role: cluster-node
      model: Dell PowerEdge R760
      gpu: {model: NVIDIA A10, count: 4, driverVersion: "550.90.07"}
      labels: {edgefleet.io/host-group: general}
    - name: central-01-worker-02
      role: cluster-node
      model: Dell PowerEdge R760
      gpu: {model: NVIDIA A10, count: 2, driverVersion: "550.90.07"}
      labels: {edgefleet.io/host-group: general}
    - {name: central-01-worker-03, role: cluster-node, model: Dell PowerEdge R760, labels: {edgefleet.io/host-group: bigdata}}
---
apiVersion: edgefleet.io/v1
kind: Cluster
metadata: {name: central-01}
spec:
  role: central
  context: central-01
  region: east
  timezone: Asia/Shanghai
  policy:
    overcommit: {cpu: 10, memory: 1.5}
    hostGroups:
      general: {matchLabels: {edgefleet.io/host-group: general}}
      bigdata: {matchLabels: {edgefleet.io/host-group: bigdata}}
    exclusiveHosts:
      - {hostGroup: bigdata, window: "00:00-06:00", namespaces: [bigdata]}
    antiAffinity:
      - {name: gpu-heavy, apps: [sorting-recognition, video-transcode]}
    events:
      - {action: include, level: Warning}
    namespaces:
      kube-system: {audit: false}
      bigdata: {overcommit: {cpu: 4}, hostGroup: bigdata}
"""


def release(app: str, version: str) -> str:
    return f"""\
apiVersion: edgefleet.io/v1
kind: Release
metadata: {{name: {app}-{version}}}
spec:
  app: {app}
  version: {version}
  images:
    {app}: registry.local:5000/edgefleet/{app}:{version}
{MODEL if app == "sorting-recognition" else ""}  strategy:
    canary: {{sites: [], coverHardware: true}}
    waves: ["100%"]
"""


def write_releases(directory: Path, sites: list[str]) -> Path:
    """The releases the simulator's fleet runs when it starts: what a rollout's abort goes back to."""
    directory.mkdir(parents=True, exist_ok=True)
    for app in ("scan-upload", "sorting-recognition"):
        for site in sites:
            version = site_release(SEED, site, app)
            (directory / f"{app}-{version}.yaml").write_text(release(app, version))
    return directory


def chromium_path() -> str:
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("Debian's chromium is not installed: run scripts/test (it installs it) or apt-get install chromium")
    return found


@dataclass(frozen=True)
class Console:
    url: str
    sim: BackgroundSimulator
    boxes: list[str]
    # An admin token named "tester": the browser sends it (``page``), and so do the tests' own API calls.
    token: str
    # The controller's database, where a test mints a token of another role (``tests.support.access.mint_at``).
    database_url: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)

    def fault(self, **body: object) -> dict[str, object]:
        """Inject a fault through the simulator's control API (as ``edgefleet sim fault`` does)."""
        response = httpx.post(f"{self.sim.url}/faults", json=body, timeout=10)
        assert response.status_code == 201, response.text
        return response.json()  # type: ignore[no-any-return]

    def end_fault(self, fault_id: str) -> None:
        httpx.delete(f"{self.sim.url}/faults/{fault_id}", timeout=10).raise_for_status()


@pytest.fixture(scope="package")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    directory = tmp_path_factory.mktemp("console")
    sites = directory / "sites"
    sim_sites = write_inventory(sites, sites=SITES, boxes_per_site=BOXES_PER_SITE, central=True)
    (sites / f"{CENTRAL}.yaml").write_text(CENTRAL_SITE)
    kubeconfig = directory / "sim.kubeconfig"
    with contextlib.ExitStack() as stack:
        broker = stack.enter_context(mosquitto(directory))
        sim = start_in_background(
            SimulatorOptions(
                sites_dir=sites,
                broker_url=broker.url,
                listen="127.0.0.1:0",
                interval_override_s=INTERVAL_S,
                keepalive_s=KEEPALIVE_S,
                seed=SEED,
                kubeconfig=kubeconfig,
            )
        )
        stack.callback(sim.stop)
        notifications = directory / "notifications.yaml"
        notifications.write_text(NOTIFICATIONS)
        settings = Settings(
            broker_url=broker.url,
            database_url=f"sqlite:///{directory / 'edgefleet.db'}",
            sites_dir=sites,
            kubeconfig=kubeconfig,
            notifications_file=notifications,
            rollout_tick_s=ROLLOUT_TICK_S,
            releases_dir=write_releases(directory / "releases", sim_sites),
        )
        url = stack.enter_context(serving(create_app(settings)))
        token = mint_at(settings.database_url, name="tester")
        boxes = httpx.get(f"{url}/api/v1/overview", headers=bearer(token), timeout=10).json()["cells"]

        def all_online() -> bool:
            cells = httpx.get(f"{url}/api/v1/overview", headers=bearer(token), timeout=10).json()["cells"]
            return all(cell[1] == "online" for cell in cells.values())

        wait_for(all_online, timeout=30, what="every simulated box to show online")
        yield Console(url, sim, sorted(boxes), token, settings.database_url)


@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=chromium_path(), headless=True)
        yield launched
        launched.close()


# What the console says on the browser's console for a string its catalogue lacks (``t`` in static/app.js).
MISSING_STRING = "edgefleet: no string in the catalogue:"
# A desktop window; a tablet's are in the tablet tests.
DESKTOP = {"width": 1280, "height": 800}


@dataclass(frozen=True)
class Problems:
    """What a page said went wrong while a test used it: script errors, and strings its catalogue lacked (as
    "LANG KEY")."""

    errors: list[str]
    missing_strings: list[str]


@contextlib.contextmanager
def opened_page(
    browser: Browser,
    *,
    locale: str = "en-US",
    viewport: dict[str, int] | None = None,
    touch: bool = False,
    headers: dict[str, str] | None = None,
) -> Iterator[tuple[Page, Problems]]:
    """A fresh browser context (its own localStorage) and a page in it, in the language ``locale`` picks (zh-CN:
    Chinese), with what goes wrong on it collected. Every console browser test opens its pages here: the one place
    to give them what the API will ask of a caller."""
    context = browser.new_context(
        viewport=viewport or DESKTOP,
        locale=locale,
        has_touch=touch,
        is_mobile=touch,
        device_scale_factor=1,
        # The caller's bearer header on every request of the context (``Console.headers``): until a test signs
        # in through the sign-in page (a session cookie), this is how a browser is known. Playwright's
        # extra_http_headers reach the EventSource too, which cannot send headers of its own.
        extra_http_headers=headers,
    )
    problems = Problems([], [])
    context.on("weberror", lambda error: problems.errors.append(str(error.error)))

    def said(message: ConsoleMessage) -> None:
        if message.text.startswith(MISSING_STRING):
            problems.missing_strings.append(message.text.removeprefix(MISSING_STRING).strip())

    context.on("console", said)
    try:
        yield context.new_page(), problems
    finally:
        context.close()


@pytest.fixture
def page(browser: Browser, console: Console) -> Iterator[Page]:
    """A page in a fresh browser context, a desktop-sized window, English unless chosen, known to the API as the
    console's token. A script error on any page, or a string missing from the catalogue of the language shown,
    fails the test."""
    with opened_page(browser, headers=console.headers) as (opened, problems):
        yield opened
    assert problems.errors == [], f"script errors on the page: {problems.errors}"
    assert problems.missing_strings == [], f"strings missing from the catalogues: {problems.missing_strings}"


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


# The name of the console's token (``Console.token``): the actor of what the browser does.
WHO = "tester"


class Dialogs:
    """Answers the page's dialogs as a user would: a prompt with the answer queued for it (else ``WHO``), a
    confirmation with yes; keeps each message asked."""

    def __init__(self, page: Page) -> None:
        self.asked: list[tuple[str, str]] = []
        self.answers: list[str] = []
        page.on("dialog", self._answer)

    def _answer(self, dialog: Dialog) -> None:
        self.asked.append((dialog.type, dialog.message))
        if dialog.type == "prompt":
            dialog.accept(self.answers.pop(0) if self.answers else WHO)
        else:
            dialog.accept()

    def confirmed(self) -> list[str]:
        return [message for kind, message in self.asked if kind == "confirm"]


@pytest.fixture
def dialogs(page: Page) -> Dialogs:
    return Dialogs(page)

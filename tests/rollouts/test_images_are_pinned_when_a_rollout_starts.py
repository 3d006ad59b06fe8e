"""A rollout pins its images by digest when it starts (issue 15): each tag is resolved through the registry its host
is configured with (the simulated registry, served for real), the manifest is stored with the digests, and every
site gets them - one caught up after the tag moved, and one reverted to a release an earlier rollout pinned. A tag
the registry does not know, or a registry that does not answer, refuses the start before anything is stored or
applied; a host with no registry configured keeps its tag, with a warning. The API's plan shows each pin."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from edgefleet.cloud.registry import (
    ATTEMPTS,
    ImagePin,
    RegistryClient,
    RegistryConfigError,
    RegistryHosts,
    load_registry_hosts,
    pin_images,
)
from edgefleet.cloud.rollouts.rendering import NAMESPACE
from edgefleet.cloud.rollouts.service import ImagesNotPinned
from edgefleet.inventory import Inventory, load_inventory
from edgefleet.releases import load_release_text, parse_image, pin_release_text, registry_of
from simulator.listening import listen_tcp
from simulator.registry import BackgroundRegistry, RegistryContent, write_hosts_dir
from tests.cloud.api.serving import serving
from tests.rollouts.world import CLUSTER, SITE_YAML, SITES, World, release, small_world
from tests.support.clusters import write_host_cluster
from tests.support.peers import wait_for

HOST = "registry.local:5000"
REPOSITORY = f"{HOST}/edgefleet/scan-upload"


@pytest.fixture(scope="module")
def content() -> RegistryContent:
    return RegistryContent(f"{REPOSITORY}:{v}" for v in ("1.0.0", "2.0.0", "1.0.0-rebuilt"))


@pytest.fixture(scope="module")
def registry(content: RegistryContent) -> Iterator[str]:
    served = BackgroundRegistry(content, HOST).start()
    try:
        yield served.url
    finally:
        served.stop()


@pytest.fixture
def hosts_dir(tmp_path: Path, registry: str) -> Path:
    return write_hosts_dir(tmp_path / "registries", {HOST: registry})


def _digest(content: RegistryContent, tag: str) -> str:
    digest = content.digest(f"{REPOSITORY}:{tag}")
    assert digest is not None
    return digest


# --- the pure parts ----------------------------------------------------------------------------------------------


def test_pinning_the_text_changes_the_image_and_nothing_else() -> None:
    text = release("1.0.0").replace("  images:\n", "  images:  # pinned when the rollout starts\n")
    digest = "sha256:" + "a" * 64
    pinned = pin_release_text(text, "r.yaml", {"scan-upload": f"{REPOSITORY}:1.0.0@{digest}"})
    assert pinned == text.replace(f"{REPOSITORY}:1.0.0\n", f"{REPOSITORY}:1.0.0@{digest}\n")
    assert "# pinned when the rollout starts" in pinned


def test_pinning_replaces_the_whole_reference_not_a_longer_one_that_starts_alike() -> None:
    text = release("1.0.0").replace(
        f"    scan-upload: {REPOSITORY}:1.0.0\n",
        f'    {{scan-upload: "{REPOSITORY}:1.0.0", proxy: "{REPOSITORY}:1.0.0.1"}}\n',
    )
    text = text.replace("  images:\n", "  images:")
    digest = "sha256:" + "b" * 64
    pinned = pin_release_text(text, "r.yaml", {"scan-upload": f"{REPOSITORY}:1.0.0@{digest}"})
    assert f'"{REPOSITORY}:1.0.0@{digest}", proxy: "{REPOSITORY}:1.0.0.1"' in pinned


@pytest.mark.parametrize(
    ("image", "expected"),
    [
        ("registry.local:5000/edgefleet/app:1", ("registry.local:5000", "edgefleet/app")),
        ("localhost/app:1", ("localhost", "app")),
        ("ghcr.io/org/app:1", ("ghcr.io", "org/app")),
        ("edgefleet/app:1", ("docker.io", "edgefleet/app")),
        ("nginx:1.27", ("docker.io", "library/nginx")),
    ],
)
def test_an_images_registry_is_read_as_a_container_runtime_reads_it(image: str, expected: tuple[str, str]) -> None:
    assert registry_of(parse_image(image)) == expected


@pytest.mark.parametrize(
    ("toml", "said"),
    [
        ('server = "https://r"\nheader = {A = "b"}\n', "header: not supported"),
        ('[host."ftp://mirror"]\ncapabilities = ["resolve"]\n', "is no http(s) URL"),
        ("server = [", "is no TOML"),
        ('[host."http://m"]\nskip_verify = "yes"\n', "skip_verify: expected true or false"),
    ],
)
def test_a_bad_hosts_file_is_refused_naming_the_file_and_the_key(tmp_path: Path, toml: str, said: str) -> None:
    (tmp_path / HOST).mkdir()
    (tmp_path / HOST / "hosts.toml").write_text(toml)
    with pytest.raises(RegistryConfigError, match=re.escape(said)) as refused:
        load_registry_hosts(tmp_path)
    assert str(tmp_path / HOST / "hosts.toml") in str(refused.value)


def test_mirrors_that_resolve_come_before_the_server(tmp_path: Path) -> None:
    (tmp_path / HOST).mkdir()
    (tmp_path / HOST / "hosts.toml").write_text(
        'server = "https://r.example"\n[host."http://push-only"]\ncapabilities = ["push"]\n'
        '[host."http://mirror"]\ncapabilities = ["pull", "resolve"]\nskip_verify = true\n'
    )
    hosts = load_registry_hosts(tmp_path)
    assert [(e.url, e.verify) for e in hosts.endpoints(HOST) or ()] == [
        ("http://mirror", False),
        ("https://r.example", True),
    ]
    assert hosts.endpoints("other.example") is None


# --- resolving through the simulated registry --------------------------------------------------------------------


@pytest.fixture(scope="module")
def inventory(tmp_path_factory: pytest.TempPathFactory) -> Inventory:
    sites = tmp_path_factory.mktemp("sites")
    write_host_cluster(sites)
    for name in SITES:
        (sites / f"{name}.yaml").write_text(SITE_YAML.format(name=name, cluster=CLUSTER))
    return load_inventory(sites)


class CountedSleep:
    """The client's pacing between retries, counted instead of slept (time is a parameter)."""

    def __init__(self) -> None:
        self.calls: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def _pin(inventory: Inventory, image: str, hosts: RegistryHosts | None, sleep: CountedSleep | None = None) -> ImagePin:
    loaded = load_release_text(release("1.0.0", image=image), "r.yaml", inventory)
    client = RegistryClient(sleep=sleep or CountedSleep(), timeout_s=2.0)
    (pin,) = pin_images(loaded, hosts, client)
    return pin


def test_a_tag_is_pinned_to_the_digest_the_registry_serves(
    inventory: Inventory, hosts_dir: Path, content: RegistryContent
) -> None:
    pin = _pin(inventory, f"{REPOSITORY}:1.0.0", load_registry_hosts(hosts_dir))
    assert pin.pinned == f"{REPOSITORY}:1.0.0@{_digest(content, '1.0.0')}"
    assert (pin.warning, pin.problem) == (None, None)


def test_an_image_given_by_digest_is_kept_when_the_registry_has_it_and_refused_when_not(
    inventory: Inventory, hosts_dir: Path, content: RegistryContent
) -> None:
    hosts = load_registry_hosts(hosts_dir)
    given = f"{REPOSITORY}:1.0.0@{_digest(content, '1.0.0')}"
    assert _pin(inventory, given, hosts).pinned == given
    unknown = _pin(inventory, f"{REPOSITORY}:1.0.0@sha256:{'0' * 64}", hosts)
    assert unknown.pinned is None
    assert unknown.unknown
    assert "MANIFEST_UNKNOWN" in (unknown.problem or "")


def test_an_unknown_tag_is_a_problem_naming_image_registry_answer_and_fix(
    inventory: Inventory, hosts_dir: Path
) -> None:
    sleep = CountedSleep()
    pin = _pin_tag(inventory, "9.9.9", load_registry_hosts(hosts_dir), sleep)
    assert pin.unknown
    problem = pin.problem or ""
    for said in (f"{REPOSITORY}:9.9.9", f"registry {HOST}", "404 MANIFEST_UNKNOWN", f"push the image to {HOST}"):
        assert said in problem
    assert sleep.calls == [], "a definite answer is not retried"


def _pin_tag(inventory: Inventory, tag: str, hosts: RegistryHosts | None, sleep: CountedSleep) -> ImagePin:
    """A release whose version is ``tag``, its image tagged so (the loader wants the app's tag to be the version)."""
    loaded = load_release_text(release(tag), "r.yaml", inventory)
    (pin,) = pin_images(loaded, hosts, RegistryClient(sleep=sleep, timeout_s=2.0))
    return pin


def test_a_registry_that_does_not_answer_is_retried_then_a_problem(inventory: Inventory, tmp_path: Path) -> None:
    closed = listen_tcp("127.0.0.1", 0)
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now: connections are refused
    (tmp_path / HOST).mkdir()
    (tmp_path / HOST / "hosts.toml").write_text(f'server = "http://127.0.0.1:{port}"\n')
    hosts = load_registry_hosts(tmp_path)
    sleep = CountedSleep()
    pin = _pin_tag(inventory, "1.0.0", hosts, sleep)
    assert not pin.unknown
    assert pin.problem is not None
    assert f"cannot ask registry {HOST}" in pin.problem
    assert "ConnectError" in pin.problem
    # Asked ATTEMPTS times, paced by a growing sleep between them.
    assert sleep.calls == [0.5 * 2**i for i in range(ATTEMPTS - 1)]


def test_a_host_with_no_registry_configured_keeps_its_tag_with_a_warning(
    inventory: Inventory, tmp_path: Path, hosts_dir: Path
) -> None:
    unset = _pin_tag(inventory, "1.0.0", None, CountedSleep())
    assert (unset.pinned, unset.problem) == (None, None)
    assert "EDGEFLEET_REGISTRY_CONFIG is not set" in (unset.warning or "")
    other = load_registry_hosts(write_hosts_dir(tmp_path / "other", {"ghcr.io": "http://127.0.0.1:1"}))
    elsewhere = _pin_tag(inventory, "1.0.0", other, CountedSleep())
    assert f"no registry is configured for {HOST}" in (elsewhere.warning or "")
    assert "stays a bare tag" in (elsewhere.warning or "")


# --- a rollout over a simulated cluster --------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, hosts_dir: Path) -> Iterator[World]:
    with small_world(tmp_path) as built:
        built.registry_config = hosts_dir
        built.restart()
        built.beat()
        yield built


@pytest.mark.slow
def test_every_site_gets_the_digest_pinned_at_the_start_even_after_the_tag_moved(
    world: World, content: RegistryContent
) -> None:
    digest = _digest(content, "1.0.0")
    world.silent.add(SITES[2])
    world.clock.advance(120)  # its boxes' last heartbeats are now too old: it is deferred, then caught up
    rollout, created = world.service.start(release("1.0.0"), by="tester")
    assert created
    assert f"{REPOSITORY}:1.0.0@{digest}" in rollout.release_yaml
    world.step_until(rollout.id, lambda r: r.status.waves == ("passed", "passed"), what="to pass both waves")
    # The tag is pushed again (a rebuilt image): the site caught up later still gets what the rollout pinned.
    repository = content.hosts[HOST]["edgefleet/scan-upload"]
    moved = repository.tags["1.0.0"]
    repository.tags["1.0.0"] = _digest(content, "1.0.0-rebuilt")
    try:
        world.silent.clear()
        world.run_until(rollout.id, "done")
    finally:
        repository.tags["1.0.0"] = moved
    for site in SITES:
        assert world.site_release(site)[2] == f"{REPOSITORY}:1.0.0@{digest}"

    def running_the_digest() -> bool:
        pods = world.gateway.list_objects(
            CLUSTER, "Pod", namespace=NAMESPACE, label_selector="app.kubernetes.io/name=scan-upload"
        ).items
        ids = {c.get("imageID") for p in pods for c in p.get("status", {}).get("containerStatuses", [])}
        return len(pods) == len(SITES) and ids == {f"{REPOSITORY}@{digest}"}

    # The kubelets report the digest they run, as a real one reports what it pulled.
    wait_for(running_the_digest, timeout=30, interval=0.1, what="every site's pod running the pinned digest")
    world.restart()  # a new controller reads the same pinned manifest
    assert world.rollouts.get(rollout.id).release_yaml == rollout.release_yaml


@pytest.mark.slow
def test_an_unknown_tag_refuses_the_start_and_nothing_is_stored_or_applied(world: World) -> None:
    with pytest.raises(ImagesNotPinned) as refused:
        world.service.start(release("9.9.9"), by="tester", idempotency_key="k-1")
    assert not refused.value.unavailable
    assert f"registry {HOST} has no image {REPOSITORY}:9.9.9" in str(refused.value)
    assert world.rollouts.page() == []
    assert world.rollouts.by_idempotency_key("k-1") is None
    world.reconciler.tick()
    assert world.gateway.applied == []


@pytest.mark.slow
def test_a_rollback_puts_back_the_digest_the_earlier_rollout_pinned(world: World, content: RegistryContent) -> None:
    first, _ = world.service.start(release("1.0.0"), by="tester")
    world.run_until(first.id, "done")
    second, _ = world.service.start(release("2.0.0"), by="tester")
    world.run_until(second.id, "done")
    assert world.site_release(SITES[0])[2] == f"{REPOSITORY}:2.0.0@{_digest(content, '2.0.0')}"
    world.service.command(second.id, "rollback", by="tester")

    world.run_until(second.id, "rolled-back")

    for site in SITES:
        assert world.site_release(site)[0] == "scan-upload-1.0.0"
        assert world.site_release(site)[2] == f"{REPOSITORY}:1.0.0@{_digest(content, '1.0.0')}"


@pytest.fixture
def client(world: World) -> Iterator[httpx.Client]:
    with serving(world.app()) as url, httpx.Client(base_url=url, timeout=10, headers=world.headers) as c:
        yield c


@pytest.mark.slow
def test_the_api_plans_the_pins_refuses_an_unknown_tag_and_shows_the_pinned_images(
    client: httpx.Client, content: RegistryContent
) -> None:
    pinned = f"{REPOSITORY}:1.0.0@{_digest(content, '1.0.0')}"
    plan = client.post("/api/v1/rollouts/plan", json={"release": release("1.0.0")}).json()
    assert plan["images"] == [
        {"container": "scan-upload", "image": f"{REPOSITORY}:1.0.0", "pinned": pinned, "warning": None, "problem": None}
    ]
    assert not [w for w in plan["warnings"] if "by tag only" in w], "the tag is pinned: no tag-only warning"

    unknown = client.post("/api/v1/rollouts/plan", json={"release": release("9.9.9")}).json()
    assert unknown["images"][0]["pinned"] is None
    assert any(w.startswith("a start would be refused: ") for w in unknown["warnings"])
    refused = client.post("/api/v1/rollouts", json={"release": release("9.9.9")})
    assert refused.status_code == 422
    assert f"registry {HOST} has no image {REPOSITORY}:9.9.9" in refused.json()["error"]["message"]
    assert client.get("/api/v1/rollouts").json() == []

    started = client.post("/api/v1/rollouts", json={"release": release("1.0.0")})
    assert started.status_code == 201
    assert started.json()["images"] == {"scan-upload": pinned}


def test_an_image_written_across_lines_cannot_be_pinned_in_place_and_says_so() -> None:
    text = release("1.0.0").replace(
        f"    scan-upload: {REPOSITORY}:1.0.0\n", f"    scan-upload:\n      {REPOSITORY}:1.0.0\n"
    )
    with pytest.raises(ValueError, match="write the image on the same line as its container name"):
        pin_release_text(text, "r.yaml", {"scan-upload": f"{REPOSITORY}:1.0.0@sha256:{'c' * 64}"})

"""The simulated registry answers as the OCI distribution spec says: through httpx, request by request, and through
skopeo (a real registry client, when installed), which resolves, inspects and copies its images. It serves every
image the shipped releases and the seeded apps name, with the same digests in every run."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from simulator.cluster.releases import seeded_images
from simulator.registry import (
    DOCKER_MANIFEST,
    INDEX,
    MANIFEST,
    BackgroundRegistry,
    RegistryContent,
    release_images,
    write_hosts_dir,
)

HOST = "registry.local:5000"
RELEASES = Path(__file__).parents[2] / "releases"
SCAN = "edgefleet/scan-upload"


def _sha(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture(scope="module")
def content() -> RegistryContent:
    return RegistryContent([*release_images(RELEASES), *seeded_images()])


@pytest.fixture(scope="module")
def registry(content: RegistryContent) -> Iterator[str]:
    served = BackgroundRegistry(content, HOST).start()
    try:
        yield served.url
    finally:
        served.stop()


def test_it_serves_every_image_of_the_shipped_releases_and_the_seeded_apps(content: RegistryContent) -> None:
    images = [*release_images(RELEASES), *seeded_images()]
    assert len(release_images(RELEASES)) == len(list(RELEASES.glob("*.yaml")))
    for image in images:
        assert content.digest(image) is not None, image
    # Every byte follows from name and tag: another process builds the same digests.
    again = RegistryContent(images)
    assert [again.digest(i) for i in images] == [content.digest(i) for i in images]
    assert content.digest(f"{HOST}/{SCAN}:9.9.9") is None
    assert content.digest(f"{HOST}/edgefleet/nothing:1.0") is None


def test_the_base_endpoint_says_it_is_a_v2_registry(registry: str) -> None:
    answer = httpx.get(f"{registry}/v2/")
    assert answer.status_code == 200
    assert answer.headers["Docker-Distribution-API-Version"] == "registry/2.0"


def test_a_tag_resolves_to_the_digest_of_the_index_it_serves(registry: str, content: RegistryContent) -> None:
    accept = {"Accept": f"{INDEX}, {MANIFEST}, {DOCKER_MANIFEST}"}
    head = httpx.head(f"{registry}/v2/{SCAN}/manifests/1.14.0", headers=accept)
    get = httpx.get(f"{registry}/v2/{SCAN}/manifests/1.14.0", headers=accept)
    assert head.status_code == get.status_code == 200
    assert head.headers["Content-Type"] == get.headers["Content-Type"] == INDEX
    assert head.headers["Docker-Content-Digest"] == get.headers["Docker-Content-Digest"] == _sha(get.content)
    assert int(head.headers["Content-Length"]) == len(get.content)
    assert _sha(get.content) == content.digest(f"{HOST}/{SCAN}:1.14.0")
    index = get.json()
    assert index["mediaType"] == INDEX
    assert {m["platform"]["architecture"] for m in index["manifests"]} == {"amd64", "arm64"}
    # By digest: the same bytes.
    by_digest = httpx.get(f"{registry}/v2/{SCAN}/manifests/{_sha(get.content)}", headers=accept)
    assert by_digest.content == get.content


def test_each_manifest_config_and_layer_is_served_and_matches_its_digest(registry: str) -> None:
    index = httpx.get(f"{registry}/v2/{SCAN}/manifests/1.13.1", headers={"Accept": INDEX}).json()
    for descriptor in index["manifests"]:
        manifest = httpx.get(f"{registry}/v2/{SCAN}/manifests/{descriptor['digest']}", headers={"Accept": MANIFEST})
        assert manifest.headers["Content-Type"] == MANIFEST
        assert _sha(manifest.content) == descriptor["digest"]
        assert len(manifest.content) == descriptor["size"]
        body = manifest.json()
        for blob in [body["config"], *body["layers"]]:
            data = httpx.get(f"{registry}/v2/{SCAN}/blobs/{blob['digest']}").content
            assert (_sha(data), len(data)) == (blob["digest"], blob["size"])
        layer = httpx.get(f"{registry}/v2/{SCAN}/blobs/{body['layers'][0]['digest']}").content
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(layer))) as tar:
            assert tar.getnames() == ["etc/edgefleet-image"]
        config = json.loads(httpx.get(f"{registry}/v2/{SCAN}/blobs/{body['config']['digest']}").content)
        assert config["architecture"] == descriptor["platform"]["architecture"]
        assert config["rootfs"]["diff_ids"] == [_sha(gzip.decompress(layer))]


def test_a_client_that_takes_no_index_gets_the_amd64_manifest_and_one_that_takes_no_oci_manifest_a_404(
    registry: str,
) -> None:
    index = httpx.get(f"{registry}/v2/{SCAN}/manifests/1.14.0", headers={"Accept": INDEX}).json()
    amd64 = next(m["digest"] for m in index["manifests"] if m["platform"]["architecture"] == "amd64")
    answer = httpx.get(f"{registry}/v2/{SCAN}/manifests/1.14.0", headers={"Accept": MANIFEST})
    assert (answer.headers["Content-Type"], answer.headers["Docker-Content-Digest"]) == (MANIFEST, amd64)
    docker_only = httpx.get(f"{registry}/v2/{SCAN}/manifests/1.14.0", headers={"Accept": DOCKER_MANIFEST})
    assert docker_only.status_code == 404
    assert docker_only.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize(
    ("method", "path", "status", "code"),
    [
        ("GET", f"{SCAN}/manifests/9.9.9", 404, "MANIFEST_UNKNOWN"),
        ("GET", f"{SCAN}/manifests/sha256:{'0' * 64}", 404, "MANIFEST_UNKNOWN"),
        ("GET", "edgefleet/nothing/manifests/1.0", 404, "NAME_UNKNOWN"),
        ("GET", f"{SCAN}/blobs/sha256:{'0' * 64}", 404, "BLOB_UNKNOWN"),
        ("GET", f"{SCAN}/manifests/sha256:xyz", 400, "DIGEST_INVALID"),
        ("GET", "Edgefleet/Scan/manifests/1.0", 400, "NAME_INVALID"),
        ("PUT", f"{SCAN}/manifests/2.0.0", 405, "UNSUPPORTED"),
    ],
)
def test_errors_carry_the_specs_codes(registry: str, method: str, path: str, status: int, code: str) -> None:
    answer = httpx.request(method, f"{registry}/v2/{path}", headers={"Accept": INDEX})
    assert answer.status_code == status
    error = answer.json()["errors"][0]
    assert error["code"] == code
    assert error["message"]


def test_a_head_for_an_unknown_tag_is_a_404_without_a_digest(registry: str) -> None:
    answer = httpx.head(f"{registry}/v2/{SCAN}/manifests/9.9.9", headers={"Accept": INDEX})
    assert answer.status_code == 404
    assert "Docker-Content-Digest" not in answer.headers


def test_the_hosts_directory_points_each_registry_host_at_its_server(tmp_path: Path, registry: str) -> None:
    directory = write_hosts_dir(tmp_path / "registries", {HOST: registry})
    text = (directory / HOST / "hosts.toml").read_text()
    assert f'[host."{registry}"]' in text
    assert 'capabilities = ["pull", "resolve"]' in text


def test_a_pull_of_an_image_it_lacks_fails_as_containerd_says(content: RegistryContent) -> None:
    assert content.pull_error(f"{HOST}/{SCAN}:1.14.0") is None
    missing = f"{HOST}/{SCAN}:9.9.9"
    assert content.pull_error(missing) == (
        f'rpc error: code = NotFound desc = failed to pull and unpack image "{missing}": failed to resolve '
        f'reference "{missing}": {missing}: not found'
    )
    # A registry it does not serve: nothing is known, the pull is not its to refuse.
    assert content.pull_error("docker.io/library/nginx:1.27") is None


SKOPEO = shutil.which("skopeo")


@pytest.mark.skipif(SKOPEO is None, reason="skopeo is not installed (apt-get install skopeo)")
def test_skopeo_resolves_inspects_and_copies_its_images(
    registry: str, content: RegistryContent, tmp_path: Path
) -> None:
    assert SKOPEO is not None
    where = registry.removeprefix("http://")
    image = f"docker://{where}/{SCAN}:1.14.0"

    def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SKOPEO, "--tmpdir", str(tmp_path), *args], capture_output=True, text=True, timeout=60, check=False
        )

    digest = skopeo("inspect", "--tls-verify=false", "--format", "{{.Digest}}", image)
    assert digest.returncode == 0, digest.stderr
    assert digest.stdout.strip() == content.digest(f"{HOST}/{SCAN}:1.14.0")
    arm = skopeo("inspect", "--tls-verify=false", "--override-arch", "arm64", image)
    assert arm.returncode == 0, arm.stderr
    assert json.loads(arm.stdout)["Architecture"] == "arm64"
    copied = skopeo("copy", "--src-tls-verify=false", "--all", image, f"oci:{tmp_path / 'oci'}:1.14.0")
    assert copied.returncode == 0, copied.stderr
    missing = skopeo("inspect", "--tls-verify=false", f"docker://{where}/{SCAN}:9.9.9")
    assert missing.returncode != 0
    assert "manifest unknown" in missing.stderr

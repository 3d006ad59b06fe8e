"""A simulated OCI registry: the part of the distribution API (github.com/opencontainers/distribution-spec) that a
client uses to resolve a tag to a digest and pull an image, serving every image the fleet can be told to run.

``simulator.running`` builds ``RegistryContent`` from the images of the release files (``releases/*.yaml``) and of
the apps the simulated clusters start with (``simulator.cluster.releases``), serves one ``SimulatedRegistry`` per
registry host they name on a free port of 127.0.0.1 (``serve_registry``), and writes a containerd-style hosts
directory (``write_hosts_dir``: ``<dir>/<host>/hosts.toml``) that points each host at it, for the controller to
follow (``EDGEFLEET_REGISTRY_CONFIG``, docs/simulated-clusters.md). The simulated kubelets ask ``RegistryContent``
whether an image they pull exists (``pull_error``).

Each tag is an OCI image index with a linux/amd64 and a linux/arm64 manifest (transfer-center servers and
Jetson-class boxes), each with a config and one small gzipped tar layer; every byte follows from the image's name
and tag, so digests are the same in every run and every process. Served (every path under ``/v2/``):

- ``GET /v2/``: 200 ``{}`` with ``Docker-Distribution-API-Version: registry/2.0``;
- ``HEAD``/``GET /v2/<name>/manifests/<tag or digest>``: the manifest's bytes, ``Content-Type`` its media type,
  ``Docker-Content-Digest`` the sha256 of those bytes. A client whose ``Accept`` names no index type gets the
  linux/amd64 manifest for a tag (as the distribution registry does for old clients); one that accepts no OCI
  manifest gets 404 ``MANIFEST_UNKNOWN`` saying so;
- ``HEAD``/``GET /v2/<name>/blobs/<digest>``: configs and layers;
- ``GET /v2/<name>/tags/list``.

Errors are the spec's body ``{"errors": [{"code", "message", "detail"}]}``: ``NAME_UNKNOWN`` (no such
repository), ``MANIFEST_UNKNOWN`` (no such tag or manifest), ``BLOB_UNKNOWN``, ``NAME_INVALID``,
``DIGEST_INVALID``, and ``UNSUPPORTED`` (405) for a push: the registry is read-only.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import io
import json
import logging
import re
import tarfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import yaml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from edgefleet.releases import ImageRef, parse_image, registry_of, release_files
from simulator.listening import serving
from simulator.threads import LoopThread

log = logging.getLogger(__name__)

INDEX: Final = "application/vnd.oci.image.index.v1+json"
MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
CONFIG: Final = "application/vnd.oci.image.config.v1+json"
LAYER: Final = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
API_VERSION_HEADER: Final = "Docker-Distribution-API-Version"
DIGEST_HEADER: Final = "Docker-Content-Digest"
# Transfer-center servers are amd64; Jetson-class edge boxes arm64.
PLATFORMS: Final = (("amd64", None), ("arm64", "v8"))
# The distribution spec's repository name and reference grammar.
_NAME_RE: Final = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*(?:/[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*)*$")
_TAG_RE: Final = re.compile(r"^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$")
_DIGEST_RE: Final = re.compile(r"^sha256:[0-9a-f]{64}$")


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def _json(value: Any) -> bytes:
    # Canonical enough to be the same bytes every run: sorted keys, no spaces.
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _layer(repository: str, tag: str, architecture: str) -> bytes:
    """A gzipped tar holding one file that names the image: the same bytes every run (no times, no owner)."""
    payload = f"{repository}:{tag} linux/{architecture}\n".encode()
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo("etc/edgefleet-image")
        info.size, info.mtime, info.mode = len(payload), 0, 0o644
        tar.addfile(info, io.BytesIO(payload))
    return gzip.compress(raw.getvalue(), mtime=0)


@dataclass(slots=True)
class Repository:
    tags: dict[str, str] = field(default_factory=dict)  # tag -> the index's digest
    manifests: dict[str, tuple[str, bytes]] = field(default_factory=dict)  # digest -> (media type, bytes)
    blobs: dict[str, bytes] = field(default_factory=dict)
    # The index digest -> the linux/amd64 manifest's digest, for clients that take no index.
    amd64: dict[str, str] = field(default_factory=dict)


class RegistryContent:
    """The images of one or more registry hosts, by host and repository. Built once; read-only afterwards."""

    def __init__(self, images: Iterable[str | ImageRef] = ()) -> None:
        self.hosts: dict[str, dict[str, Repository]] = {}
        for image in images:
            self.add(parse_image(image) if isinstance(image, str) else image)

    def add(self, ref: ImageRef) -> str | None:
        """Add the image ``ref`` names by its tag (one given by digest alone adds nothing); its index's digest."""
        if ref.tag is None:
            return None
        host, path = registry_of(ref)
        repository = self.hosts.setdefault(host, {}).setdefault(path, Repository())
        if ref.tag in repository.tags:
            return repository.tags[ref.tag]
        descriptors = []
        for architecture, variant in PLATFORMS:
            layer = _layer(path, ref.tag, architecture)
            diff_id = digest_of(gzip.decompress(layer))
            platform = {"architecture": architecture, "os": "linux", **({"variant": variant} if variant else {})}
            config = _json({**platform, "config": {"Labels": {"org.opencontainers.image.version": ref.tag}},
                            "rootfs": {"type": "layers", "diff_ids": [diff_id]}})  # fmt: skip
            manifest = _json(
                {
                    "schemaVersion": 2,
                    "mediaType": MANIFEST,
                    "config": {"mediaType": CONFIG, "digest": digest_of(config), "size": len(config)},
                    "layers": [{"mediaType": LAYER, "digest": digest_of(layer), "size": len(layer)}],
                }
            )
            repository.blobs[digest_of(config)] = config
            repository.blobs[digest_of(layer)] = layer
            repository.manifests[digest_of(manifest)] = (MANIFEST, manifest)
            descriptors.append(
                {"mediaType": MANIFEST, "digest": digest_of(manifest), "size": len(manifest), "platform": platform}
            )
        index = _json({"schemaVersion": 2, "mediaType": INDEX, "manifests": descriptors})
        repository.manifests[digest_of(index)] = (INDEX, index)
        repository.amd64[digest_of(index)] = str(descriptors[0]["digest"])
        repository.tags[ref.tag] = digest_of(index)
        return digest_of(index)

    def digest(self, image: str) -> str | None:
        """The digest ``image`` resolves to (its tag's index), or its own digest when the registry has it; None when
        the registry has no such image."""
        ref = parse_image(image)
        host, path = registry_of(ref)
        repository = self.hosts.get(host, {}).get(path)
        if repository is None:
            return None
        if ref.digest is not None:
            return ref.digest if ref.digest in repository.manifests else None
        return repository.tags.get(ref.tag or "")

    def pull_error(self, image: str) -> str | None:
        """What the container runtime says when it cannot pull ``image`` from this content (containerd's words; the
        kubelet puts ``Failed to pull image "<image>": `` before them in ``ErrImagePull``); None when it can, or when
        the image's registry is none of these hosts (nothing is known of it)."""
        try:
            ref = parse_image(image)
        except ValueError:
            return "invalid reference format"
        host, _ = registry_of(ref)
        if host not in self.hosts or self.digest(image) is not None:
            return None
        return (
            f'rpc error: code = NotFound desc = failed to pull and unpack image "{image}": failed to resolve '
            f'reference "{image}": {image}: not found'
        )


def release_images(directory: Path) -> list[str]:
    """Every image reference the release files of ``directory`` name (``spec.images``), read leniently: a file that
    is no release is skipped (``edgefleet releases validate`` reports it), so the simulator starts regardless."""
    images: list[str] = []
    if not directory.is_dir():
        return images
    for path in release_files([directory]):
        try:
            document = yaml.safe_load(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        spec = document.get("spec") if isinstance(document, dict) else None
        found = spec.get("images") if isinstance(spec, dict) else None
        if isinstance(found, dict):
            images += [str(image) for image in found.values() if isinstance(image, str)]
    return images


# --- serving -----------------------------------------------------------------------------------------------------


def _error(status: int, code: str, message: str, detail: Any = None) -> Response:
    body = {"errors": [{"code": code, "message": message, **({"detail": detail} if detail is not None else {})}]}
    return Response(_json(body), status, media_type="application/json", headers={API_VERSION_HEADER: "registry/2.0"})


def _accepts(request: Request) -> set[str]:
    """The media types the client's ``Accept`` headers name (repeated headers and comma lists alike)."""
    types: set[str] = set()
    for value in request.headers.getlist("accept"):
        types |= {part.split(";", 1)[0].strip() for part in value.split(",") if part.strip()}
    return types


class SimulatedRegistry:
    """One registry host's API as a Starlette app, over the host's repositories of ``content``."""

    def __init__(self, content: RegistryContent, host: str) -> None:
        self.content = content
        self.host = host
        self.app = Starlette(
            routes=[Route("/v2/{path:path}", self._handle, methods=["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"])]
        )

    @property
    def repositories(self) -> Mapping[str, Repository]:
        return self.content.hosts.get(self.host, {})

    async def _handle(self, request: Request) -> Response:
        path = str(request.path_params["path"])
        if request.method not in ("GET", "HEAD"):
            return _error(405, "UNSUPPORTED", "the simulated registry is read-only: it serves the fleet's images")
        if path == "":
            return Response(b"{}", 200, media_type="application/json", headers={API_VERSION_HEADER: "registry/2.0"})
        match = re.match(r"^(?P<name>.+)/(?P<kind>manifests|blobs|tags)/(?P<reference>[^/]+)$", path)
        if match is None:
            return _error(404, "NOT_FOUND", f"no such endpoint: /v2/{path}")
        name, kind, reference = match.group("name", "kind", "reference")
        if not _NAME_RE.match(name):
            return _error(400, "NAME_INVALID", "invalid repository name", {"name": name})
        repository = self.repositories.get(name)
        if repository is None:
            return _error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        if kind == "tags":
            if reference != "list":
                return _error(404, "NOT_FOUND", f"no such endpoint: /v2/{path}")
            return Response(_json({"name": name, "tags": sorted(repository.tags)}), media_type="application/json")
        if kind == "blobs":
            return self._blob(request, repository, reference)
        return self._manifest(request, repository, name, reference)

    def _blob(self, request: Request, repository: Repository, digest: str) -> Response:
        if not _DIGEST_RE.match(digest):
            return _error(400, "DIGEST_INVALID", "provided digest did not match uploaded content", {"digest": digest})
        blob = repository.blobs.get(digest)
        if blob is None:
            return _error(404, "BLOB_UNKNOWN", "blob unknown to registry", {"digest": digest})
        return _content(request, "application/octet-stream", blob, digest)

    def _manifest(self, request: Request, repository: Repository, name: str, reference: str) -> Response:
        by_digest = reference.startswith("sha256:")
        if by_digest and not _DIGEST_RE.match(reference):
            return _error(400, "DIGEST_INVALID", "invalid digest", {"digest": reference})
        if not by_digest and not _TAG_RE.match(reference):
            return _error(400, "TAG_INVALID", "manifest tag did not match URI", {"tag": reference})
        digest = reference if by_digest else repository.tags.get(reference)
        if digest is None or digest not in repository.manifests:
            return _error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference})
        accepts = _accepts(request)
        media_type, data = repository.manifests[digest]
        if accepts and "*/*" not in accepts:
            if media_type == INDEX and not accepts & {INDEX, DOCKER_LIST}:
                if by_digest:
                    return _error(
                        404,
                        "MANIFEST_UNKNOWN",
                        "OCI index found, but accept header does not support OCI indexes",
                        {"name": name, "reference": reference},
                    )
                digest = repository.amd64[digest]
                media_type, data = repository.manifests[digest]
            if media_type == MANIFEST and MANIFEST not in accepts:
                return _error(
                    404,
                    "MANIFEST_UNKNOWN",
                    "OCI manifest found, but accept header does not support OCI manifests",
                    {"name": name, "reference": reference},
                )
        return _content(request, media_type, data, digest)


def _content(request: Request, media_type: str, data: bytes, digest: str) -> Response:
    headers = {API_VERSION_HEADER: "registry/2.0", DIGEST_HEADER: digest, "Content-Length": str(len(data))}
    headers["ETag"] = f'"{digest}"'
    # HEAD answers the same headers as GET, the length included, without the body.
    return Response(b"" if request.method == "HEAD" else data, 200, media_type=media_type, headers=headers)


# --- the hosts directory ------------------------------------------------------------------------------------------


def hosts_toml(host: str, url: str) -> str:
    """A containerd ``hosts.toml`` that sends the pulls and resolves of ``host`` to ``url`` (plain http)."""
    return (
        "# Written by the edgefleet simulator: its simulated registry serves this host while it runs.\n"
        f'server = "https://{host}"\n\n'
        f'[host."{url}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )


def write_hosts_dir(directory: Path, servers: Mapping[str, str]) -> Path:
    """Write ``<directory>/<host>/hosts.toml`` for each registry host -> URL of ``servers`` (containerd's
    ``config_path`` layout) and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    for host, url in servers.items():
        (directory / host).mkdir(exist_ok=True)
        (directory / host / "hosts.toml").write_text(hosts_toml(host, url), encoding="utf-8")
    return directory


def remove_hosts_dir(directory: Path, hosts: Iterable[str]) -> None:
    """Remove what ``write_hosts_dir`` wrote (only that: the directory may hold an operator's own hosts)."""
    for host in hosts:
        (directory / host / "hosts.toml").unlink(missing_ok=True)
        with contextlib.suppress(OSError):
            (directory / host).rmdir()
    with contextlib.suppress(OSError):
        directory.rmdir()


async def serve_registry(
    registry: SimulatedRegistry,
    *,
    stop: asyncio.Event,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``registry`` on ``host:port`` (0: a free port) until ``stop`` is set; ``ready(url)`` once listening."""
    async with serving(registry.app, host=host, port=port, name=f"registry-{registry.host}") as url:
        log.info("Started simulated registry", extra={"registry": registry.host, "url": url})
        if ready is not None:
            ready(url)
        await stop.wait()


class BackgroundRegistry(LoopThread):
    """One simulated registry host served from a thread of its own (tests and scripts); ``stop()`` ends it."""

    def __init__(self, content: RegistryContent, host: str) -> None:
        super().__init__(thread_name=f"registry-{host}", what=f"the simulated registry {host!r}")
        self.registry = SimulatedRegistry(content, host)

    async def serve(self, stop: asyncio.Event) -> None:
        await serve_registry(self.registry, stop=stop, ready=self.served_at)

    def start(self, *, timeout_s: float = 30.0) -> BackgroundRegistry:
        self.start_serving(timeout_s)
        return self

    def stop(self, *, timeout_s: float = 15.0) -> None:
        self.stop_thread(timeout_s)

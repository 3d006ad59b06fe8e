"""Container registries: where the controller asks what digest an image's tag stands for, so that a rollout pins
every image by digest when it starts (issue 15) and each site it reaches, now or later, runs the same bytes.

Called by ``rollouts.service.RolloutService`` (start, and the plan's preview) through ``pin_images``. Which
registry serves a host comes from a containerd-style hosts directory (``EDGEFLEET_REGISTRY_CONFIG``, the same
layout as containerd's ``config_path``: ``<dir>/<host>/hosts.toml``, or ``<dir>/_default/hosts.toml`` for any
other host), read again at every call, so a directory rewritten by the simulator's next run is followed::

    server = "https://registry.local:5000"
    [host."http://127.0.0.1:5001"]
      capabilities = ["pull", "resolve"]
      skip_verify = false          # or ca = "/path/to/ca.pem"

The ``[host]`` mirrors with the ``resolve`` capability are asked in order, then ``server``. A host with no hosts
file (and no ``_default``), or no directory configured at all, is not asked: its images stay as the release gives
them, with a warning (docs/releases.md says why). Only anonymous pulls are supported: a registry that asks for
credentials (401) refuses the start.

Resolution is the distribution spec's: ``HEAD /v2/<repository>/manifests/<tag or digest>`` with every manifest
and index media type in ``Accept``, the digest from ``Docker-Content-Digest`` (a ``GET`` whose body is hashed
when the registry sends no such header). httpx's errors are translated here, once::

    EdgefleetError
    └── RegistryError                 an image could not be pinned; says which image, which registry, what it said
        ├── RegistryConfigError       the hosts directory is unusable (file, reason): fix the file
        ├── ImageUnknown              the registry has no such image (404): fix the release or push the image
        └── RegistryUnavailable       the registry could not be asked (unreachable, timed out, 5xx, 401/403)

Transient failures (no connection, a timeout, 429, 5xx) are retried ``ATTEMPTS`` times with a short back-off;
a definite answer (200, 404, 401, 400) is not.
"""

from __future__ import annotations

import hashlib
import logging
import time
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import httpx

from edgefleet.errors import EdgefleetError
from edgefleet.releases import ImageRef, Release, image_field, parse_image, registry_of

log = logging.getLogger(__name__)

HOSTS_FILE: Final = "hosts.toml"
DEFAULT_HOST: Final = "_default"
# Every manifest type a container runtime takes: a tag pinned to an index stays multi-platform.
ACCEPT: Final = ", ".join(
    (
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
    )
)
DIGEST_HEADER: Final = "Docker-Content-Digest"
# A registry answers a manifest HEAD in milliseconds; a start waits at most ATTEMPTS x TIMEOUT per image.
TIMEOUT_S: Final = 5.0
CONNECT_TIMEOUT_S: Final = 2.0
ATTEMPTS: Final = 3
BACKOFF_S: Final = 0.5
_TRANSIENT_STATUS: Final = frozenset({429, 500, 502, 503, 504})
_KNOWN_KEYS: Final = frozenset({"server", "capabilities", "skip_verify", "ca", "host"})


class RegistryError(EdgefleetError):
    """An image could not be pinned."""


class RegistryConfigError(RegistryError):
    """The registry hosts directory cannot be used."""


class ImageUnknown(RegistryError):
    """The registry answered that it has no such image: a human must fix the release or push the image."""


class RegistryUnavailable(RegistryError):
    """The registry could not be asked; the same request may work later."""


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One URL a registry host is asked at, and how its TLS certificate is checked (a CA file, or not at all)."""

    url: str
    verify: bool | str = True


@dataclass(frozen=True, slots=True)
class RegistryHosts:
    """The hosts directory as read: each host's endpoints, in the order they are asked."""

    source: Path
    hosts: Mapping[str, tuple[Endpoint, ...]]

    def endpoints(self, host: str) -> tuple[Endpoint, ...] | None:
        """Where ``host`` is asked; None when the directory says nothing of it (nor has a ``_default``)."""
        found = self.hosts.get(host)
        if found is None and DEFAULT_HOST in self.hosts:
            # containerd's _default: its [host] mirrors serve every host; its server stands for the host itself.
            return self.hosts[DEFAULT_HOST]
        return found


def load_registry_hosts(directory: Path) -> RegistryHosts:
    """Read ``<directory>/<host>/hosts.toml`` for each host; raises RegistryConfigError naming the file and what is
    wrong (an unknown key, a URL that is no http(s) URL, TOML that does not parse)."""
    if not directory.is_dir():
        raise RegistryConfigError(
            f"the registry hosts directory {directory} does not exist; write <dir>/<host>/{HOSTS_FILE} files there, "
            "or point EDGEFLEET_REGISTRY_CONFIG at the directory the simulator logs"
        )
    hosts: dict[str, tuple[Endpoint, ...]] = {}
    for entry in sorted(directory.iterdir()):
        file = entry / HOSTS_FILE
        if entry.is_dir() and file.is_file():
            hosts[entry.name] = _endpoints(file, entry.name)
    return RegistryHosts(directory, hosts)


def _endpoints(file: Path, host: str) -> tuple[Endpoint, ...]:
    try:
        data = tomllib.loads(file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RegistryConfigError(f"{file}: cannot read it: {exc}") from None
    except tomllib.TOMLDecodeError as exc:
        raise RegistryConfigError(f"{file}: is no TOML: {exc}") from None
    _check_keys(file, data, "")
    endpoints: list[Endpoint] = []
    mirrors = data.get("host", {})
    if not isinstance(mirrors, dict):
        raise RegistryConfigError(f'{file}: host: expected tables such as [host."http://127.0.0.1:5001"]')
    for url, table in mirrors.items():
        if not isinstance(table, dict):
            raise RegistryConfigError(f'{file}: host."{url}": expected a table')
        _check_keys(file, table, f'host."{url}".')
        capabilities = table.get("capabilities", ["pull", "resolve", "push"])
        if not isinstance(capabilities, list):
            raise RegistryConfigError(f'{file}: host."{url}".capabilities: expected a list such as ["pull", "resolve"]')
        if "resolve" in capabilities:
            endpoints.append(Endpoint(_url(file, f'host."{url}"', url), _verify(file, f'host."{url}".', table)))
    server = data.get("server")
    if server is not None:
        endpoints.append(Endpoint(_url(file, "server", server), _verify(file, "", data)))
    elif host != DEFAULT_HOST:
        endpoints.append(Endpoint(f"https://{host}", _verify(file, "", data)))
    return tuple(endpoints)


def _check_keys(file: Path, table: Mapping[str, Any], prefix: str) -> None:
    known = _KNOWN_KEYS - {"host", "server"} if prefix else _KNOWN_KEYS
    unknown = sorted(set(table) - known)
    if unknown:
        raise RegistryConfigError(
            f"{file}: {prefix}{unknown[0]}: not supported by edgefleet (it reads server, [host] capabilities, ca and "
            "skip_verify; registries are pulled from anonymously); remove it"
        )


def _url(file: Path, field: str, value: object) -> str:
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise RegistryConfigError(f"{file}: {field}: {value!r} is no http(s) URL, e.g. https://registry.local:5000")
    return value.rstrip("/")


def _verify(file: Path, prefix: str, table: Mapping[str, Any]) -> bool | str:
    ca, skip = table.get("ca"), table.get("skip_verify", False)
    if not isinstance(skip, bool):
        raise RegistryConfigError(f"{file}: {prefix}skip_verify: expected true or false")
    if ca is not None and not isinstance(ca, str):
        raise RegistryConfigError(f"{file}: {prefix}ca: expected the path of one CA file")
    return False if skip else (ca or True)


# --- asking ------------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    digest: str
    # Where the answer came from, for the audit and the messages.
    url: str


class RegistryClient:
    """Asks registries over HTTP (httpx) what digest a tag or digest resolves to. ``transport`` and ``sleep`` are
    for tests; ``sleep`` paces the retries."""

    def __init__(
        self,
        *,
        timeout_s: float = TIMEOUT_S,
        attempts: int = ATTEMPTS,
        backoff_s: float = BACKOFF_S,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.timeout = httpx.Timeout(timeout_s, connect=min(CONNECT_TIMEOUT_S, timeout_s))
        self.attempts = attempts
        self.backoff_s = backoff_s
        self.transport = transport
        self.sleep = sleep

    def resolve(self, endpoints: tuple[Endpoint, ...], repository: str, reference: str) -> Resolved:
        """The digest of ``repository``'s manifest ``reference`` (a tag or a digest), from the first endpoint that
        answers; raises ImageUnknown (the registry has none) or RegistryUnavailable (no endpoint answered)."""
        failures: list[str] = []
        for endpoint in endpoints:
            try:
                return self._ask(endpoint, repository, reference)
            except RegistryUnavailable as exc:
                failures.append(str(exc))
        raise RegistryUnavailable("; ".join(failures) or "no endpoint to ask")

    def _ask(self, endpoint: Endpoint, repository: str, reference: str) -> Resolved:
        url = f"{endpoint.url}/v2/{repository}/manifests/{reference}"
        with httpx.Client(timeout=self.timeout, verify=endpoint.verify, transport=self.transport) as client:
            response = self._send(client, "HEAD", url)
            digest = response.headers.get(DIGEST_HEADER)
            if response.status_code != 200 or not digest:
                # A HEAD's answer has no body: the GET's says why (the spec's error code and message). And not every
                # registry sends the digest on HEAD: it is the sha256 of the manifest's bytes.
                response = self._send(client, "GET", url)
                if response.status_code == 200:
                    digest = "sha256:" + hashlib.sha256(response.content).hexdigest()
        if response.status_code == 200:
            if reference.startswith("sha256:") and digest != reference:
                raise RegistryUnavailable(f"{url} answered digest {digest} for {reference}: the registry is broken")
            return Resolved(str(digest), endpoint.url)
        said = _said(response)
        if response.status_code == 404:
            raise ImageUnknown(f"{endpoint.url} answered 404{said}")
        if response.status_code in (401, 403):
            raise RegistryUnavailable(
                f"{endpoint.url} answered {response.status_code}{said}: it wants credentials, and edgefleet pulls "
                "anonymously; give the controller a mirror that serves the images without a login"
            )
        raise RegistryUnavailable(f"{endpoint.url} answered {response.status_code}{said}")

    def _send(self, client: httpx.Client, method: str, url: str) -> httpx.Response:
        """One request, retried on a transient failure; the last answer, or RegistryUnavailable."""
        problem = ""
        for attempt in range(self.attempts):
            if attempt:
                self.sleep(self.backoff_s * 2 ** (attempt - 1))
            try:
                response = client.request(method, url, headers={"Accept": ACCEPT})
            except httpx.TransportError as exc:
                problem = f"cannot reach {url}: {type(exc).__name__}: {exc}"
                continue
            if response.status_code not in _TRANSIENT_STATUS:
                return response
            problem = f"{url} answered {response.status_code}{_said(response)}"
        raise RegistryUnavailable(f"{problem} (asked {self.attempts} times)")


def _said(response: httpx.Response) -> str:
    """The registry's own words: the first error of the distribution spec's body (a HEAD has none)."""
    try:
        errors = response.json().get("errors") or []
        first = errors[0]
        return f" {first.get('code')}: {first.get('message')}"
    except (ValueError, AttributeError, IndexError, TypeError):
        return ""


# --- pinning -----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ImagePin:
    """One container's image as the rollout will apply it: ``pinned`` (the image with its digest) or, where no
    registry could be asked, the image as given with ``warning`` (the reason alone: the caller names the field);
    ``problem`` (naming the field) when it refuses the start."""

    container: str
    image: str
    registry: str
    pinned: str | None = None
    warning: str | None = None
    problem: str | None = None
    # With a problem: True when the registry said it has no such image, False when it could not be asked.
    unknown: bool = False


def pin_images(release: Release, hosts: RegistryHosts | None, client: RegistryClient) -> list[ImagePin]:
    """Each image of ``release`` resolved through the registry its host is configured with: a tag becomes
    ``name:tag@sha256:...``, a digest is checked to exist. Nothing is raised for an image: each pin says what
    became of it (``problem``: the start must be refused; ``warning``: it goes out as given)."""
    pins: list[ImagePin] = []
    for container, image in sorted(release.images.items()):
        ref = parse_image(image)
        host, repository = registry_of(ref)
        endpoints = hosts.endpoints(host) if hosts is not None else None
        if not endpoints:
            configured = f"in {hosts.source}" if hosts is not None else "(EDGEFLEET_REGISTRY_CONFIG is not set)"
            warning = (
                f"{image!r} is not checked: no registry is configured for {host} {configured}"
                if ref.digest
                else f"{image!r} is given by tag only, and no registry is configured for {host} {configured}: it "
                "stays a bare tag, and each site pulls what the tag names when the rollout reaches it"
            )
            pins.append(ImagePin(container, image, host, pinned=image if ref.digest else None, warning=warning))
            continue
        try:
            resolved = client.resolve(endpoints, repository, ref.digest or str(ref.tag))
        except ImageUnknown as exc:
            problem = (
                f"{image_field(container)}: registry {host} has no image {image}: {exc}; push the image to {host}, or fix "
                "the release's tag"
            )
            pins.append(ImagePin(container, image, host, problem=problem, unknown=True))
            continue
        except RegistryUnavailable as exc:
            problem = (
                f"{image_field(container)}: cannot ask registry {host} for {image}: {exc}; the rollout is not started: "
                f"retry once the registry answers, or fix {hosts.source if hosts else 'the registry hosts'}"
            )
            pins.append(ImagePin(container, image, host, problem=problem))
            continue
        pinned = str(ImageRef(ref.name, ref.tag, resolved.digest))
        log.info("Resolved image", extra={"image": image, "digest": resolved.digest, "registry": resolved.url})
        pins.append(ImagePin(container, image, host, pinned=pinned))
    return pins

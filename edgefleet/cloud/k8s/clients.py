"""One Kubernetes API client per cluster, built once from the kubeconfig file and the cluster's context.

``ClusterClients`` is built by whoever builds the gateway (the controller, tests) with the inventory's clusters
and the settings' kubeconfig source; ``KubernetesGateway`` asks it for a cluster's client on every call. A client
is built on first use, so a cluster whose context is missing fails its own calls (a PermanentClusterError naming
the context), not the controller's start. ``"in-cluster"`` (a controller in a pod, no file named) uses the pod's
service account for every cluster: that setup reaches the one cluster the controller runs in.

The kubeconfig file is watched, not read once: when it changes (its modification time, size or inode; it appears
or disappears), the next call drops every client and builds them again from the file as it is now. So a kubeconfig
written after the controller started (the demo's simulator writes its own at start, with new ports each time), a
rotated token or an added context takes effect without a restart.

The client's own retries are off (``retries = 0``): a failed call fails at once as a ClusterError, and the
caller's retry policy (the error's class, ``retry_after_s``) decides when to try again, not urllib3's hidden one.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Final

from kubernetes import client, config

from edgefleet.cloud.k8s.errors import PermanentClusterError, translating
from edgefleet.cloud.settings import KubeconfigSource
from edgefleet.ids import ClusterId

# Connecting to a reachable API server takes milliseconds; 5 s covers a slow VPN to a transfer center.
CONNECT_TIMEOUT_S: Final = 5.0
# A list of every pod of a large cluster is the slowest ordinary call; beyond 30 s the server is in trouble.
READ_TIMEOUT_S: Final = 30.0


# The client's loaders, untyped there.
_new_client_from_config: Callable[..., client.ApiClient] = config.new_client_from_config
_load_incluster_config: Callable[..., None] = config.load_incluster_config
_list_contexts: Callable[..., tuple[list[dict[str, object]], object]] = config.list_kube_config_contexts

log = logging.getLogger(__name__)

# What identifies one version of the kubeconfig file: modification time (ns), size, inode; None: no file.
FileStamp = tuple[int, int, int] | None


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Every call's ``_request_timeout``: (connect, read) seconds."""

    connect_s: float = CONNECT_TIMEOUT_S
    read_s: float = READ_TIMEOUT_S

    def request(self, *, read_s: float | None = None) -> tuple[float, float]:
        return (self.connect_s, self.read_s if read_s is None else read_s)


class ClusterClients:
    """The API clients of the inventory's clusters, by cluster id; ``contexts`` maps each to its kubeconfig
    context. Thread-safe: the controller's scheduler threads share it."""

    def __init__(self, contexts: Mapping[ClusterId, str], source: KubeconfigSource) -> None:
        self._contexts = dict(contexts)
        self._source = source
        self._clients: dict[ClusterId, client.ApiClient] = {}
        self._lock = threading.Lock()
        self._stamp: FileStamp = self._read_stamp()

    @property
    def clusters(self) -> list[ClusterId]:
        return sorted(self._contexts)

    def context(self, cluster: ClusterId) -> str:
        return self._contexts[cluster]

    def api_client(self, cluster: ClusterId) -> client.ApiClient:
        """The cluster's client, built on first use; a cluster not in the inventory is a PermanentClusterError."""
        with self._lock:
            self._follow_file()
            built = self._clients.get(cluster)
            if built is None:
                built = self._build(cluster)
                self._clients[cluster] = built
            return built

    def close(self) -> None:
        with self._lock:
            for built in self._clients.values():
                close: Callable[[], None] = built.close
                close()
            self._clients.clear()

    def _read_stamp(self) -> FileStamp:
        if self._source == "in-cluster":
            return None
        try:
            stat = self._source.stat()
        except OSError:
            return None
        return (stat.st_mtime_ns, stat.st_size, stat.st_ino)

    def _follow_file(self) -> None:
        """Drop the clients built from an older version of the kubeconfig file (under the lock)."""
        stamp = self._read_stamp()
        if stamp == self._stamp:
            return
        self._stamp = stamp
        if self._clients:
            for built in self._clients.values():
                close: Callable[[], None] = built.close
                close()
            self._clients.clear()
        log.info(
            "Noticed the kubeconfig changed; clusters are reached by the new one"
            if stamp
            else "Noticed the kubeconfig is gone",
            extra={"kubeconfig": str(self._source)},
        )

    def _build(self, cluster: ClusterId) -> client.ApiClient:
        if cluster not in self._contexts:
            known = ", ".join(sorted(self._contexts)) or "none"
            raise PermanentClusterError(
                cluster,
                "connect",
                f"no such cluster in the inventory (known: {known}); add a kind: Cluster manifest to sites/",
                status=None,
                reason="UnknownCluster",
            )
        configuration = client.Configuration()
        configuration.retries = 0
        context = self._contexts[cluster]
        with translating(cluster, f"load context {context!r} from {self._source}"):
            if self._source == "in-cluster":
                _load_incluster_config(client_configuration=configuration)
                return client.ApiClient(configuration=configuration)
            if not self._source.is_file():
                raise PermanentClusterError(
                    cluster,
                    "connect",
                    f"the kubeconfig {self._source} does not exist; name one with EDGEFLEET_KUBECONFIG or --kubeconfig",
                    status=None,
                    reason="BadKubeconfig",
                )
            contexts, _ = _list_contexts(config_file=str(self._source))
            names = sorted(str(c.get("name")) for c in contexts if isinstance(c, dict))
            if context not in names:
                raise PermanentClusterError(
                    cluster,
                    "connect",
                    f"context {context!r} not in kubeconfig {self._source}; add it or fix the Cluster manifest's "
                    f"context (the file has: {', '.join(names) or 'none'})",
                    status=None,
                    reason="BadKubeconfig",
                )
            return _new_client_from_config(
                config_file=str(self._source),
                context=context,
                persist_config=False,
                client_configuration=configuration,
            )

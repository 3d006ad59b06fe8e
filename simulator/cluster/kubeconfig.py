"""A kubeconfig for the simulated clusters: one cluster, user and context per simulated cluster, plain http on
127.0.0.1 (the simulator has no TLS and asks for no credentials). ``kubectl --kubeconfig``, ``KUBECONFIG`` and the
official client's ``load_kube_config`` read it. Called by whoever starts the clusters.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

USER: str = "edgefleet-sim"


def kubeconfig(servers: Mapping[str, str], *, current: str | None = None) -> dict[str, Any]:
    """``servers``: cluster name -> its URL (``http://127.0.0.1:PORT``). The first is current unless told."""
    if not servers:
        raise ValueError("a kubeconfig needs at least one cluster")
    names = list(servers)
    if current is not None and current not in servers:
        raise ValueError(f"current context {current!r} is none of the clusters: {', '.join(names)}")
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": name, "cluster": {"server": servers[name]}} for name in names],
        "users": [{"name": USER, "user": {}}],
        "contexts": [
            {"name": name, "context": {"cluster": name, "user": USER, "namespace": "default"}} for name in names
        ],
        "current-context": current or names[0],
    }


def write_kubeconfig(path: Path, servers: Mapping[str, str], *, current: str | None = None) -> Path:
    """Write the kubeconfig (mode 0600, as kubectl writes its own) and return its path."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(kubeconfig(servers, current=current), sort_keys=False))
    path.chmod(0o600)
    return path

"""The Kubernetes gateway: the one place where the controller talks to its clusters (issue 14, item 2).

Only this package imports ``kubernetes`` (an import contract in pyproject.toml holds it). The rest of the
controller speaks to clusters through ``gateway.ClusterGateway`` in edgefleet's terms and sees only
``errors.ClusterError`` and plain JSON dicts (``RawObject``), never the client's models or exceptions.

- ``errors``: the error tree and the one translation of the client's and urllib3's errors.
- ``clients``: one API client per cluster, from the kubeconfig file and the cluster's context.
- ``gateway``: the operations (list, get, delete, watch, health probe) over those clients.
- ``rollout``: kubectl's rule for "rolled out" (pure, no I/O).
"""

from __future__ import annotations

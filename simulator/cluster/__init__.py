"""Simulated Kubernetes clusters: one small API server per cluster of the inventory, serving its boxes as nodes.

- ``resources``: the kinds served and their discovery documents (pure)
- ``selectors``: label and field selectors, in the API server's grammar (pure)
- ``store``: the objects, resource versions and the bounded watch history (pure)
- ``tables``: ``kubectl get``'s Table rows, with the columns real clusters print (pure)
- ``nodes``: the nodes and namespaces a cluster starts with, built from the inventory's boxes
- ``server``: the HTTP API over a store (Starlette, served by uvicorn) and a background runner for tests and demos
- ``kubeconfig``: a kubeconfig with one context per simulated cluster

Nothing here imports ``kubernetes`` or ``edgefleet.cloud``: the simulator stands in for the cluster the controller's
gateway talks to, so it must not share that gateway's code. docs/simulated-clusters.md says what is served.
"""

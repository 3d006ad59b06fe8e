"""The console's pages: ``/`` (fleet overview), ``/sites/{site}``, ``/boxes/{box}``, ``/versions``, ``/alerts``,
``/rollouts``, ``/rollouts/new`` (the plan preview and start), ``/rollouts/{rollout}``, ``/clusters`` and
``/clusters/{cluster}`` (a cluster's policy, audit and GPUs). Each answers the same
``index.html``, whose script draws the page the address names from the versioned API (``/api/v1/...``); the
assets it loads are mounted at ``/console`` by ``create_app``.

The pages go through the access check like every route (a refused caller gets the 403 body, not the console).
They hold no fleet data themselves, so they are left out of the OpenAPI, which documents the API.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends
from fastapi.responses import FileResponse

from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.api.fields import Name
from edgefleet.cloud.console.assets import static_dir

router = APIRouter(include_in_schema=False, dependencies=[Depends(require_access)])


def _page() -> FileResponse:
    # no-cache: the browser asks again each time (a 304 while it is unchanged), so a new controller's console is
    # taken at once.
    return FileResponse(static_dir() / "index.html", headers={"Cache-Control": "no-cache"})


@router.get("/")
def overview_page() -> FileResponse:
    return _page()


@router.get("/sites/{site}")
def site_page(site: Name) -> FileResponse:
    return _page()


@router.get("/boxes/{box}")
def box_page(box: Name) -> FileResponse:
    return _page()


@router.get("/versions")
def versions_page() -> FileResponse:
    return _page()


@router.get("/alerts")
def alerts_page() -> FileResponse:
    return _page()


@router.get("/rollouts")
def rollouts_page() -> FileResponse:
    return _page()


@router.get("/rollouts/{rollout}")
def rollout_page(rollout: Name) -> FileResponse:
    # /rollouts/new is the plan preview: the same page, which the script tells apart.
    return _page()


@router.get("/clusters")
def clusters_page() -> FileResponse:
    return _page()


@router.get("/clusters/{cluster}")
def cluster_page(cluster: Name) -> FileResponse:
    return _page()

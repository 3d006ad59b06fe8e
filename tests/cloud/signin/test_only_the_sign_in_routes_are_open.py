"""Every route of the app goes through ``require_access`` except the sign-in routes, which make the session, and
box enrollment, which a token of its own admits; they are named here one by one; a route added without the check is found (planted below)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.routing import APIRoute
from starlette.routing import BaseRoute

from edgefleet.cloud.api import create_app
from edgefleet.cloud.api.deps import require_access
from edgefleet.cloud.settings import Settings
from tests.cloud.api.memory import MemoryController

SIGN_IN = {
    ("GET", "/signin"),
    ("GET", "/auth/methods"),
    ("GET", "/auth/oidc/login"),
    ("GET", "/auth/oidc/callback"),
    ("POST", "/auth/local"),
    ("POST", "/auth/signout"),
}
# A box being installed has no sign-in: it presents its single-use enrollment token (routes/enrollment.py).
ENROLL = {("POST", "/api/v1/enroll")}
# Kubernetes' and load balancers' probes carry no token.
PROBES = {("GET", "/livez"), ("GET", "/readyz"), ("GET", "/healthz")}
OPEN = SIGN_IN | ENROLL | PROBES


def checked(dependant: Dependant) -> bool:
    return dependant.call is require_access or any(checked(d) for d in dependant.dependencies)


def routes(found: Sequence[BaseRoute], guarded: bool) -> Iterator[tuple[APIRoute, bool]]:
    """Every API route with whether its router already puts it through the check. FastAPI 0.16x keeps an included
    router behind a wrapper that holds the router as ``original_router``."""
    for route in found:
        if isinstance(route, APIRoute):
            yield route, guarded
        inner = getattr(route, "original_router", None)
        if isinstance(inner, APIRouter):
            router_checks = any(d.dependency is require_access for d in inner.dependencies)
            yield from routes(inner.routes, guarded or router_checks)


def open_routes(app: FastAPI) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route, guarded in routes(app.router.routes, False)
        if not guarded and not checked(route.dependant)
        for method in route.methods
    }


def test_only_the_sign_in_routes_skip_the_access_check(tmp_path: Path) -> None:
    app = create_app(Settings(), controller=MemoryController.small(tmp_path))
    assert open_routes(app) == OPEN
    # The walk reaches the checked routes too: an empty walk would make the line above hold for nothing.
    assert sum(1 for _ in routes(app.router.routes, False)) > 40


def test_a_route_added_without_the_check_is_found(tmp_path: Path) -> None:
    app = create_app(Settings(), controller=MemoryController.small(tmp_path))

    @app.get("/api/v1/forgotten")
    def forgotten() -> dict[str, str]:
        return {}

    assert open_routes(app) - OPEN == {("GET", "/api/v1/forgotten")}

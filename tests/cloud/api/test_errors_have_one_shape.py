"""Every error the API answers is ``{"error": {"code", "message"}}``; a failure inside is a logged 500 whose
body holds no traceback."""

from __future__ import annotations

import logging

import httpx
import pytest

from edgefleet.errors import UnreachableError
from tests.cloud.api.memory import MemoryController


@pytest.mark.parametrize(
    ("method", "path", "status", "code", "message"),
    [
        ("GET", "/api/v2/sites", 404, "not-found", "no route '/api/v2/sites'; the API lives under /api/v1 (see /docs)"),
        (
            "DELETE",
            "/api/v1/sites/sh-pudong",
            405,
            "method-not-allowed",
            "DELETE is not allowed on '/api/v1/sites/sh-pudong'; see /docs for what each path takes",
        ),
    ],
)
def test_unknown_routes_and_methods(
    client: httpx.Client, method: str, path: str, status: int, code: str, message: str
) -> None:
    response = client.request(method, path)

    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message}}


def test_a_failure_inside_is_a_logged_500_without_traceback(
    client: httpx.Client, memory: MemoryController, caplog: pytest.LogCaptureFixture
) -> None:
    memory.history_error = RuntimeError("history table is corrupt")

    with caplog.at_level(logging.ERROR, logger="edgefleet.cloud.api.errors"):
        response = client.get("/api/v1/boxes/sh-pudong-gpu-01")

    assert response.status_code == 500
    assert response.json() == {
        "error": {
            "code": "internal",
            "message": "the controller failed to answer this request; the controller's log has the details",
        }
    }
    assert "Traceback" not in response.text
    assert "corrupt" not in response.text
    (record,) = [r for r in caplog.records if r.name == "edgefleet.cloud.api.errors"]
    assert record.getMessage() == "Failed to answer API request"
    assert record.exc_info is not None
    assert "history table is corrupt" in str(record.exc_info[1])
    assert (record.method, record.path) == ("GET", "/api/v1/boxes/sh-pudong-gpu-01")  # type: ignore[attr-defined]


def test_a_database_that_cannot_be_read_is_a_503_saying_so(client: httpx.Client, memory: MemoryController) -> None:
    memory.history_error = UnreachableError("database", "postgresql://edgefleet@db/edgefleet", "connection refused")

    response = client.get("/api/v1/boxes/sh-pudong-gpu-01")

    assert response.status_code == 503
    assert response.json() == {
        "error": {
            "code": "unavailable",
            "message": "cannot read the history of 'sh-pudong-gpu-01' now: cannot reach the database at "
            "postgresql://edgefleet@db/edgefleet: connection refused",
        }
    }


def test_openapi_documents_every_route_with_tags(client: httpx.Client) -> None:
    spec = client.get("/openapi.json").json()

    assert {t["name"] for t in spec["tags"]} == {
        "sites",
        "boxes",
        "system",
        "alerts",
        "silences",
        "inventory",
        "clusters",
        "rollouts",
        "console",
        "enrollment",
        "audit",
    }
    routes = {(path, method): op for path, ops in spec["paths"].items() for method, op in ops.items()}
    assert set(routes) == {
        ("/api/v1/sites", "get"),
        ("/api/v1/sites/{site}", "get"),
        ("/api/v1/sites/{site}/boxes", "get"),
        ("/api/v1/boxes/{box}", "get"),
        ("/api/v1/unknown-boxes", "get"),
        ("/api/v1/clusters", "get"),
        ("/api/v1/clusters/{cluster}", "get"),
        ("/api/v1/clusters/{cluster}/audit", "get"),
        ("/api/v1/clusters/{cluster}/gpus", "get"),
        ("/api/v1/clusters/{cluster}/policy", "get"),
        ("/api/v1/clusters/{cluster}/restart", "post"),
        ("/api/v1/clusters/{cluster}/restarts/{restart_id}", "get"),
        ("/healthz", "get"),
        ("/readyz", "get"),
        ("/livez", "get"),
        ("/metrics", "get"),
        ("/api/v1/alerts", "get"),
        ("/api/v1/alerts/{alert}", "get"),
        ("/api/v1/alerts/counts", "get"),
        ("/api/v1/alerts/{alert}/ack", "post"),
        ("/api/v1/silences", "get"),
        ("/api/v1/silences", "post"),
        ("/api/v1/silences/{silence}", "delete"),
        ("/api/v1/inventory", "get"),
        ("/api/v1/inventory/reload", "post"),
        ("/api/v1/rollouts/plan", "post"),
        ("/api/v1/rollouts/{rollout_id}/override-blackout", "post"),
        ("/api/v1/rollouts", "post"),
        ("/api/v1/rollouts", "get"),
        ("/api/v1/rollouts/{rollout_id}", "get"),
        *(
            ("/api/v1/rollouts/{rollout_id}/" + c, "post")
            for c in ("pause", "resume", "promote", "abort", "rollback", "override-blackout")
        ),
        ("/api/v1/sites/{site}/hold", "get"),
        ("/api/v1/sites/{site}/hold", "post"),
        ("/api/v1/sites/{site}/hold", "delete"),
        ("/api/v1/sites/{site}/history", "get"),
        ("/api/v1/overview", "get"),
        ("/api/v1/events", "get"),
        ("/api/v1/versions", "get"),
        ("/api/v1/me", "get"),
        ("/api/v1/sites/{site}/enrollment-tokens", "post"),
        ("/api/v1/enroll", "post"),
        ("/api/v1/audit", "get"),
    }
    for op in routes.values():
        assert op["tags"]
        assert op["summary"]
        assert op["description"]
    assert "404" in routes["/api/v1/boxes/{box}", "get"]["responses"]
    assert client.get("/docs").status_code == 200

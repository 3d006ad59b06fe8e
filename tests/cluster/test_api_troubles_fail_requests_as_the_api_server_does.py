"""An API server in trouble (the simulator's api-errors fault): which requests fail and with what, drawn by the
pure ``failure_for``; then a served cluster failing requests to kubectl and the official client exactly as
kube-apiserver would (429 with Retry-After, 503, 500, 409 on a write, a held request answered 504)."""

from __future__ import annotations

import random
from collections.abc import Iterator

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from simulator.cluster.nodes import ClusterBox
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from simulator.cluster.troubles import API_ERRORS, REQUEST_TIMEOUT_S, ApiError, ApiTrouble, failure_for
from tests.cluster.conftest import Kubectl

METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


@given(
    rate=st.floats(min_value=0.01, max_value=1.0),
    errors=st.lists(st.sampled_from(API_ERRORS), min_size=1, unique=True),
    method=st.sampled_from(METHODS),
    name=st.one_of(st.none(), st.just("x")),
    seed=st.integers(0, 2**32),
)
def test_a_failure_is_one_of_the_errors_asked_for_and_a_read_never_conflicts(
    rate: float, errors: list[ApiError], method: str, name: str | None, seed: int
) -> None:
    failure = failure_for(
        ApiTrouble(rate, tuple(errors)),
        method=method,
        resource="deployments.apps",
        name=name,
        timeout_s=None,
        rng=random.Random(seed),
    )
    if failure is None:
        return
    wanted = {"409": 409, "429": 429, "500": 500, "503": 503, "timeout": 504}
    assert failure.code in {wanted[e] for e in errors}
    assert failure.status["code"] == failure.code
    assert failure.status["kind"] == "Status"
    if failure.code == 409:
        assert method != "GET"
        assert name is not None
    assert (failure.hold_s > 0) == (failure.code == 504)
    assert ("Retry-After" in failure.headers) == (failure.code == 429)


def test_without_trouble_nothing_fails_and_at_rate_one_everything_does() -> None:
    rng = random.Random(1)
    args = {"method": "GET", "resource": "pods", "name": None, "timeout_s": None, "rng": rng}
    assert all(failure_for(None, **args) is None for _ in range(100))  # type: ignore[arg-type]
    assert all(failure_for(ApiTrouble(1.0, ("503",)), **args) is not None for _ in range(100))  # type: ignore[arg-type]


def test_the_share_that_fails_follows_the_rate() -> None:
    rng = random.Random(7)
    failed = sum(
        failure_for(ApiTrouble(0.3, ("500",)), method="GET", resource="pods", name=None, timeout_s=None, rng=rng)
        is not None
        for _ in range(10_000)
    )
    assert 2_700 < failed < 3_300


def test_a_timeout_holds_until_the_shorter_of_the_requests_and_the_servers_timeout() -> None:
    def hold(timeout_s: float | None) -> float:
        failure = failure_for(
            ApiTrouble(1.0, ("timeout",)),
            method="GET",
            resource="pods",
            name=None,
            timeout_s=timeout_s,
            rng=random.Random(0),
        )
        assert failure is not None
        return failure.hold_s

    assert hold(None) == REQUEST_TIMEOUT_S
    assert hold(5) == 5
    assert hold(600) == REQUEST_TIMEOUT_S


class Switch:
    """The fault as the server reads it, set by the test."""

    def __init__(self) -> None:
        self.trouble: ApiTrouble | None = None

    def __call__(self) -> ApiTrouble | None:
        return self.trouble


@pytest.fixture
def switch() -> Switch:
    return Switch()


@pytest.fixture
def cluster(boxes: list[ClusterBox], switch: Switch) -> Iterator[BackgroundCluster]:
    running = start_cluster_in_background(boxes[0].site, boxes, trouble=switch)
    yield running
    running.stop()


def test_kubectl_and_the_official_client_meet_the_api_servers_errors(
    cluster: BackgroundCluster, switch: Switch, kubectl: Kubectl
) -> None:
    base = cluster.url
    switch.trouble = ApiTrouble(1.0, ("429",))
    throttled = httpx.get(f"{base}/api/v1/nodes", timeout=10)
    assert throttled.status_code == 429
    assert throttled.headers["Retry-After"] == "1"
    assert throttled.json()["reason"] == "TooManyRequests"

    switch.trouble = ApiTrouble(1.0, ("503",))
    failed = kubectl("get", "nodes", check=False)
    assert failed.returncode != 0
    assert "the server is currently unable to handle the request" in failed.stderr

    switch.trouble = ApiTrouble(1.0, ("409",))
    assert httpx.get(f"{base}/api/v1/nodes", timeout=10).status_code == 200, "a read cannot conflict"
    kubectl_ok = kubectl("create", "namespace", "rollouts", check=False)
    assert kubectl_ok.returncode == 0, "a create names no existing object: no conflict either"
    conflict = kubectl("label", "namespace", "rollouts", "team=ops", check=False)
    assert conflict.returncode != 0
    assert 'Operation cannot be fulfilled on namespaces "rollouts": the object has been modified' in conflict.stderr

    switch.trouble = ApiTrouble(1.0, ("timeout",))
    held = httpx.get(f"{base}/api/v1/nodes", params={"timeoutSeconds": "1"}, timeout=10)
    assert held.status_code == 504
    assert held.json()["reason"] == "Timeout"

    switch.trouble = None
    assert kubectl("get", "nodes").returncode == 0

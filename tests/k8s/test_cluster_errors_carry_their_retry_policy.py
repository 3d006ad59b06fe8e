"""The client's errors leave the gateway as edgefleet's, with their retry policy: a missing object is permanent
with the API's message, a stale write (409) is temporary, an unreachable or silent server is temporary (every
call has a timeout), a context the kubeconfig lacks is permanent and says so."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from edgefleet.clock import FakeClock
from edgefleet.cloud.k8s.clients import ClusterClients, Timeouts
from edgefleet.cloud.k8s.errors import (
    ExpiredError,
    PermanentClusterError,
    TemporaryClusterError,
    apply_conflicts,
    retry_after,
    status_error,
    translating,
)
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.ids import ClusterId
from simulator.cluster.kubeconfig import write_kubeconfig
from tests.k8s.conftest import EAST, closed_port, gateway_for


def test_a_missing_deployment_is_permanent_with_the_apis_message(gateway: KubernetesGateway) -> None:
    with pytest.raises(PermanentClusterError) as missing:
        gateway.get_deployment(EAST, "default", "nowhere")
    assert missing.value.status == 404
    assert missing.value.reason == "NotFound"
    assert missing.value.message.endswith('deployments.apps "nowhere" not found')  # the group named, as for real
    assert "cluster kubeedge-east: read deployments nowhere in namespace default" in str(missing.value)
    assert isinstance(missing.value.__cause__, client.ApiException)


def test_a_stale_update_is_temporary(kubeconfig: Path) -> None:
    # The gateway has no update of its own yet; the boundary it uses is tried on the client's own stale write.
    core = client.CoreV1Api(config.new_client_from_config(config_file=str(kubeconfig)))
    made = core.create_namespaced_config_map("default", client.V1ConfigMap(metadata=client.V1ObjectMeta(name="c")))
    made.data = {"a": "1"}
    core.replace_namespaced_config_map("c", "default", made)
    with pytest.raises(TemporaryClusterError) as stale, translating(EAST, "replace configmap c"):
        core.replace_namespaced_config_map("c", "default", made)  # made still holds the old version
    assert stale.value.status == 409
    assert "the object has been modified" in stale.value.message


def test_a_closed_port_is_temporary(tmp_path: Path, clock: FakeClock) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {EAST: f"http://127.0.0.1:{closed_port()}"})
    gateway = gateway_for(kubeconfig, clock)
    with pytest.raises(TemporaryClusterError) as refused:
        gateway.nodes(EAST)
    assert refused.value.message.startswith("unreachable:")
    assert refused.value.retry_after_s is None


@pytest.fixture
def silent_server() -> Iterator[int]:
    """A port that accepts connections (the kernel does, from the backlog) and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield int(listener.getsockname()[1])


def test_a_server_that_never_answers_times_out_as_temporary(
    tmp_path: Path, clock: FakeClock, silent_server: int
) -> None:
    kubeconfig = write_kubeconfig(tmp_path / "kubeconfig", {EAST: f"http://127.0.0.1:{silent_server}"})
    gateway = KubernetesGateway(
        ClusterClients({EAST: EAST}, kubeconfig), clock=clock, timeouts=Timeouts(connect_s=1.0, read_s=0.5)
    )
    with pytest.raises(TemporaryClusterError) as silent:
        gateway.get_deployment(EAST, "default", "any")
    assert silent.value.message.startswith("timed out:")


def test_a_context_the_kubeconfig_lacks_is_permanent(kubeconfig: Path, clock: FakeClock) -> None:
    gateway = KubernetesGateway(ClusterClients({EAST: "no-such-context"}, kubeconfig), clock=clock)
    with pytest.raises(PermanentClusterError) as bad:
        gateway.nodes(EAST)
    assert bad.value.reason == "BadKubeconfig"
    assert (
        f"context 'no-such-context' not in kubeconfig {kubeconfig}; add it or fix the Cluster manifest's context "
        f"(the file has: {EAST})"
    ) in str(bad.value)
    with pytest.raises(PermanentClusterError, match="no such cluster in the inventory"):
        gateway.nodes(ClusterId("kubeedge-west"))


def test_a_missing_kubeconfig_file_is_permanent_and_says_how_to_fix_it(tmp_path: Path, clock: FakeClock) -> None:
    gateway = KubernetesGateway(ClusterClients({EAST: EAST}, tmp_path / "absent"), clock=clock)
    with pytest.raises(PermanentClusterError, match="EDGEFLEET_KUBECONFIG"):
        gateway.nodes(EAST)


@pytest.mark.parametrize(
    ("status", "retry_header", "kind", "retry_after_s"),
    [
        (400, None, PermanentClusterError, None),
        (401, None, PermanentClusterError, None),
        (403, None, PermanentClusterError, None),
        (404, None, PermanentClusterError, None),
        (422, None, PermanentClusterError, None),
        (408, None, TemporaryClusterError, None),
        (409, None, TemporaryClusterError, None),
        (410, None, ExpiredError, None),
        (429, "7", TemporaryClusterError, 7.0),
        (429, "Wed, 21 Oct 2015 07:28:00 GMT", TemporaryClusterError, None),  # a date: the caller's backoff
        (429, "86400", TemporaryClusterError, 600.0),  # capped at MAX_RETRY_AFTER_S
        (500, "7", TemporaryClusterError, None),  # only 429's Retry-After is honoured
        (503, None, TemporaryClusterError, None),
        (None, None, PermanentClusterError, None),
    ],
)
def test_each_answer_has_its_retry_policy(
    status: int | None, retry_header: str | None, kind: type[Exception], retry_after_s: float | None
) -> None:
    error = status_error(EAST, "list pods", status, "Reason", "the API's words", retry_after_header=retry_header)
    assert type(error) is kind
    assert error.message == "the API's words"
    if isinstance(error, TemporaryClusterError):
        assert error.retry_after_s == retry_after_s


def test_retry_after_reads_seconds_only() -> None:
    assert retry_after(" 2.5 ") == 2.5
    assert retry_after("-1") is None
    assert retry_after(None) is None
    assert retry_after("nan") is None
    assert retry_after("Wed, 21 Oct 2026 07:28:00 GMT") is None
    assert retry_after("1e9") == 600.0, "capped"


def test_a_real_api_servers_apply_conflict_names_each_manager_and_field() -> None:
    # As kube-apiserver 1.32 words it (the simulated server leaves out " using apps/v1").
    body = json.dumps(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "status": "Failure",
            "message": 'Apply failed with 2 conflicts: conflicts with "kubectl-edit" using apps/v1:\n- .spec.replicas\n'
            '- .spec.template.spec.containers[name="app"].image',
            "reason": "Conflict",
            "details": {
                "causes": [
                    {
                        "reason": "FieldManagerConflict",
                        "message": 'conflict with "kubectl-edit" using apps/v1',
                        "field": ".spec.replicas",
                    },
                    {
                        "reason": "FieldManagerConflict",
                        "message": 'conflict with "kubectl-edit" using apps/v1',
                        "field": '.spec.template.spec.containers[name="app"].image',
                    },
                ]
            },
            "code": 409,
        }
    )
    assert apply_conflicts(body) == [
        ("kubectl-edit", ".spec.replicas"),
        ("kubectl-edit", '.spec.template.spec.containers[name="app"].image'),
    ]
    # A 409 that is no apply conflict (a stale resourceVersion) has none: it stays temporary.
    assert apply_conflicts(json.dumps({"kind": "Status", "reason": "Conflict", "code": 409})) == []
    assert apply_conflicts("not json") == []

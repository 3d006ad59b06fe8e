"""``GET /api/v1/clusters/{name}/audit`` and ``edgefleet clusters audit C`` over a real uvicorn whose controller
reaches a simulated central cluster through the real gateway: the planted violation is listed (the command exits
3), a Job's as a Deployment's, a clean cluster says so (exit 0), an unknown cluster is 404, a controller that reaches no cluster 503; and
``edgefleet clusters`` shows each cluster's policy."""

from __future__ import annotations

import httpx
import typer
from typer.testing import CliRunner

from edgefleet.cli import clusters as clusters_cli
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.ids import ClusterId
from tests.cloud.api.memory import MemoryController
from tests.policies.central import CLUSTER
from tests.policies.test_the_audit_finds_what_breaks_the_policy import workload
from tests.support.access import cli_headers

CENTRAL = ClusterId(CLUSTER)


def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    clusters_cli.register(app)
    return app


RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_the_audit_lists_the_planted_violation_in_the_api_and_the_cli(
    served: tuple[MemoryController, KubernetesGateway, str],
) -> None:
    memory, gateway, url = served
    clean = RUNNER.invoke(cli(), ["clusters", "audit", CLUSTER, "--api", url])
    assert clean.exit_code == 0, clean.output
    assert "0 findings in 0 workloads and 0 pods of central-x" in clean.output

    gateway.apply(CENTRAL, {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}})
    gateway.apply(CENTRAL, workload("web", limits={"cpu": "2"}, requests={"cpu": "1"}))
    with httpx.Client(base_url=url, timeout=10, headers=cli_headers()) as client:
        answer = client.get(f"/api/v1/clusters/{CLUSTER}/audit")
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert (body["has_policy"], body["workloads"]) == (True, 1)
        assert body["findings"] == [
            {
                "namespace": "shop",
                "kind": "Deployment",
                "name": "web",
                "rule": "off-ratio",
                "message": "container web: cpu request 1 is not its limit 2 / 10 (about 200m)",
            }
        ]
        missing = client.get("/api/v1/clusters/central-y/audit")
        assert missing.status_code == 404
        assert "no cluster 'central-y' in the inventory (known: central-x, edge-x)" in missing.text
        shown = client.get(f"/api/v1/clusters/{CLUSTER}").json()
        assert shown["timezone"] == "Asia/Shanghai"
        assert "overcommit cpu 10, memory 1.5" in shown["policy"]
        assert "exclusive bigdata 00:00-06:00 for bigdata, app scan-upload" in shown["policy"]

    found = RUNNER.invoke(cli(), ["clusters", "audit", CLUSTER, "--api", url])
    assert found.exit_code == clusters_cli.FINDINGS_EXIT, found.output
    assert "web" in found.output
    assert "off-ratio" in found.output
    assert "1 finding in 1 workload and 0 pods of central-x" in found.output

    # A Job is audited by its pod template as a Deployment is.
    job = workload("train", limits={"cpu": "2"}, requests={"cpu": "2"})
    job["apiVersion"], job["kind"] = "batch/v1", "Job"
    job["spec"] = {"template": {**job["spec"]["template"], "spec": {**job["spec"]["template"]["spec"]}}}
    job["spec"]["template"]["spec"]["restartPolicy"] = "Never"
    gateway.apply(CENTRAL, job)
    with_job = RUNNER.invoke(cli(), ["clusters", "audit", CLUSTER, "--api", url])
    assert with_job.exit_code == clusters_cli.FINDINGS_EXIT, with_job.output
    assert [line.split()[:4] for line in with_job.output.splitlines() if " train " in f" {line} "] == [
        ["shop", "Job", "train", "off-ratio"]
    ]
    assert "2 findings in 2 workloads and 0 pods of central-x" in with_job.output

    listed = RUNNER.invoke(cli(), ["clusters", "--api", url])
    assert listed.exit_code == 0, listed.output
    assert "central-x policy (Asia/Shanghai):" in listed.output
    assert "anti-affinity uploaders: scan-upload, video-transcode" in listed.output

    memory.gateway = None
    with httpx.Client(base_url=url, timeout=10, headers=cli_headers()) as client:
        assert client.get(f"/api/v1/clusters/{CLUSTER}/audit").status_code == 503

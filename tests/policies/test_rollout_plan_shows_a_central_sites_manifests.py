"""``edgefleet rollout plan FILE --show-manifests`` (``manifests: true`` in the plan request) prints what the
release renders at each central site under its cluster's policy, as YAML that reads back; without the flag the
plan carries none."""

from __future__ import annotations

from pathlib import Path

import typer
import yaml
from typer.testing import CliRunner

from edgefleet.cli import rollouts
from edgefleet.cloud.k8s.gateway import KubernetesGateway
from edgefleet.messages import AppReport, AppState
from tests.cloud.api.memory import MemoryController
from tests.policies.central import RELEASE

RUNNER = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})


def test_the_plan_shows_the_central_sites_rendered_manifests(
    served: tuple[MemoryController, KubernetesGateway, str], tmp_path: Path
) -> None:
    memory, _, url = served
    older = AppReport(source="simulator", apps=[AppState(name="scan-upload", version="1.0.0", state="running")])
    memory.beat("central-x-node-01", app_report=older)
    memory.beat("tc-a-edge-01", app_report=older)
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(app)
    release = tmp_path / "scan-upload-2.0.0.yaml"
    # scan-upload goes to a central site the release names (docs/rollouts.md).
    release.write_text(
        RELEASE
        + '  overrides:\n    - {sites: [central-x], env: {UPLOAD_WORKERS: "8"}}\n'
        + '  strategy: {canary: {sites: [tc-a]}, waves: ["100%"]}\n'
    )

    shown = RUNNER.invoke(app, ["rollout", "plan", str(release), "--api", url, "--show-manifests"])
    assert shown.exit_code == 0, shown.output
    assert "# central-x (cluster central-x)" in shown.output
    stream = shown.output[shown.output.index("# central-x (cluster central-x)") :]
    objects = [o for o in yaml.safe_load_all(stream) if o]
    assert [o["kind"] for o in objects] == ["ConfigMap", "Deployment", "HorizontalPodAutoscaler"]
    container = objects[1]["spec"]["template"]["spec"]["containers"][0]
    assert container["resources"]["requests"] == {"cpu": "200m", "memory": "2Gi"}

    plain = RUNNER.invoke(app, ["rollout", "plan", str(release), "--api", url, "-o", "json"])
    assert plain.exit_code == 0, plain.output
    assert '"manifests": []' in plain.output

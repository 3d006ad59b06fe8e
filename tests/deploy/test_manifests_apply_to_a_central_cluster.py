"""``kubectl apply -k deploy/ --dry-run=server --validate=strict`` against a simulated central cluster: every object
is admitted by the API server's strict field validation (Kubernetes' own schemas) and nothing is stored; a typo
planted in a copy of the manifests is refused, naming the field. Both kubectls (1.32 on PATH, the wheel's 1.37).

Also the manifests' promises a reviewer would otherwise check by eye: no container runs as root or with a
capability, every root filesystem is read-only, the controller is probed on /readyz and /livez (which answer),
and the agent reaches only what docs/kubernetes.md and docs/operations.md say it needs."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Final

import pytest
import yaml

from edgefleet.ids import SiteId
from edgefleet.inventory import load_inventory
from simulator.cluster.kubeconfig import write_kubeconfig
from simulator.cluster.nodes import site_boxes
from simulator.cluster.server import BackgroundCluster, start_cluster_in_background
from tests.cluster.conftest import Kubectl, kubectl_runner
from tests.conftest import REPO, SITES
from tests.support.kubectls import KUBECTLS, ON_PATH, kubectl_binary

DEPLOY: Final = REPO / "deploy"
CENTRAL: Final = SiteId("central-sh-dc1")
KINDS: Final = {
    ("ConfigMap", "edgefleet-agent"),
    ("ConfigMap", "edgefleet-controller"),
    ("ConfigMap", "mosquitto"),
    ("Service", "edgefleet-controller"),
    ("Service", "mosquitto"),
    ("Service", "mosquitto-headless"),
    ("Deployment", "edgefleet-controller"),
    ("StatefulSet", "mosquitto"),
    ("PodDisruptionBudget", "edgefleet-controller"),
    ("DaemonSet", "edgefleet-agent"),
    ("DaemonSet", "edgefleet-agent-gpu"),
}


@pytest.fixture
def central() -> Iterator[BackgroundCluster]:
    """A central site's cluster, with the API server's defaulting and admission (``controllers``)."""
    running = start_cluster_in_background(CENTRAL, site_boxes(load_inventory(SITES), CENTRAL), controllers=True)
    yield running
    running.stop()


@pytest.fixture(params=KUBECTLS)
def kubectl(request: pytest.FixtureRequest, central: BackgroundCluster, tmp_path: Path) -> Kubectl:
    run = kubectl_runner(
        str(request.param), write_kubeconfig(tmp_path / "kubeconfig", {CENTRAL: central.url}), tmp_path
    )
    # The operator's first step (docs/operations.md): a dry run cannot create the namespace it applies into.
    run("create", "namespace", "edgefleet")
    return run


def rendered() -> list[dict[str, Any]]:
    binary, missing = kubectl_binary(ON_PATH)
    if binary is None:
        pytest.skip(missing)
    out = subprocess.run([str(binary), "kustomize", str(DEPLOY)], capture_output=True, text=True, check=True).stdout
    return [doc for doc in yaml.safe_load_all(out) if doc]


def test_the_manifests_apply_with_a_server_dry_run_and_strict_validation(
    kubectl: Kubectl, central: BackgroundCluster
) -> None:
    before = central.call(lambda store: store.resource_version)

    done = kubectl("apply", "-k", str(DEPLOY), "--dry-run=server", "--validate=strict", "-o", "json")

    answered = json.loads(done.stdout)
    objects = answered["items"] if answered.get("kind") == "List" else [answered]
    assert {(o["kind"], o["metadata"]["name"].rsplit("-", 1)[0] if o["kind"] == "ConfigMap" else o["metadata"]["name"])
            for o in objects} == KINDS  # fmt: skip
    assert all(o["metadata"]["namespace"] == "edgefleet" for o in objects)
    assert "Warning" not in done.stderr, done.stderr
    # Admitted as stored would be (the API server's defaults filled in), and nothing stored.
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    assert deployment["spec"]["template"]["spec"]["restartPolicy"] == "Always"
    assert central.call(lambda store: store.resource_version) == before
    listed = kubectl(
        "get", "deployments,statefulsets,daemonsets,services,configmaps,poddisruptionbudgets", "-n", "edgefleet"
    )
    assert listed.stdout == ""
    assert "No resources found in edgefleet namespace." in listed.stderr


@pytest.mark.parametrize(
    ("file", "right", "wrong", "refusal"),
    [
        (
            "controller/deployment.yaml",
            "          readinessProbe:",
            "          readinesProbe:",
            'unknown field "spec.template.spec.containers[0].readinesProbe"',
        ),
        (
            "controller/poddisruptionbudget.yaml",
            "  maxUnavailable: 1",
            "  maxUnavailible: 1",
            'unknown field "spec.maxUnavailible"',
        ),
        (
            "mosquitto/statefulset.yaml",
            "  serviceName: mosquitto-headless",
            "  servicename: mosquitto-headless",
            'unknown field "spec.servicename"',
        ),
        (
            "agent/daemonset.yaml",
            "      tolerations:",
            "      toleration:",
            'unknown field "spec.template.spec.toleration"',
        ),
    ],
)
def test_a_typo_in_a_manifest_is_refused(
    kubectl: Kubectl, central: BackgroundCluster, tmp_path: Path, file: str, right: str, wrong: str, refusal: str
) -> None:
    copy = shutil.copytree(DEPLOY, tmp_path / "deploy")
    text = (copy / file).read_text()
    assert right in text
    (copy / file).write_text(text.replace(right, wrong, 1))
    before = central.call(lambda store: store.resource_version)

    done = kubectl("apply", "-k", str(copy), "--dry-run=server", "--validate=strict", check=False)

    assert done.returncode != 0
    assert refusal in done.stderr, done.stderr
    assert central.call(lambda store: store.resource_version) == before


# --- what the manifests promise ---------------------------------------------------------------------------------


def pod_specs() -> dict[str, dict[str, Any]]:
    return {o["metadata"]["name"]: o["spec"]["template"]["spec"] for o in rendered() if "template" in o.get("spec", {})}


def test_no_container_runs_as_root_with_a_capability_or_a_writable_root() -> None:
    specs = pod_specs()
    assert set(specs) == {"edgefleet-controller", "mosquitto", "edgefleet-agent", "edgefleet-agent-gpu"}
    for name, spec in specs.items():
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["runAsUser"] != 0, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert "privileged" not in context, name
            assert container["resources"]["requests"], name
            assert container["resources"]["limits"]["memory"], name


def test_the_controller_is_two_replicas_probed_on_routes_that_exist() -> None:
    from edgefleet.cloud.api.routes.system import probes_router

    objects = {(o["kind"], o["metadata"]["name"]): o for o in rendered()}
    deployment = objects[("Deployment", "edgefleet-controller")]
    assert deployment["spec"]["replicas"] == 2
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    probed = {container[p]["httpGet"]["path"] for p in ("readinessProbe", "livenessProbe", "startupProbe")}
    assert probed == {"/readyz", "/livez"}
    assert probed <= {route.path for route in probes_router.routes}  # type: ignore[attr-defined]  # open: no token
    # A standby forwards writes to the leader at its advertised address: the pod's IP (a pod's name resolves
    # nowhere), defined before the variable that uses it (Kubernetes expands $(VAR) only from earlier entries).
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_IP") < names.index("EDGEFLEET_ADVERTISE_URL")
    env = {e["name"]: e for e in container["env"]}
    assert env["POD_IP"]["valueFrom"] == {"fieldRef": {"fieldPath": "status.podIP"}}
    (port,) = container["ports"]
    assert env["EDGEFLEET_ADVERTISE_URL"]["value"] == f"http://$(POD_IP):{port['containerPort']}"
    secrets = [e for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})]
    assert secrets == [
        {
            "name": "EDGEFLEET_DATABASE_URL",
            "valueFrom": {"secretKeyRef": {"name": "edgefleet-controller", "key": "database-url"}},
        }
    ]
    budget = objects[("PodDisruptionBudget", "edgefleet-controller")]
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_the_agent_runs_on_edge_nodes_through_cuts_reading_the_hosts_proc() -> None:
    specs = pod_specs()
    for name in ("edgefleet-agent", "edgefleet-agent-gpu"):
        spec = specs[name]
        assert spec["nodeSelector"]["node-role.kubernetes.io/edge"] == ""
        tolerated = {(t["key"], t["effect"]) for t in spec["tolerations"] if "tolerationSeconds" not in t}
        assert tolerated >= {
            ("node.kubernetes.io/unreachable", "NoExecute"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
        }
        paths = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"]}
        mounts = {m["name"]: m for m in spec["containers"][0]["volumeMounts"]}
        assert paths["host-proc"] == "/proc"
        assert mounts["host-proc"] == {"name": "host-proc", "mountPath": "/host/proc", "readOnly": True}
        assert all(m["readOnly"] for m in mounts.values())
    assert specs["edgefleet-agent-gpu"]["runtimeClassName"] == "nvidia"
    assert specs["edgefleet-agent-gpu"]["nodeSelector"]["nvidia.com/gpu.present"] == "true"
    assert "--no-gpu" in specs["edgefleet-agent"]["containers"][0]["command"][-1]
    agent_env = next(o for o in rendered() if o["metadata"]["name"].startswith("edgefleet-agent-"))["data"]
    assert agent_env["EDGEFLEET_PROC_ROOT"] == "/host/proc"


def test_the_systemd_unit_verifies(tmp_path: Path) -> None:
    """``systemd-analyze verify`` of the unit as shipped, but for ExecStart, which names this checkout's edgefleet
    (verify needs the program to exist); a planted typo shows the check speaks up."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    edgefleet = Path(shutil.which("edgefleet") or "")
    if not edgefleet.is_file():
        pytest.skip("the edgefleet command is not on PATH (run the tests with .venv/bin first, as scripts/test does)")
    unit = (DEPLOY / "systemd" / "edgefleet-agent.service").read_text()
    assert "ExecStart=/opt/edgefleet/bin/edgefleet agent run\n" in unit
    assert "RestartPreventExitStatus=3\n" in unit
    here = unit.replace("/opt/edgefleet/bin/edgefleet", str(edgefleet))
    good, typo = tmp_path / "good", tmp_path / "typo"
    for folder, text in ((good, here), (typo, here.replace("RestartSec=", "RestartSecs="))):
        folder.mkdir()
        (folder / "edgefleet-agent.service").write_text(text)

    verified = subprocess.run(
        [analyze, "verify", str(good / "edgefleet-agent.service")], check=False, capture_output=True, text=True
    )
    mistyped = subprocess.run(
        [analyze, "verify", str(typo / "edgefleet-agent.service")], check=False, capture_output=True, text=True
    )

    assert (verified.returncode, verified.stderr) == (0, "")
    assert "Unknown key 'RestartSecs' in section [Service]" in mistyped.stderr


def env_file(path: Path) -> dict[str, str]:
    lines = [line for line in path.read_text().splitlines() if line.strip() and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_the_settings_in_deploy_are_ones_the_controller_and_the_agent_take(tmp_path: Path) -> None:
    """A mistyped variable name or value in deploy/'s env files would only show when a pod starts: caught here."""
    from edgefleet.agent.cli import ENV as AGENT_ENV
    from edgefleet.cloud import settings

    controller = env_file(DEPLOY / "controller" / "controller.env")
    known = {value for name, value in vars(settings).items() if name.startswith("ENV_")}
    assert set(controller) <= known, set(controller) - known
    # The files the Secret provides in the pod, here in tmp_path; the database URL comes from the Secret too.
    (tmp_path / "broker-password").write_text("secret\n")
    (tmp_path / "kubeconfig").write_text("apiVersion: v1\nkind: Config\n")
    taken = settings.Settings.from_env(
        {
            **controller,
            "EDGEFLEET_BROKER_PASSWORD_FILE": str(tmp_path / "broker-password"),
            "EDGEFLEET_KUBECONFIG": str(tmp_path / "kubeconfig"),
            "EDGEFLEET_DATABASE_URL": "postgresql://edgefleet:secret@db.example.internal/edgefleet",
        }
    )
    assert (taken.listen_host, taken.listen_port) == ("0.0.0.0", 8000)
    assert taken.broker_url_shown == "mqtt://mosquitto:1883"

    agent = env_file(DEPLOY / "agent" / "agent.env")
    assert set(agent) <= set(AGENT_ENV.values()), set(agent) - set(AGENT_ENV.values())

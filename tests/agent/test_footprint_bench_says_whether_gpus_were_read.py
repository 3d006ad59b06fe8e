"""The agent footprint benchmark (bench/agent_footprint.py) says whether its "GPU probe on" figures read any GPU:
without NVML it says NVML was absent, and ``--gpu`` refuses, in one line, to measure unless NVML loads and the
agent reads every GPU."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]
NO_DRIVER = "no NVIDIA driver: libnvidia-ml.so.1 was not found"


@pytest.fixture(scope="module")
def bench() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_agent_footprint", REPO / "bench" / "agent_footprint.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # the module's dataclass looks itself up by name
    spec.loader.exec_module(module)
    return module


def finding(bench: ModuleType, *gpus: str, reason: str | None = None) -> object:
    return bench.GpuFinding(bool(gpus), reason, "550.90.07" if gpus else None, gpus)


def test_without_nvml_the_figures_say_nvml_was_absent(bench: ModuleType) -> None:
    note = bench.gpu_note(finding(bench, reason=NO_DRIVER))
    assert "NVML absent" in note
    assert NO_DRIVER in note
    assert "--gpu" in note
    read = bench.gpu_note(finding(bench, "NVIDIA H200", "NVIDIA H200"))
    assert "NVML loaded" in read
    assert "2 GPU(s) read each heartbeat (NVIDIA H200)" in read


def test_gpu_mode_needs_nvml_reading_every_gpu(bench: ModuleType) -> None:
    assert bench.gpu_problem(finding(bench, "NVIDIA T4", "NVIDIA T4"), 2) is None
    assert bench.gpu_problem(finding(bench, "NVIDIA T4"), None) is None  # no nvidia-smi to cross-check with
    refused = {
        "no driver": bench.gpu_problem(finding(bench, reason=NO_DRIVER), None),
        "no GPU": bench.gpu_problem(bench.GpuFinding(True, None, "550.90.07", ()), None),
        "one unreadable": bench.gpu_problem(finding(bench, "NVIDIA T4", reason="could not read GPU 1: GPU is lost"), 2),
        "one unseen": bench.gpu_problem(finding(bench, "NVIDIA T4"), 2),
    }
    assert all(problem is not None and problem.startswith("--gpu needs") for problem in refused.values()), refused
    assert NO_DRIVER in str(refused["no driver"])
    assert "nvidia-smi -L lists 2" in str(refused["one unseen"])


def test_gpu_mode_without_nvml_ends_with_one_line(bench: ModuleType) -> None:
    if bench.probe_gpus().available:
        pytest.skip("this machine has NVML: --gpu would measure")
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "agent_footprint.py"), "--gpu"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert run.returncode == 2
    assert run.stdout == ""
    (line,) = run.stderr.splitlines()
    assert line.startswith("error: --gpu needs NVML and a GPU, and the agent's GPU probe says: ")

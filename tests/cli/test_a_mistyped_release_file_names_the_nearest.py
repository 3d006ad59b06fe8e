"""``edgefleet rollout plan|start FILE`` with a file that is not there: one ``error:`` line naming the path and a
hint naming the nearest release file and those that are there, never Python's "[Errno 2] No such file or
directory" (what it said before). No controller is needed: the file is read before anything is sent."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli import rollouts

NAMES = ("scan-upload-1.12.0.yaml", "scan-upload-1.14.0.yaml", "sorting-recognition-3.6.0.yaml")


@pytest.fixture
def cli() -> typer.Typer:
    app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
    rollouts.register(app)
    return app


@pytest.fixture
def checkout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory with releases/ in it, the working directory, as the repository's root is for the demo."""
    (tmp_path / "releases").mkdir()
    for name in NAMES:
        (tmp_path / "releases" / name).write_text("kind: Release\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def said(cli: typer.Typer, *args: str) -> str:
    # An API nobody serves: reaching it would be a different error, so the refusal comes from the file alone.
    done = CliRunner().invoke(cli, [*args, "--api", "http://127.0.0.1:9"], env={"COLUMNS": "400", "NO_COLOR": "1"})
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output
    assert "Errno" not in done.output
    return done.output


@pytest.mark.parametrize("command", ["plan", "start"])
def test_a_mistyped_version_names_the_release_file_nearest(cli: typer.Typer, checkout: Path, command: str) -> None:
    out = said(cli, "rollout", command, "releases/scan-upload-1.41.0.yaml")
    assert out.splitlines()[0] == "error: no release file releases/scan-upload-1.41.0.yaml"
    assert out.splitlines()[1] == (
        "hint: did you mean releases/scan-upload-1.14.0.yaml? the release files in releases/: " + ", ".join(NAMES)
    )


def test_a_bare_name_is_looked_for_in_releases(cli: typer.Typer, checkout: Path) -> None:
    out = said(cli, "rollout", "plan", "scan-upload-1.14.0.yaml")
    assert "did you mean releases/scan-upload-1.14.0.yaml?" in out


def test_a_directory_or_a_missing_one_is_said_so(cli: typer.Typer, checkout: Path) -> None:
    out = said(cli, "rollout", "plan", "releases")
    assert out.splitlines()[0] == "error: releases is a directory, not a release file"
    assert "the release files in releases/: scan-upload-1.12.0.yaml" in out
    out = said(cli, "rollout", "plan", "nowhere/x.yaml")
    assert out.splitlines() == [
        "error: no release file nowhere/x.yaml",
        "hint: give the path of a release manifest (none in nowhere/)",
    ]

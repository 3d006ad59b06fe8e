"""``edgefleet agent enroll`` and ``run --config`` without a controller: the file it writes is read back with the
environment winning, a bad line is named by file and line, and a controller that cannot be reached or refuses
ends the command with one line and no secret (the token)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edgefleet.agent import cli
from edgefleet.agent.enrolling import read_env_file, with_env_file
from tests.support.peers import free_port


def test_the_environment_wins_over_the_config_file(tmp_path: Path) -> None:
    config = tmp_path / "agent.env"
    config.write_text("# comment\n\nEDGEFLEET_BOX=box-a\nEDGEFLEET_SITE=site-a\n")

    merged = with_env_file({"EDGEFLEET_BOX": "box-b"}, config)

    assert merged == {"EDGEFLEET_BOX": "box-b", "EDGEFLEET_SITE": "site-a"}


def test_a_bad_config_line_is_named_by_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.env"
    config.write_text("EDGEFLEET_BOX=box-a\nPATH=/tmp\n")

    assert cli.main(["run", "--config", str(config)]) == cli.EXIT_USAGE

    assert capsys.readouterr().err == (
        f"error: --config: {config}:2: expected EDGEFLEET_NAME=value (as 'edgefleet agent enroll' writes)\n"
    )
    with pytest.raises(Exception, match="cannot read"):
        read_env_file(tmp_path / "missing.env")


def test_an_unreachable_controller_ends_enroll_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token = "ef_not-a-real-token-0123456789"
    url = f"http://127.0.0.1:{free_port()}"

    status = cli.main(["enroll", "--token", token, "--controller", url, "--box", "box-a", "--dir", str(tmp_path / "d")])

    err = capsys.readouterr().err
    assert status == 1
    assert err.startswith(f"error: cannot reach the controller at {url}/api/v1/enroll")
    assert err.count("\n") == 1
    assert token not in err
    assert not (tmp_path / "d").exists()


def test_a_bad_box_id_is_refused_before_anything_is_sent(capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.main(["enroll", "--token", "t", "--controller", "http://127.0.0.1:1", "--box", "Box#1"])

    assert status == cli.EXIT_USAGE
    assert capsys.readouterr().err.startswith("error: --box: ")

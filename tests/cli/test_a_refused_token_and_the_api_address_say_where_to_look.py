"""What a person at a second terminal next to the demo meets first: which controller the CLI asks and with which
token. Every command that asks the API, ``cloud status`` included, finds it through ``--api`` or
``EDGEFLEET_API_URL`` (``cloud status`` alone read ``EDGEFLEET_API``, so with the demo on another port it asked
port 8000); a refused token says where the CLI took it from (``EDGEFLEET_TOKEN`` or the file ``edgefleet login``
wrote) and what to do, instead of the API's "this needs an API token" to a person who sent one."""

from __future__ import annotations

from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from edgefleet.cli.fleet import API_ENV
from tests.cli.test_usage_errors_are_one_line import commands
from tests.support.access import TOKEN_ENV

WITH_API = [(path, c) for path, c in commands() if any("--api" in getattr(p, "opts", []) for p in c.params)]


def test_every_command_that_asks_the_api_reads_the_same_setting() -> None:
    assert any(path == ("cloud", "status") for path, _ in WITH_API)
    read = {
        " ".join(path): next(p.envvar for p in c.params if "--api" in getattr(p, "opts", [])) for path, c in WITH_API
    }
    assert {name: env for name, env in read.items() if env != API_ENV} == {}


def test_cloud_status_asks_the_api_that_edgefleet_api_url_names(
    cli: typer.Typer, api_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A dead address under the old name: a command still reading it would fail to connect.
    env = {API_ENV: api_url, "EDGEFLEET_API": "http://127.0.0.1:9", "COLUMNS": "200"}
    done = CliRunner(env=env).invoke(cli, ["cloud", "status"])
    assert done.exit_code == 0, done.output
    assert "health: ok" in done.output


@pytest.fixture
def kept_token_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config directory of this test's own: the CLI reads the token 'edgefleet login' kept from here."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    return tmp_path / "edgefleet"


def refused(cli: typer.Typer, api_url: str, token: str | None) -> str:
    env = {"COLUMNS": "300", "NO_COLOR": "1", TOKEN_ENV: token}
    done = CliRunner(env=env).invoke(cli, ["sites", "--api", api_url])
    assert done.exit_code == 1, done.output
    assert "Traceback" not in done.output
    return " ".join(done.output.split())


def test_a_wrong_token_in_the_variable_is_named_as_that_variable(
    cli: typer.Typer, api_url: str, kept_token_dir: Path
) -> None:
    said = refused(cli, api_url, "ef_not-a-token-of-this-controller")
    assert f"error: the controller at {api_url} refused the API token in EDGEFLEET_TOKEN" in said
    assert "hint: set EDGEFLEET_TOKEN to a valid token, or unset it and run 'edgefleet login --token" in said
    assert "ef_not-a-token" not in said  # a token, even a wrong one, is not repeated on the screen

    kept_token_dir.mkdir()
    (kept_token_dir / "token").write_text("ef_kept\n")
    said = refused(cli, api_url, "ef_not-a-token-of-this-controller")
    assert "hint: unset EDGEFLEET_TOKEN to send the one 'edgefleet login' kept" in said


def test_a_wrong_token_that_login_kept_is_named_by_its_file(
    cli: typer.Typer, api_url: str, kept_token_dir: Path
) -> None:
    kept_token_dir.mkdir()
    (kept_token_dir / "token").write_text("ef_revoked-long-ago\n")
    said = refused(cli, api_url, None)
    assert f"refused the API token 'edgefleet login' kept in {kept_token_dir / 'token'}" in said
    assert "hint: edgefleet login --token <a valid token>" in said


def test_no_token_at_all_says_none_was_sent_and_how_to_keep_one(
    cli: typer.Typer, api_url: str, kept_token_dir: Path
) -> None:
    said = refused(cli, api_url, None)
    assert f"the controller at {api_url} needs an API token, and none was sent" in said
    assert "hint: edgefleet login --token <token>" in said

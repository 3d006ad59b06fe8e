"""A fleet command that cannot reach the API, or that the API refuses, says so - what, where, what to try -
with exit code 1 and never a traceback."""

from __future__ import annotations

import typer
from typer.testing import CliRunner

from edgefleet.errors import UnreachableError
from tests.cli.entry import edgefleet
from tests.support.peers import free_port


def test_an_unreachable_api_is_one_line_from_the_real_command() -> None:
    closed = f"http://127.0.0.1:{free_port()}"

    result = edgefleet("boxes", "--site", "sh-pudong", "--api", closed)

    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        f"error: cannot reach the controller API at {closed}",
        "hint: start it with 'edgefleet cloud serve' or set EDGEFLEET_API_URL",
    ]


def test_every_fleet_command_raises_unreachable_for_a_closed_port(cli: typer.Typer, runner: CliRunner) -> None:
    closed = f"http://127.0.0.1:{free_port()}"
    for args in (["sites"], ["boxes", "--site", "sh-pudong"], ["boxes", "--unknown"], ["box", "sh-pudong-gpu-01"]):
        result = runner.invoke(cli, [*args, "--api", closed])

        assert isinstance(result.exception, UnreachableError), args
        assert (result.exception.what, result.exception.where) == ("controller API", closed)


def test_an_unknown_site_prints_the_apis_message(cli: typer.Typer, runner: CliRunner, api_url: str) -> None:
    result = runner.invoke(cli, ["boxes", "--site", "nowhere", "--api", api_url])

    assert result.exit_code == 1
    assert result.output.strip() == (
        "error: no site 'nowhere' in the inventory; GET /api/v1/sites lists the sites (or 'edgefleet sites')"
    )


def test_an_unknown_box_prints_the_apis_message(cli: typer.Typer, runner: CliRunner, api_url: str) -> None:
    result = runner.invoke(cli, ["box", "nobody-01", "--api", api_url])

    assert result.exit_code == 1
    assert result.output.startswith("error: no box 'nobody-01' in the inventory")


def test_a_bad_filter_prints_the_apis_message(cli: typer.Typer, runner: CliRunner, api_url: str) -> None:
    result = runner.invoke(cli, ["sites", "--health", "sunny", "--api", api_url])

    assert result.exit_code == 1
    assert result.output.startswith("error: query parameter 'health': Input should be 'ok', 'degraded'")


def test_an_api_url_that_is_no_url_is_one_line(cli: typer.Typer, runner: CliRunner) -> None:
    result = runner.invoke(cli, ["sites", "--api", "ftp://controller"])

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "error: the API URL 'ftp://controller' is not an http:// or https:// URL",
        "hint: e.g. --api http://127.0.0.1:8000 (or EDGEFLEET_API_URL)",
    ]


def test_something_that_is_not_the_api_is_one_line(cli: typer.Typer, runner: CliRunner, api_url: str) -> None:
    result = runner.invoke(cli, ["sites", "--api", api_url + "/docs#"])

    assert result.exit_code == 1
    assert "with something that is not the edgefleet API" in result.output

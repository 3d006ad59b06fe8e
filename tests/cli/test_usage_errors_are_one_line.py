"""A usage error - an unknown command or option, a missing required option or argument - is one ``error:`` line
plus the command's usage line on stderr, exit status 2, never a traceback; for every command of ``edgefleet``,
found by walking the typer app, so that a new command is covered without touching this file."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from typer._click.core import Command
from typer.core import TyperGroup
from typer.main import get_command

from edgefleet.cli import main
from edgefleet.cli.app import _register, app


def commands() -> Iterator[tuple[tuple[str, ...], Command]]:
    """Every command and group below the root, with the words that name it."""
    _register()

    def walk(path: tuple[str, ...], command: Command) -> Iterator[tuple[tuple[str, ...], Command]]:
        if path:
            yield path, command
        if isinstance(command, TyperGroup):
            for name, sub in sorted(command.commands.items()):
                yield from walk((*path, name), sub)

    yield from walk((), get_command(app))


# ``agent`` has its own argparse front end (``edgefleet.agent.cli``), dispatched before typer.
EVERY_COMMAND = [path for path, _ in commands() if path[0] != "agent"]
WITH_REQUIRED = [
    (path, [p.name for p in command.params if p.required]) for path, command in commands() if path[0] != "agent"
]
WITH_REQUIRED = [(path, names) for path, names in WITH_REQUIRED if names]


def usage_error(args: list[str], capsys: pytest.CaptureFixture[str]) -> list[str]:
    code = main(args)
    out, err = capsys.readouterr()
    assert code == 2, (args, out, err)
    assert out == ""
    assert "Traceback" not in err
    return err.splitlines()


def test_the_walk_finds_the_commands_people_use() -> None:
    found = {" ".join(path) for path in EVERY_COMMAND}
    assert {"sites", "sites validate", "boxes", "alerts ack", "silence add", "sim fault cut", "cloud serve"} <= found
    assert len(WITH_REQUIRED) >= 8


@pytest.mark.parametrize("path", EVERY_COMMAND, ids=" ".join)
def test_an_unknown_option_is_one_line_plus_the_usage(
    path: tuple[str, ...], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = usage_error([*path, "--no-such-option"], capsys)

    assert lines[0] == "error: no such option: --no-such-option"
    assert lines[1].startswith(f"usage: edgefleet {' '.join(path)} [OPTIONS]")
    assert lines[1].endswith(f"('edgefleet {' '.join(path)} --help' says more)")
    assert len(lines) == 2


@pytest.mark.parametrize(("path", "required"), WITH_REQUIRED, ids=[" ".join(p) for p, _ in WITH_REQUIRED])
def test_a_missing_required_parameter_is_one_line_plus_the_usage(
    path: tuple[str, ...], required: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = usage_error(list(path), capsys)

    assert lines[0].startswith(("error: missing option", "error: missing argument")), lines
    assert any(name.replace("_", "-") in lines[0].lower() or name in lines[0] for name in required), lines
    assert lines[1].startswith(f"usage: edgefleet {' '.join(path)} [OPTIONS]")
    assert len(lines) == 2


def test_silence_add_without_a_reason_names_the_option(capsys: pytest.CaptureFixture[str]) -> None:
    lines = usage_error(["silence", "add", "--site", "X", "--for", "2h"], capsys)

    assert lines == [
        "error: missing option '--comment' / '-c'",
        "usage: edgefleet silence add [OPTIONS]  ('edgefleet silence add --help' says more)",
    ]


def test_an_unknown_command_is_one_line_plus_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    assert usage_error(["frobnicate"], capsys) == [
        "error: no such command 'frobnicate'",
        "usage: edgefleet [OPTIONS] COMMAND [ARGS]...  ('edgefleet --help' says more)",
    ]
    assert usage_error(["sim", "fault", "melt"], capsys)[0] == "error: no such command 'melt'"


def test_a_bad_value_is_a_usage_error_too(capsys: pytest.CaptureFixture[str]) -> None:
    lines = usage_error(["alerts", "--limit", "many"], capsys)

    assert lines[0].startswith("error: invalid value for '--limit': ")
    assert len(lines) == 2

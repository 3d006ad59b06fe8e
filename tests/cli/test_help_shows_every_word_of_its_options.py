"""Every option's help, as ``edgefleet ... --help`` prints it, keeps its words: rich reads ``[...]`` in typer help as
markup and drops what looks like a tag, so ``[env EDGEFLEET_LISTEN, default 127.0.0.1:8000]`` vanished from
``edgefleet cloud serve --help`` (which docs/operations.md names as the list of the controller's settings). Walks
every command, so a new option is covered without touching this file."""

from __future__ import annotations

import re

import pytest
from typer._click.core import Command

from edgefleet.cli import main
from tests.cli.test_usage_errors_are_one_line import commands

# Words a help text in brackets carries: the settings (EDGEFLEET_*) and the paths or values shown as defaults.
BRACKETED = re.compile(r"\[([^\[\]]*)\]")


def bracketed_words(command: Command) -> set[str]:
    words: set[str] = set()
    for param in command.params:
        help_text = getattr(param, "help", None) or ""
        for inside in BRACKETED.findall(help_text):
            words |= {w.strip(".,;:()'") for w in inside.split() if len(w.strip(".,;:()'")) > 3}
    return words


WITH_BRACKETS = [(path, bracketed_words(c)) for path, c in commands() if path[0] != "agent"]
WITH_BRACKETS = [(path, words) for path, words in WITH_BRACKETS if words]


def test_some_options_say_their_setting_in_brackets() -> None:
    # The walk below must have something to check: 'cloud serve' names its variables this way.
    assert any(path == ("cloud", "serve") and "EDGEFLEET_LISTEN" in words for path, words in WITH_BRACKETS)


@pytest.mark.parametrize(("path", "words"), WITH_BRACKETS, ids=[" ".join(p) for p, _ in WITH_BRACKETS])
def test_the_help_prints_what_an_option_says_in_brackets(
    path: tuple[str, ...], words: set[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line an option: no word is cut by wrapping
    assert main([*path, "--help"]) == 0
    shown = capsys.readouterr().out
    missing = sorted(w for w in words if w not in shown)
    assert not missing, f"'edgefleet {' '.join(path)} --help' drops {missing}:\n{shown}"

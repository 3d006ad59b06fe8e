"""How the CLI speaks to people and to scripts: tables with rich, the API's objects as JSON or YAML (``-o``), and
failures as one line - what, where, what to try - with exit code 1 (2 for a usage error) and never a traceback.

Every command module prints through here. On a terminal a table is rich's (boxed, coloured, as wide as the
terminal); piped or redirected, it is plain whitespace-aligned columns without colour, as wide as its content:
never folded or cut to an assumed 80 columns.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Collection
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any, Final, NoReturn

import typer

if TYPE_CHECKING:
    from rich.console import Console, RenderableType
    from rich.table import Table

# Not a terminal: lay lines out this wide, so that rich never folds or crops what a script reads.
PIPE_WIDTH: Final = 100_000


def err_console() -> Console:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


class OutputFormat(StrEnum):
    """``-o`` as kubectl means it."""

    TABLE = "table"  # what a person reads
    WIDE = "wide"  # the table with more columns (full ids, times)
    JSON = "json"  # the API's objects as it returned them
    YAML = "yaml"


OutputOption = Annotated[
    OutputFormat,
    typer.Option(
        "--output", "-o", help="table, wide (more columns), json or yaml (the API's objects).", case_sensitive=False
    ),
]


def console() -> Console:
    """A console on stdout as it is now: rich's own on a terminal; piped, no colour and no width limit."""
    from rich.console import Console

    if sys.stdout.isatty():
        return Console()
    return Console(width=PIPE_WIDTH, no_color=True, highlight=False)


def new_table(*columns: str, right: Collection[str] = (), wrap: Collection[str] = ()) -> Table:
    """A table for ``show``: boxed on a terminal, plain columns two spaces apart when piped. Cells stay on one
    line except in the ``wrap`` columns; ``right`` columns are right-aligned (numbers)."""
    from rich.table import Table

    if sys.stdout.isatty():
        table = Table(header_style="bold")
    else:
        table = Table(box=None, header_style="", show_edge=False, pad_edge=False, padding=(0, 2, 0, 0))
    for column in columns:
        table.add_column(column, no_wrap=column not in wrap, justify="right" if column in right else "left")
    return table


def is_terminal() -> bool:
    return sys.stdout.isatty()


def show(*renderables: RenderableType) -> None:
    """Print tables and lines of text (rich markup) on stdout; a line is never wrapped."""
    out = console()
    for renderable in renderables:
        out.print(renderable, highlight=False, soft_wrap=isinstance(renderable, str))


def print_data(data: Any, fmt: OutputFormat) -> None:
    """The API's objects as they came, for scripts: JSON (indented) or YAML, keys in the API's order."""
    if fmt is OutputFormat.JSON:
        sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")
    else:
        import yaml

        sys.stdout.write(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))


def is_data(fmt: OutputFormat) -> bool:
    return fmt in (OutputFormat.JSON, OutputFormat.YAML)


def fail(message: str, *, hint: str | None = None, code: int = 1) -> NoReturn:
    """Print ``error: message`` (and ``hint: ...``) on stderr and exit."""
    err = err_console()
    err.print(f"[bold red]error:[/] {message}")
    if hint:
        err.print(f"[bold]hint:[/] {hint}")
    raise typer.Exit(code)


def report_click_error(exc: typer.TyperException) -> int:
    """A usage error as one ``error:`` line plus the command's usage line, on stderr; returns the exit code
    (2 for a usage error). A group called without its command shows its help, as click does."""
    from rich.markup import escape
    from typer._click.exceptions import NoArgsIsHelpError, UsageError

    if isinstance(exc, NoArgsIsHelpError):
        exc.show()
        return exc.exit_code
    message = exc.format_message().strip().rstrip(".")
    err = err_console()
    err.print(f"[bold red]error:[/] {escape(message[:1].lower() + message[1:])}")
    ctx = exc.ctx if isinstance(exc, UsageError) else None
    if ctx is not None:
        usage = ctx.get_usage().strip()
        usage = "usage:" + usage.removeprefix("Usage:")
        err.print(escape(f"{usage}  ('{ctx.command_path} --help' says more)"))
    return exc.exit_code

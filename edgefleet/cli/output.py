"""How the CLI speaks to people: tables with rich, and failures as one line - what, where, what to try -
with exit code 1 and never a traceback."""

from __future__ import annotations

from typing import NoReturn

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def fail(message: str, *, hint: str | None = None, code: int = 1) -> NoReturn:
    """Print ``error: message`` (and ``hint: ...``) on stderr and exit."""
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    if hint:
        err_console.print(f"[bold]hint:[/] {hint}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)

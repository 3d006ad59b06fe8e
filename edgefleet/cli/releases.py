"""``edgefleet releases validate [PATH...]`` and ``edgefleet releases list [PATH...]``: the release manifests in
releases/ (or the files and directories given), checked against the site inventory without a controller.

``validate`` prints every problem as file:line: field: reason and exits 1, like ``edgefleet sites validate``;
what is accepted but deserves a look (an image given by tag only) is printed as ``warning:`` lines on stderr.
``list`` shows each release's app, version and whether its images are pinned by digest (``-o json|yaml`` for
scripts). ``edgefleet.cli.app`` calls ``register``; the loader is imported inside the commands so that the
``edgefleet`` command starts fast.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Final

import typer

from edgefleet.cli.fleet import plural
from edgefleet.cli.output import OutputFormat, OutputOption

if TYPE_CHECKING:
    from edgefleet.inventory import Inventory
    from edgefleet.releases import Release

HINT: Final = "fix these and run 'edgefleet releases validate' again; docs/releases.md has the fields"

PathsArgument = Annotated[
    list[Path] | None,
    typer.Argument(metavar="[DIR|FILE]...", help="Release files, or directories of them (default: releases)."),
]
SitesOption = Annotated[
    Path,
    typer.Option(
        "--sites",
        envvar="EDGEFLEET_SITES_DIR",
        help="The site inventory the releases name.",
        show_envvar=True,
        metavar="DIR",
    ),
]


def register(app: typer.Typer) -> None:
    releases = typer.Typer(help="Check and list the release manifests.", add_completion=False)
    releases.command("validate")(releases_validate)
    releases.command("list")(releases_list)
    app.add_typer(
        releases,
        name="releases",
        help="'validate' checks the release manifests against the inventory; 'list' shows them.",
    )


def _load(paths: list[Path] | None, sites: Path) -> tuple[list[Release], Inventory]:
    from rich.markup import escape

    from edgefleet.cli.output import fail
    from edgefleet.errors import InventoryError, ReleaseError
    from edgefleet.inventory import load_inventory
    from edgefleet.releases import load_releases

    try:
        inventory = load_inventory(sites)
    except InventoryError as exc:
        fail(escape(str(exc)), hint="the releases are checked against it: run 'edgefleet sites validate' first")
    try:
        return load_releases(paths or [Path("releases")], inventory), inventory
    except ReleaseError as exc:
        lines = "\n".join(f"  {p}" for p in exc.problems)
        fail(escape(f"the releases have {plural(len(exc.problems), 'problem')}:\n{lines}"), hint=HINT)


def releases_validate(paths: PathsArgument = None, sites: SitesOption = Path("sites")) -> None:
    """Check every release manifest without starting anything: every problem as file:line: field: reason."""
    from rich.markup import escape

    from edgefleet.cli.output import err_console, show

    releases, inventory = _load(paths, sites)
    warnings = [w for release in releases for w in release.warnings]
    err = err_console()
    for warning in warnings:
        err.print(f"[bold yellow]warning:[/] {escape(str(warning))}")
    show(
        f"{plural(len(releases), 'release')} checked against {plural(len(inventory.sites), 'site')}: OK"
        + (f" ({plural(len(warnings), 'warning')})" if warnings else "")
    )


def releases_list(
    paths: PathsArgument = None, sites: SitesOption = Path("sites"), output: OutputOption = OutputFormat.TABLE
) -> None:
    """Every release with its app, version and whether its images are pinned by digest."""
    from rich.markup import escape

    from edgefleet.cli.output import is_data, new_table, print_data, show

    releases, _ = _load(paths, sites)
    rows = [
        {
            "name": r.name,
            "app": r.app,
            "version": r.version,
            "images": dict(r.images),
            "pinned": r.pinned,
            "model": None if r.model is None else f"{r.model.name} {r.model.version}",
            "rollback": r.rollback,
            "file": r.source,
        }
        for r in sorted(releases, key=lambda r: (r.app, r.name))
    ]
    if is_data(output):
        print_data(rows, output)
        return
    wide = output is OutputFormat.WIDE
    table = new_table("name", "app", "version", "images", "model", *(["references", "file"] if wide else []))
    for row in rows:
        images = row["images"]
        assert isinstance(images, dict)
        table.add_row(
            escape(str(row["name"])),
            str(row["app"]),
            escape(str(row["version"])),
            "pinned" if row["pinned"] else "[yellow]by tag[/]",
            escape(str(row["model"] or "-")),
            *([escape(", ".join(images.values())), escape(str(row["file"]))] if wide else []),
        )
    show(table)

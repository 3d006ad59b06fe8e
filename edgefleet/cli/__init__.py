"""The ``edgefleet`` command line: one command with subcommands for every part of the system.

``edgefleet agent ...`` is dispatched before anything else is imported: the agent runs on every box and must
stay small, so it has its own argparse front end (``edgefleet.agent.cli``) and never loads typer, rich or the
controller's stack. Every other subcommand is a typer app; each module imports its heavy dependencies inside
its commands so that ``edgefleet sites`` starts fast.
"""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args[:1] == ["agent"]:
        from edgefleet.agent.cli import main as agent_main

        return agent_main(args[1:])
    from edgefleet.cli.app import run

    return run(args)


if __name__ == "__main__":
    sys.exit(main())

"""``python -m edgefleet.cli``: the same as the ``edgefleet`` command (the agent's tests and unit files use it)."""

import sys

from edgefleet.cli import main

sys.exit(main())

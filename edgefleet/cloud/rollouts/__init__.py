"""Staged rollouts of a release to the fleet's sites (issue 15): planning, gates and deciding (pure), and the
shell that reconciles them. ``planning`` and ``windows`` are described in docs/rollouts.md."""

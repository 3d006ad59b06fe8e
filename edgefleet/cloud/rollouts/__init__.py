"""Staged rollouts of a release to the fleet's sites (issue 15): planning, gates and the state machine are pure;
the reconciler is their shell."""

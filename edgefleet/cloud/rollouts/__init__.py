"""Staged rollouts of a release to the fleet's sites (issue 15): rendering a release into one site's Kubernetes
manifests (``rendering``); planning, gates and decisions beside it."""

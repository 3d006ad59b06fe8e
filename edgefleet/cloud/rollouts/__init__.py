"""Staged rollouts of a release to the fleet's sites (issue 15): planning (``planning``, ``windows``), gates
(``gates``) and decisions (``deciding``), all pure; rendering a release into one site's Kubernetes manifests
(``rendering``, pure); the shell that reconciles them comes next. docs/rollouts.md and docs/releases.md describe them."""

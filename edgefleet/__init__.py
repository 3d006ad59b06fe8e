"""edgefleet: fleet manager for KubeEdge edge sites and their GPU boxes.

This package root holds the shared model and protocol (ids, topics, wire messages, the site inventory, the clock).
It does no I/O beyond reading inventory files and imports neither ``edgefleet.cloud`` nor ``edgefleet.agent``:
both sides, and the simulator, depend on it, never on each other.
"""

__version__ = "0.1.0"

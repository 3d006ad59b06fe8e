"""The ``edgefleet`` command line."""

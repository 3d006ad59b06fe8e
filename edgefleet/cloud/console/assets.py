"""Where the console's assets lie in the installed package; read by the API's app factory, which mounts them."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

__all__ = ["static_dir"]


def static_dir() -> Path:
    """The folder of the console's assets (a real folder: setuptools installs package data as files)."""
    return Path(str(files("edgefleet.cloud.console") / "static"))

"""The shipped inventory, loaded once per test module that checks releases against it."""

from __future__ import annotations

import pytest

from edgefleet.inventory import Inventory, load_inventory
from tests.conftest import SITES


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return load_inventory(SITES)

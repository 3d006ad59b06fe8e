"""Fixtures of the delivery tests: a recording receiver, senders on a real HTTP client, an outbox on each
database back end."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from edgefleet.cloud.alerting.delivery import http_client
from edgefleet.cloud.alerting.outbox import Outbox
from edgefleet.cloud.store import Store
from tests.support.receivers import RecordingReceiver, recording_receiver


@pytest.fixture
def receiver() -> Iterator[RecordingReceiver]:
    with recording_receiver() as r:
        yield r


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    # A short timeout keeps the timeout tests fast; the senders' default is 5 s.
    with http_client(timeout_s=1.0) as c:
        yield c


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    store = Store(database_url)
    yield store
    store.close()


@pytest.fixture
def outbox(store: Store) -> Outbox:
    outbox = Outbox(store)
    outbox.create_schema()
    return outbox

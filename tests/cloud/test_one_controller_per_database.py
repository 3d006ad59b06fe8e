"""One controller per SQLite database: a second controller on the same file is refused before it opens anything,
naming the holder (host, pid, since); a clean stop or a failed start lets the next one in at once
(edgefleet.cloud.leading, through the Controller). A holder killed with -9 is in tests/cli/test_cloud_serve.py.
PostgreSQL elects a leader among replicas instead: tests/cloud/test_one_leader_among_replicas.py."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edgefleet.clock import FakeClock
from edgefleet.cloud.controller import Controller
from edgefleet.cloud.leading import (
    LOCK_FILE_SUFFIX,
    DatabaseHeldError,
    Holder,
    describe_holder,
    holder_tag,
    parse_holder_tag,
    take_database_lock,
)
from edgefleet.cloud.settings import Settings
from edgefleet.errors import InventoryError
from tests.cloud.builders import T0, write_sites

# T0 as the refusal shows it.
T0_SHOWN = "2027-01-15 08:00:00 UTC"


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    # The broker is never reached: a controller that is built but not started connects to nothing but its database.
    return Settings(database_url=f"sqlite:///{tmp_path / 'edgefleet.db'}", sites_dir=write_sites(tmp_path / "sites"))


def me(since: float) -> Holder:
    """This process as a refusal names it (the host cut to fit the tag, the time to whole seconds)."""
    holder = parse_holder_tag(holder_tag(Holder(socket.gethostname(), os.getpid(), since)))
    assert holder is not None
    return holder


def test_a_second_controller_is_refused_naming_the_holder(settings: Settings) -> None:
    first = Controller(settings, clock=FakeClock(T0))
    try:
        with pytest.raises(DatabaseHeldError) as refused:
            Controller(settings, clock=FakeClock(T0 + 60))

        holder = me(T0)
        assert refused.value.holder == holder
        assert str(refused.value) == (
            f"another controller holds the database {first.store.url_shown}: "
            f"host {holder.host}, pid {holder.pid}, since {T0_SHOWN}"
        )
        # The refusal took nothing from the holder: it still holds, and its database still answers.
        with pytest.raises(DatabaseHeldError):
            Controller(settings, clock=FakeClock(T0 + 120))
        first.store.check()
    finally:
        first.stop()


def test_after_a_clean_stop_a_successor_starts_at_once(settings: Settings) -> None:
    first = Controller(settings, clock=FakeClock(T0))
    first.stop()

    second = Controller(settings, clock=FakeClock(T0 + 1))
    try:
        with pytest.raises(DatabaseHeldError) as refused:
            Controller(settings, clock=FakeClock(T0 + 2))
        assert refused.value.holder == me(T0 + 1)  # the successor is named, not the one that stopped
    finally:
        second.stop()
    second.stop()  # twice is harmless, and still frees the database
    Controller(settings, clock=FakeClock(T0 + 3)).stop()


def test_a_failed_start_lets_the_next_controller_in(settings: Settings, tmp_path: Path) -> None:
    broken = write_sites(tmp_path / "broken-sites")
    (broken / "broken.yaml").write_text("apiVersion: edgefleet.io/v1\nkind: Site\nmetadata: {name: Bad_Name}\n")
    with pytest.raises(InventoryError):
        Controller(Settings(database_url=settings.database_url, sites_dir=broken))

    Controller(settings).stop()


def test_the_refusal_names_no_holder_it_cannot_read(tmp_path: Path) -> None:
    # A holder that has locked the file but not yet written its name (or another program holding it).
    import fcntl

    database = tmp_path / "edgefleet.db"
    with open(f"{database}{LOCK_FILE_SUFFIX}", "w") as other:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(DatabaseHeldError) as refused:
            take_database_lock(f"sqlite:///{database}", clock=FakeClock(T0))

    assert refused.value.holder is None
    assert str(refused.value) == (
        f"another controller holds the database sqlite:///{database}: "
        "its host and pid are not known (it may be starting, or be another program)"
    )


def test_the_lock_file_names_the_holder_while_held_and_nobody_after(tmp_path: Path) -> None:
    database = tmp_path / "edgefleet.db"
    lock = take_database_lock(f"sqlite:///{database}", clock=FakeClock(T0))
    lock_file = Path(f"{database}{LOCK_FILE_SUFFIX}")
    assert parse_holder_tag(lock_file.read_text()) == me(T0)

    lock.release()
    lock.release()

    assert lock_file.read_text() == ""  # emptied, never deleted: deleting a lock file lets two processes in


def test_in_memory_databases_are_each_their_own(tmp_path: Path) -> None:
    sites = write_sites(tmp_path / "sites")
    first = Controller(Settings(database_url="sqlite://", sites_dir=sites))
    second = Controller(Settings(database_url="sqlite://", sites_dir=sites))
    first.stop()
    second.stop()


# --- the holder's tag --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "",
        "\n",
        "edgefleet",
        "edgefleet 12 1800000000",
        "psql 12 1800000000 host",  # another application
        "edgefleet x 1800000000 host",
        "edgefleet 12 -5 host",
    ],
)
def test_a_tag_of_no_holder_names_none(text: str) -> None:
    assert parse_holder_tag(text) is None


@pytest.mark.parametrize(
    ("host", "shown"),
    [
        ("ctrl-01", "ctrl-01"),
        ("ctrl 01\tsh", "ctrl_01_sh"),  # spaces would split the tag
        ("控制器", "___"),  # PostgreSQL keeps ASCII only
        ("", "_"),
    ],
)
def test_a_tag_names_the_holder(host: str, shown: str) -> None:
    assert parse_holder_tag(holder_tag(Holder(host, 4242, T0 + 0.9))) == Holder(shown, 4242, T0)


@given(
    host=st.text(max_size=300),
    pid=st.integers(min_value=0, max_value=2**31 - 1),
    since=st.floats(min_value=0, max_value=2**40, allow_nan=False),
)
def test_every_tag_fits_an_application_name_and_reads_back(host: str, pid: int, since: float) -> None:
    tag = holder_tag(Holder(host, pid, since))

    assert len(tag) <= 63
    assert tag.isascii()
    holder = parse_holder_tag(tag)
    assert holder is not None
    assert (holder.pid, holder.since) == (pid, float(int(since)))
    assert holder.host
    assert " " not in holder.host


def test_the_refusal_says_when_in_utc() -> None:
    assert describe_holder(Holder("ctrl-01", 7, T0)) == f"host ctrl-01, pid 7, since {T0_SHOWN}"

"""The alert store keeps every firing of an alert as it was (details, labels, muting, who and when) and the
silences, on SQLite and on PostgreSQL; lists come newest first and filter as the API asks."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from edgefleet.cloud.alerting.alerts import AlertKey, AlertKind, Severity, StoredAlert, alert_id
from edgefleet.cloud.alerting.silences import Silence
from edgefleet.cloud.alerting.store import AlertStore
from edgefleet.cloud.store import Store
from edgefleet.ids import BoxId, SiteId

T0 = 1_800_000_000.0


@pytest.fixture
def alerts(database_url: str) -> Iterator[AlertStore]:
    store = Store(database_url)
    alert_store = AlertStore(store)
    alert_store.create_schema()
    alert_store.create_schema()  # twice: existing tables are left as they are
    yield alert_store
    store.close()


def stored(kind: AlertKind, site: str, box: str | None, *, at: float, detail: str | None = None) -> StoredAlert:
    key = AlertKey(kind, SiteId(site), BoxId(box) if box else None, detail)
    return StoredAlert(
        id=alert_id(key, at),
        key=key,
        severity=Severity.CRITICAL,
        summary=f"{kind} at {site}",
        description="what it means\nand what to do",
        labels={"kind": str(kind), "site": site, "region": "east"},
        details={
            "silent_boxes": ("a-01", "a-02"),
            "seen": 20,
            "share": 0.85,
            "recovering_since": None,
            "reason": "heartbeat-timeout",
            "flag": True,
        },
        started_at=at - 30.0,
        fired_at=at,
        updated_at=at,
    )


def test_an_alert_reads_back_as_it_was_saved_through_its_lifecycle(alerts: AlertStore) -> None:
    fired = stored(AlertKind.SITE_UNREACHABLE, "alpha", None, at=T0)
    alerts.save([fired])
    assert alerts.get(fired.id) == fired
    assert alerts.active() == {fired.key: fired}

    acked = dataclasses.replace(fired, state="acknowledged", acknowledged_by="li.wei", acknowledged_at=T0 + 5)
    muted = dataclasses.replace(acked, muted="silenced", muted_by=("silence-1", "silence-2"), updated_at=T0 + 6)
    alerts.save([acked, muted])  # the last of an id wins
    assert alerts.get(fired.id) == muted
    resolved = dataclasses.replace(muted, state="resolved", resolved_by="edgefleet", resolved_at=T0 + 60)
    alerts.save([resolved])
    assert alerts.get(fired.id) == resolved
    assert alerts.active() == {}
    assert alerts.latest([fired.key]) == {fired.key: resolved}


def test_lists_are_newest_first_and_filtered(alerts: AlertStore) -> None:
    lost = stored(AlertKind.BOX_LOST, "alpha", "alpha-01", at=T0)
    hot = stored(AlertKind.GPU_OVERHEAT, "alpha", "alpha-02", at=T0 + 10, detail="gpu-0")
    other = stored(AlertKind.BOX_LOST, "beta", "beta-01", at=T0 + 20)
    again = stored(AlertKind.BOX_LOST, "alpha", "alpha-01", at=T0 + 30)  # the same problem, back after a resolve
    gone = dataclasses.replace(lost, state="resolved", resolved_by="edgefleet", resolved_at=T0 + 25)
    alerts.save([gone, hot, other, again])

    assert [a.id for a in alerts.find()] == [again.id, other.id, hot.id, gone.id]
    assert [a.id for a in alerts.find(site=SiteId("alpha"), kind=AlertKind.BOX_LOST)] == [again.id, gone.id]
    assert [a.id for a in alerts.find(state="resolved")] == [gone.id]
    assert [a.id for a in alerts.find(sites={SiteId("beta")})] == [other.id]
    assert [a.id for a in alerts.find(limit=1)] == [again.id]
    assert alerts.active() == {again.key: again, other.key: other, hot.key: hot}
    assert alerts.latest([lost.key, AlertKey(AlertKind.DISK_FULL, SiteId("x"), BoxId("x-1"))]) == {lost.key: again}


def test_silences_are_kept_and_an_ended_one_says_by_whom(alerts: AlertStore) -> None:
    maintenance = Silence("silence-a", T0, T0 + 7200, "li.wei", "fan replacement", site=SiteId("alpha"))
    known_fault = Silence(
        "silence-b", T0 + 10, T0 + 600, "wang.fang", "known", box=BoxId("beta-01"), kind=AlertKind.GPU_ECC
    )
    alerts.add_silence(maintenance)
    alerts.add_silence(known_fault)
    assert [r.silence for r in alerts.silences()] == [known_fault, maintenance]

    alerts.end_silence("silence-a", at=T0 + 100, by="zhang.min")
    ended = alerts.get_silence("silence-a")
    assert ended is not None
    assert (ended.silence.ends_at, ended.planned_ends_at, ended.ended_by) == (T0 + 100, T0 + 7200, "zhang.min")
    assert (ended.state(T0 + 50), ended.state(T0 + 100), ended.state(T0 - 1)) == ("active", "expired", "pending")
    assert [r.silence.id for r in alerts.silences(ending_after=T0 + 200)] == ["silence-b"]
    assert alerts.get_silence("silence-c") is None


def test_ids_are_found_by_their_start_and_shown_as_short_as_is_unique(alerts: AlertStore) -> None:
    lost = stored(AlertKind.BOX_LOST, "alpha", "alpha-01", at=T0)
    twins = [
        dataclasses.replace(lost, id="abcdef0123-1"),
        dataclasses.replace(lost, id="abcdef0123-2", muted="inhibited", muted_by=("site-unreachable alpha",)),
        dataclasses.replace(lost, id="abcdef_%\\x"),  # LIKE's wildcards in an id match only themselves
    ]
    alerts.save([lost, *twins])

    assert {a.id for a in alerts.find(id_prefix="abcdef0123")} == {"abcdef0123-1", "abcdef0123-2"}
    assert [a.id for a in alerts.find(id_prefix="abcdef_%")] == ["abcdef_%\\x"]
    assert alerts.find(id_prefix="ABCDEF") == []  # ids are lowercase; SQLite's LIKE alone would ignore case
    assert [a.id for a in alerts.find(id_prefix="abcdef0123", muted=True)] == ["abcdef0123-2"]
    assert [a.id for a in alerts.find(id_prefix="abcdef0123", muted=False)] == ["abcdef0123-1"]
    assert alerts.short_ids([lost.id, "abcdef0123-1", "abcdef_%\\x"]) == {
        lost.id: lost.id[:8],
        "abcdef0123-1": "abcdef0123-1",
        "abcdef_%\\x": "abcdef_%",  # 8 characters at least
    }


def test_alert_ids_differ_early_even_for_one_problem_fired_again() -> None:
    key = AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), BoxId("alpha-01"))
    again = AlertKey(AlertKind.BOX_LOST, SiteId("alpha"), BoxId("alpha-02"))
    ids = [alert_id(key, T0), alert_id(key, T0 + 60), alert_id(again, T0)]

    assert len({i[:8] for i in ids}) == 3
    assert alert_id(key, T0) == ids[0]  # stable: reconciling twice makes the same row


def test_active_alerts_are_tallied_by_state_and_muting(alerts: AlertStore) -> None:
    cause = ("site-unreachable alpha",)
    alerts.save(
        [
            dataclasses.replace(
                stored(AlertKind.BOX_LOST, "alpha", f"alpha-0{i}", at=T0), muted="inhibited", muted_by=cause
            )
            for i in range(3)
        ]
        + [
            stored(AlertKind.SITE_UNREACHABLE, "alpha", None, at=T0),
            dataclasses.replace(stored(AlertKind.BOX_LOST, "beta", "beta-01", at=T0), state="acknowledged"),
            dataclasses.replace(stored(AlertKind.BOX_LOST, "beta", "beta-02", at=T0), state="resolved"),
        ]
    )

    assert [(t.state, t.muted, t.muted_by, t.count) for t in alerts.tally()] == [
        ("firing", "inhibited", cause, 3),
        ("acknowledged", None, (), 1),
        ("firing", None, (), 1),
    ]
    assert [(t.state, t.count) for t in alerts.tally(site=SiteId("beta"))] == [("acknowledged", 1)]
    assert alerts.tally(sites=[SiteId("gamma")]) == []


def test_silences_are_found_by_the_start_of_their_id(alerts: AlertStore) -> None:
    for suffix in ("abc1", "abc2", "def3"):
        alerts.add_silence(Silence(f"silence-{suffix}", T0, T0 + 60, "li.wei", "fan", site=SiteId("alpha")))

    assert {r.silence.id for r in alerts.silences(id_prefix="silence-abc")} == {"silence-abc1", "silence-abc2"}
    assert [r.silence.id for r in alerts.silences(id_prefix="silence-d")] == ["silence-def3"]

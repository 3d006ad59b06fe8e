"""Message bodies: a DingTalk markdown message always fits the byte limit and names or counts every alert; the
Alertmanager v2 alert objects carry the labels ops route by and RFC 3339 times; the webhook body has every alert."""

from __future__ import annotations

import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edgefleet.cloud.alerting import AlertKey, AlertKind, Channel, Severity, StoredAlert, rfc3339
from edgefleet.cloud.alerting.alerts import alert_id
from edgefleet.cloud.alerting.rendering import (
    Notice,
    Section,
    alertmanager_alert,
    render_alertmanager,
    render_dingtalk,
    render_webhook,
)
from edgefleet.ids import BoxId, SiteId
from tests.alerting.builders import LISTED, mentioned

T = 1_800_000_000.0  # 2027-01-15T08:00:00Z


def stored(site: str, box: int | None, summary: str = "", severity: Severity = Severity.CRITICAL) -> StoredAlert:
    kind = AlertKind.BOX_LOST if box is not None else AlertKind.SITE_UNREACHABLE
    key = AlertKey(kind, SiteId(site), BoxId(f"{site}-box-{box:03d}") if box is not None else None)
    labels = {"site": site, "region": "east", "kind": str(kind), "severity": str(severity)}
    if key.box:
        labels["box"] = key.box
    return StoredAlert(
        alert_id(key, T), key, severity, summary or f"Box {key.box} lost", "why", labels, {}, T - 30, T, T
    )


def resolved(alert: StoredAlert, not_back: tuple[str, ...] = ()) -> StoredAlert:
    details = {"not_back": not_back} if alert.key.kind == AlertKind.SITE_UNREACHABLE else {}
    return dataclasses.replace(alert, state="resolved", resolved_at=T + 600, resolved_by="edgefleet", details=details)


def text_of(body: bytes) -> str:
    payload = json.loads(body)
    assert payload["msgtype"] == "markdown"
    return str(payload["markdown"]["text"])


def test_a_site_message_lists_firing_first_and_the_resolve_with_who_did_not_come_back() -> None:
    site = stored("alpha", None, "Site Alpha (alpha) unreachable: 20 of 20 boxes silent")
    stragglers = tuple(f"alpha-box-{i:03d}" for i in range(12))
    notices = (Notice(resolved(site, stragglers), "resolved"), Notice(stored("alpha", 0), "firing"))
    rendered = render_dingtalk([Section("alpha", notices)], max_bytes=19_000, timezone="Asia/Shanghai")
    text = text_of(rendered.body)
    lines = text.splitlines()
    assert lines[0] == "### 🔴 alpha: 1 firing, 1 resolved"
    assert lines[2] == "#### alpha (east): 1 firing, 1 resolved"
    assert lines[3] == "- 🔴 Box alpha-box-000 lost · since 01-15 15:59:30"  # Beijing time
    assert lines[4].startswith("- ✅ Site Alpha (alpha) unreachable: 20 of 20 boxes silent · resolved 01-15 16:10:00")
    assert lines[4].endswith("12 did not come back: " + ", ".join(stragglers[:10]) + " and 2 more")
    assert rendered.listed == 2


def test_a_huge_site_is_cut_to_what_fits_and_the_rest_is_counted() -> None:
    notices = tuple(Notice(stored("alpha", i, "Box lost: " + "x" * 150), "firing") for i in range(500))
    rendered = render_dingtalk([Section("alpha", notices)], max_bytes=19_000, timezone="UTC")
    text = text_of(rendered.body)
    assert len(rendered.body) <= 19_000
    assert rendered.listed == 25  # a phone screen per site
    assert "- … and 475 more (475 firing, 0 resolved)" in text
    assert mentioned(text) == 500


def test_a_digest_of_very_many_sites_counts_the_sites_it_cannot_list() -> None:
    sections = [Section(f"site-{i:04d}", (Notice(stored(f"site-{i:04d}", 0), "firing"),)) for i in range(1000)]
    rendered = render_dingtalk(sections, max_bytes=19_000, timezone="UTC")
    text = text_of(rendered.body)
    assert len(rendered.body) <= 19_000
    assert text.startswith("### 🔴 1000 sites: 1000 firing, 0 resolved")
    assert "more sites (" in text
    assert mentioned(text) == 1000


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(min_value=1, max_value=60),
            st.text(alphabet="ab 中文转运中心🚚", max_size=180),
            st.sampled_from(list(Severity)),
            st.booleans(),
        ),
        min_size=1,
        max_size=120,
    ),
    st.sampled_from([2_000, 5_000, 19_000, 20_000]),
)
def test_a_dingtalk_message_always_fits_and_names_or_counts_every_alert(
    sites: list[tuple[int, str, Severity, bool]], max_bytes: int
) -> None:
    sections = []
    for s, (count, summary, severity, done) in enumerate(sites):
        alerts = [stored(f"site-{s:03d}", i, summary, severity) for i in range(count)]
        notices = tuple(
            Notice(resolved(a), "resolved") if done and i % 2 else Notice(a, "firing") for i, a in enumerate(alerts)
        )
        sections.append(Section(f"site-{s:03d}", notices))
    rendered = render_dingtalk(sections, max_bytes=max_bytes, timezone="Asia/Shanghai")
    assert len(rendered.body) <= max_bytes
    text = text_of(rendered.body)
    assert mentioned(text) == sum(len(s.notices) for s in sections)
    assert len(LISTED.findall(text)) == rendered.listed


def test_alertmanager_alerts_carry_the_routing_labels_and_rfc3339_times() -> None:
    firing = stored("alpha", 7)
    assert alertmanager_alert(firing, now=T) == {
        "labels": {
            "alertname": "box-lost",
            "site": "alpha",
            "region": "east",
            "kind": "box-lost",
            "severity": "critical",
            "box": "alpha-box-007",
        },
        "annotations": {"summary": "Box alpha-box-007 lost", "description": "why", "edgefleet_id": firing.id},
        "startsAt": "2027-01-15T07:59:30.000Z",
        "endsAt": "2027-01-15T08:04:00.000Z",  # four re-sends ahead: it expires there if we die
    }
    assert alertmanager_alert(resolved(firing), now=T + 900)["endsAt"] == "2027-01-15T08:10:00.000Z"
    body = json.loads(render_alertmanager([Notice(firing, "firing")], now=T))
    assert [a["labels"]["box"] for a in body] == ["alpha-box-007"]


@pytest.mark.parametrize(
    ("ts", "text"),
    [(T, "2027-01-15T08:00:00.000Z"), (T + 0.25, "2027-01-15T08:00:00.250Z"), (0.0, "1970-01-01T00:00:00.000Z")],
)
def test_rfc3339(ts: float, text: str) -> None:
    assert rfc3339(ts) == text


def test_the_webhook_body_has_every_alert_in_full() -> None:
    alerts = [Notice(stored("alpha", i), "firing") for i in range(3)] + [
        Notice(resolved(stored("alpha", 3)), "resolved")
    ]
    body = json.loads(
        render_webhook(
            [Section("alpha", tuple(alerts))],
            channel=Channel("webhook", "ops-hook"),
            message_id="webhook:ops-hook:7",
            now=T,
        )
    )
    assert (body["version"], body["id"], body["channel"], body["firing"], body["resolved"]) == (
        1,
        "webhook:ops-hook:7",
        "ops-hook",
        3,
        1,
    )
    assert [a["notice"] for a in body["alerts"]] == ["firing", "firing", "firing", "resolved"]
    last = body["alerts"][-1]
    assert (last["state"], last["resolvedAt"], last["fingerprint"]) == (
        "resolved",
        "2027-01-15T08:10:00.000Z",
        alerts[3].alert.key.fingerprint,
    )

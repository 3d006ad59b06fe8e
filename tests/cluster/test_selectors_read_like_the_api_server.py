"""Label and field selectors match what the API server's grammar says (apimachinery labels/fields.ParseSelector)."""

from __future__ import annotations

import pytest

from simulator.cluster.resources import NODES, PODS
from simulator.cluster.selectors import SelectorError, parse_fields, parse_labels

LABELS = {"app": "web", "tier": "front", "apps.kubeedge.io/belonging-to": "site-01", "node-role.kubernetes.io/edge": ""}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("", True),
        ("app=web", True),
        ("app==web", True),
        ("app=db", False),
        ("app!=db", True),
        ("missing!=x", True),  # != matches objects without the key
        ("app in (web, db)", True),
        ("app in (db)", False),
        ("app notin (db,cache)", True),
        ("missing notin (x)", True),
        ("app notin (web)", False),
        ("app", True),
        ("missing", False),
        ("!missing", True),
        ("!app", False),
        ("node-role.kubernetes.io/edge", True),
        ("node-role.kubernetes.io/edge=", True),
        ("apps.kubeedge.io/belonging-to=site-01,app=web", True),
        ("apps.kubeedge.io/belonging-to=site-01,app=db", False),
        (" app = web , tier in ( front ) ", True),
        ("app,tier notin (back),!missing", True),
    ],
)
def test_label_selector_matches(selector: str, matches: bool) -> None:
    assert parse_labels(selector).matches(LABELS) is matches


@pytest.mark.parametrize(("selector", "matches"), [("n>3", True), ("n>5", False), ("n<5", True), ("x>1", False)])
def test_gt_and_lt_compare_integers(selector: str, matches: bool) -> None:
    assert parse_labels(selector).matches({"n": "4", "x": "abc"}) is matches


@pytest.mark.parametrize(
    "selector",
    ["app in web", "app in (web", "=web", "app=web,", "app=we b", "bad key=1", "app>x", "-app=1", "a/b/c=1"],
)
def test_bad_label_selectors_are_refused(selector: str) -> None:
    with pytest.raises(SelectorError, match=r"unable to parse requirement|found"):
        parse_labels(selector)


POD = {"metadata": {"name": "web-1", "namespace": "default"}, "spec": {"nodeName": "box-1"}, "status": {}}


@pytest.mark.parametrize(
    ("selector", "matches"),
    [
        ("metadata.name=web-1", True),
        ("metadata.name==web-1", True),
        ("metadata.name!=web-1", False),
        ("spec.nodeName=box-1,metadata.namespace=default", True),
        ("spec.nodeName=box-2", False),
        ("spec.nodeName=", False),
        ("status.phase=", True),  # absent compares as ""
    ],
)
def test_field_selector_matches(selector: str, matches: bool) -> None:
    assert parse_fields(selector, PODS.fields()).matches(POD) is matches


def test_field_selector_escapes() -> None:
    selector = parse_fields(r"metadata.name=a\,b\=c", PODS.fields())
    assert selector.matches({"metadata": {"name": "a,b=c"}})


def test_unsupported_field_is_refused_in_the_servers_words() -> None:
    with pytest.raises(SelectorError, match=r"^field label not supported: spec.nodeName$"):
        parse_fields("spec.nodeName=box-1", NODES.fields())

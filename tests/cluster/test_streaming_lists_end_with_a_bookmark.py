"""A streaming list (``sendInitialEvents=true``: client-go's WatchList, what kubectl 1.35+ uses for ``rollout
status`` and ``wait``) answers the current objects as ADDED events, then a bookmark annotated
``k8s.io/initial-events-end``, then the changes; asked without ``resourceVersionMatch=NotOlderThan`` or without
bookmarks it is refused as the API server refuses it."""

from __future__ import annotations

import json
import threading
from typing import Any

import httpx

from simulator.cluster.nodes import ClusterBox
from simulator.cluster.resources import NODES
from simulator.cluster.server import INITIAL_EVENTS_END, BackgroundCluster
from simulator.cluster.store import Store

PARAMS = {
    "watch": "true",
    "sendInitialEvents": "true",
    "resourceVersionMatch": "NotOlderThan",
    "allowWatchBookmarks": "true",
    "timeoutSeconds": "5",
}


def test_the_initial_state_then_the_end_bookmark_then_the_changes(
    cluster: BackgroundCluster, boxes: list[ClusterBox]
) -> None:
    events: list[dict[str, Any]] = []
    ended = threading.Event()

    def watch() -> None:
        with httpx.stream("GET", f"{cluster.url}/api/v1/nodes", params=PARAMS, timeout=10) as answer:
            for line in answer.iter_lines():
                if line:
                    events.append(json.loads(line))
                    if events[-1]["type"] == "BOOKMARK":
                        ended.set()
                    if events[-1]["type"] == "MODIFIED":
                        return

    watcher = threading.Thread(target=watch)
    watcher.start()
    assert ended.wait(10), "no bookmark ended the initial events"
    node = boxes[0].name

    def relabel(store: Store) -> None:
        current = store.get(NODES, "", node)
        store.update(NODES, {**current, "metadata": {**current["metadata"], "labels": {"seen": "yes"}}})

    cluster.call(relabel)
    watcher.join(10)
    # Leave out the periodic bookmarks (every 0.2 s here): only the one that ends the initial events is annotated.
    events = [e for e in events if e["type"] != "BOOKMARK" or (e["object"]["metadata"].get("annotations") or {})]
    kinds = [e["type"] for e in events]
    assert kinds == ["ADDED"] * len(boxes) + ["BOOKMARK", "MODIFIED"]
    assert {e["object"]["metadata"]["name"] for e in events[: len(boxes)]} == {b.name for b in boxes}
    end = events[len(boxes)]["object"]["metadata"]
    assert end["annotations"] == {INITIAL_EVENTS_END: "true"}
    assert int(end["resourceVersion"]) >= max(int(e["object"]["metadata"]["resourceVersion"]) for e in events[:-2])


def test_a_streaming_list_needs_not_older_than_and_bookmarks(cluster: BackgroundCluster) -> None:
    without_match = httpx.get(f"{cluster.url}/api/v1/nodes", params={**PARAMS, "resourceVersionMatch": ""}, timeout=10)
    assert without_match.status_code == 422
    assert "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan" in without_match.json()["message"]
    without_bookmarks = httpx.get(
        f"{cluster.url}/api/v1/nodes", params={**PARAMS, "allowWatchBookmarks": "false"}, timeout=10
    )
    assert without_bookmarks.status_code == 422

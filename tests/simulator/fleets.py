"""Test support for the simulator: small site inventories written to tmp_path (in the manifest format of
sites/), and a plain paho subscriber that watches every box topic the way the controller would."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion

from edgefleet import topics
from edgefleet.errors import MessageRejected
from edgefleet.messages import BoxStatus, Heartbeat, decode_heartbeat, decode_status
from tests.support.clusters import TEST_HOST, cluster_manifest, write_host_cluster
from tests.support.peers import wait_for


def write_inventory(
    directory: Path, *, sites: int, boxes_per_site: int, gpus_per_box: int = 1, central: bool = False
) -> list[str]:
    """``sites`` transfer centers site-01.. each with one edge node and GPU boxes (gpu-02 has two GPUs when
    ``gpus_per_box`` is 1), plus, when ``central``, central-01 with two cluster nodes. Returns the site ids."""
    directory.mkdir(parents=True, exist_ok=True)
    ids = []
    if sites:
        write_host_cluster(directory)
    for number in range(1, sites + 1):
        site = f"site-{number:02d}"
        ids.append(site)
        boxes = [f"    - name: {site}-edge-01\n      role: edge-node\n      model: Dell PowerEdge XR11\n"]
        for index in range(1, boxes_per_site):
            count = 2 if (index == 2 and gpus_per_box == 1) else gpus_per_box
            boxes.append(
                f"    - name: {site}-gpu-{index:02d}\n      role: gpu-box\n      model: Dell PowerEdge R750xa\n"
                f'      gpu:\n        model: NVIDIA L4\n        count: {count}\n        driverVersion: "550.90.07"\n'
            )
        _write_site(directory, site, "transfer-center", "".join(boxes))
    if central:
        site = "central-01"
        ids.append(site)
        boxes = [
            f"    - name: {site}-cp-{i:02d}\n      role: cluster-node\n      model: Dell PowerEdge R660\n"
            for i in (1, 2)
        ]
        _write_site(directory, site, "central", "".join(boxes), cluster=site)
        with (directory / f"{site}.yaml").open("a") as file:
            file.write("---\n" + cluster_manifest(site, "central"))
    return ids


def _write_site(directory: Path, site: str, kind: str, boxes: str, *, cluster: str = TEST_HOST) -> None:
    (directory / f"{site}.yaml").write_text(
        "apiVersion: edgefleet.io/v1\nkind: Site\n"
        f"metadata:\n  name: {site}\n"
        f'spec:\n  kind: {kind}\n  displayName: "{site}"\n  region: test\n  timezone: Asia/Shanghai\n'
        f"  cluster: {cluster}\n"
        "  heartbeat:\n    intervalSeconds: 10\n    missedBeats: 3\n"
        f"  boxes:\n{boxes}"
    )


@dataclass(frozen=True, slots=True)
class Seen:
    """One message as the watcher received it: monotonic and wall time of receipt, topic, payload."""

    at: float
    wall: float
    box: str
    channel: str
    payload: bytes
    retained: bool


class Watcher:
    """Subscribes to ``edgefleet/v1/boxes/#`` on the test broker and keeps every message it receives."""

    def __init__(self, port: int) -> None:
        self._lock = threading.Lock()
        self._seen: list[Seen] = []
        self._subscribed = threading.Event()
        self._client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"watcher-{uuid.uuid4().hex[:8]}",
            protocol=MQTTProtocolVersion.MQTTv5,
        )
        self._client.on_connect = self._on_connect
        self._client.on_subscribe = lambda *args: self._subscribed.set()
        self._client.on_message = self._on_message
        self._client.connect("127.0.0.1", port)
        self._client.loop_start()
        if not self._subscribed.wait(10):
            self.close()
            raise AssertionError("the watcher could not subscribe to the test broker")

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any, properties: Any) -> None:
        client.subscribe(f"{topics.PREFIX}/#", qos=1)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        parts = message.topic.split("/")
        with self._lock:
            self._seen.append(
                Seen(time.monotonic(), time.time(), parts[3], parts[4], bytes(message.payload), bool(message.retain))
            )

    def close(self) -> None:
        # Disconnect first: it wakes paho's network thread, which loop_stop otherwise waits out (up to 1 s).
        self._client.disconnect()
        self._client.loop_stop()

    def mark(self) -> int:
        """A point in the stream of messages; pass it as ``since`` to see only what came after."""
        with self._lock:
            return len(self._seen)

    def seen(self, box: str | None = None, channel: str | None = None, *, since: int = 0) -> list[Seen]:
        with self._lock:
            found = self._seen[since:]
        return [s for s in found if (box is None or s.box == box) and (channel is None or s.channel == channel)]

    def statuses(self, box: str | None = None, *, since: int = 0) -> list[BoxStatus]:
        return [decode_status(s.payload) for s in self.seen(box, "status", since=since) if s.payload]

    def heartbeats(self, box: str | None = None, *, since: int = 0) -> list[Heartbeat]:
        """The valid heartbeats; refused payloads are left out (see ``seen`` for every payload)."""
        found = []
        for s in self.seen(box, "heartbeat", since=since):
            try:
                found.append(decode_heartbeat(s.payload))
            except MessageRejected:
                continue
        return found

    def latest_status(self, box: str) -> BoxStatus | None:
        statuses = self.statuses(box)
        return statuses[-1] if statuses else None

    def wait_online(self, boxes: list[str], *, timeout: float = 10.0, since: int = 0) -> dict[str, BoxStatus]:
        """Wait until each box's latest status (after ``since``) says online; returns those statuses."""

        def check() -> dict[str, BoxStatus] | None:
            latest = {}
            for box in boxes:
                statuses = self.statuses(box, since=since)
                if not statuses or statuses[-1].state != "online":
                    return None
                latest[box] = statuses[-1]
            return latest

        return wait_for(check, timeout=timeout, what=f"{len(boxes)} box(es) online")

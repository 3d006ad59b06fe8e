"""The real agent process through a real Mosquitto: heartbeats in order, the retained online/offline status, the Last
Will on a crash, a clean stop, heartbeats kept across a broker restart, a broker that comes up late, and a login the
broker refuses."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from edgefleet.agent.link import BoxLink, BrokerAddress
from edgefleet.agent.reporting import BoxReporter
from edgefleet.agent.running import EXIT_CREDENTIALS_REFUSED
from edgefleet.clock import SystemClock
from edgefleet.messages import AppReport, BoxStatus, GpuReport, HostSample
from tests.agent.conftest import AgentProcess, Listener
from tests.support.peers import Mosquitto, mosquitto, wait_for

Listen = Callable[..., Listener]
StartAgent = Callable[..., AgentProcess]


def status_where(listener: Listener, box: str, **fields: object) -> Callable[[], BoxStatus | None]:
    def check() -> BoxStatus | None:
        for status in reversed(listener.statuses(box)):
            if all(getattr(status, k) == v for k, v in fields.items()):
                return status
        return None

    return check


def test_heartbeats_arrive_in_order_with_boot_and_retained_online(
    broker: Mosquitto, listen: Listen, start_agent: StartAgent
) -> None:
    listener = listen(broker.port)
    agent = start_agent("box-order", broker.url)
    wait_for(lambda: len(listener.heartbeats("box-order")) >= 6, what="six heartbeats")
    beats = listener.heartbeats("box-order")
    assert [b.seq for b in beats] == list(range(1, len(beats) + 1))
    boot = beats[0].boot
    assert {b.boot for b in beats} == {boot}
    assert all(b.box == "box-order" and b.site == "test-site" and b.interval_s == 0.2 for b in beats)
    assert [b.sent_at for b in beats] == sorted(b.sent_at for b in beats)
    assert all(b.host.memory_total_bytes for b in beats)
    assert not beats[0].gpu.available
    assert beats[0].gpu.reason is not None

    # A controller that subscribes later still learns the box is online: the status is retained.
    late = listen(broker.port)
    online = wait_for(status_where(late, "box-order", state="online"), what="retained online")
    assert (online.boot, online.session, online.reason) == (boot, 1, "connected")
    assert [m.retained for m in late.messages() if m.topic.endswith("/status")] == [True]
    assert "Connected box to broker" in agent.log()


def test_sigkill_makes_the_broker_deliver_the_will(broker: Mosquitto, listen: Listen, start_agent: StartAgent) -> None:
    listener = listen(broker.port)
    agent = start_agent("box-crash", broker.url)
    online = wait_for(status_where(listener, "box-crash", state="online"), what="online")
    agent.kill()
    will = wait_for(status_where(listener, "box-crash", state="offline"), timeout=5, what="the will")
    assert will.reason == "connection-lost"
    assert (will.boot, will.session) == (online.boot, online.session)
    retained = wait_for(status_where(listen(broker.port), "box-crash", state="offline"), what="retained offline")
    assert retained.reason == "connection-lost"


def test_sigterm_says_offline_and_exits_zero(broker: Mosquitto, listen: Listen, start_agent: StartAgent) -> None:
    listener = listen(broker.port)
    agent = start_agent("box-stop", broker.url)
    online = wait_for(status_where(listener, "box-stop", state="online"), what="online")
    wait_for(lambda: listener.heartbeats("box-stop"), what="a heartbeat")
    agent.signal(signal.SIGTERM)
    assert agent.wait() == 0
    offline = wait_for(status_where(listener, "box-stop", state="offline"), what="offline")
    assert (offline.reason, offline.boot, offline.session) == ("shutdown", online.boot, online.session)
    # The clean DISCONNECT suppresses the will: the retained status stays "shutdown".
    retained = wait_for(status_where(listen(broker.port), "box-stop", state="offline"), what="retained offline")
    assert retained.reason == "shutdown"
    assert "Stopped box agent" in agent.log()
    assert "Traceback" not in agent.log()


def test_sigint_stops_the_same_way(broker: Mosquitto, listen: Listen, start_agent: StartAgent) -> None:
    listener = listen(broker.port)
    agent = start_agent("box-ctrl-c", broker.url)
    wait_for(status_where(listener, "box-ctrl-c", state="online"), what="online")
    agent.signal(signal.SIGINT)
    assert agent.wait() == 0
    wait_for(status_where(listener, "box-ctrl-c", state="offline", reason="shutdown"), what="offline")


@pytest.fixture
def persistent_broker(tmp_path: Path) -> Iterator[Mosquitto]:
    # Persistence lets the listener's session (and what is queued for it) survive the broker restart, so the test
    # sees every heartbeat the agent sends after reconnecting, however the two reconnects race.
    store = tmp_path / "mosquitto-data"
    store.mkdir()
    with mosquitto(tmp_path, extra_config=f"persistence true\npersistence_location {store}/\n") as broker:
        yield broker


def test_heartbeats_made_while_the_broker_is_down_arrive_after_it_restarts(
    persistent_broker: Mosquitto, listen: Listen, start_agent: StartAgent
) -> None:
    broker = persistent_broker
    listener = listen(broker.port, session="listener-restart")
    agent = start_agent("box-restart", broker.url)
    first = wait_for(status_where(listener, "box-restart", state="online"), what="online")
    wait_for(lambda: len(listener.heartbeats("box-restart")) >= 3, what="heartbeats before the restart")

    broker.stop()
    agent.wait_log("Lost connection to broker")
    agent.wait_log("Could not reach broker")  # a reconnect failed: heartbeats are being kept
    seen_before = max(b.seq for b in listener.heartbeats("box-restart"))
    broker.restart()

    second = wait_for(
        lambda: next((s for s in listener.statuses("box-restart") if s.session > first.session), None),
        timeout=15,
        what="online of a new session",
    )
    assert (second.state, second.boot) == ("online", first.boot)

    def caught_up() -> bool:
        seqs = [b.seq for b in listener.heartbeats("box-restart")]
        return len(seqs) > seen_before + 5 and max(seqs) > seen_before + 5

    wait_for(caught_up, timeout=15, what="heartbeats after the restart")
    beats = listener.heartbeats("box-restart")
    seqs = sorted({b.seq for b in beats})
    assert seqs == list(range(1, seqs[-1] + 1)), "a heartbeat made while the broker was down was lost"
    assert {b.boot for b in beats} == {first.boot}
    assert "unsent_heartbeats" not in agent.log()


def test_the_backlog_reaches_a_controller_that_subscribes_just_after_the_box_reconnects(
    broker: Mosquitto, listen: Listen
) -> None:
    """After a broker restarts, a controller's subscription is gone until it reconnects, on the same backoff as the
    box, often in the same millisecond: the heartbeats the box kept must not go out at its reconnection (no one is
    subscribed yet) but with its next beat."""
    reporter = BoxReporter("box-backlog", "site-1", interval_s=1, clock=SystemClock())
    link = BoxLink(reporter, BrokerAddress.parse(broker.url), keepalive_s=2)

    def beat() -> None:
        link.send(reporter.heartbeat(HostSample(cpu_percent=5.0), GpuReport(available=False, reason="none"),
                                     AppReport(source="none")))  # fmt: skip

    link.connect_async()
    link.client.loop_start()
    try:
        wait_for(lambda: link.connected, what="the box connected")
        broker.stop()  # a broker without persistence: it forgets every subscription
        wait_for(lambda: not link.connected, what="the box to notice")
        for _ in range(3):
            beat()  # kept
        broker.restart()
        wait_for(lambda: link.connected, timeout=15, what="the box reconnected")
        listener = listen(broker.port)  # subscribes after the box connected, as a reconnecting controller does
        wait_for(status_where(listener, "box-backlog", state="online"), what="the listener subscribed")
        beat()
        wait_for(lambda: len(listener.heartbeats("box-backlog")) >= 4, what="the kept heartbeats and the new one")
        assert [h.seq for h in listener.heartbeats("box-backlog")] == [1, 2, 3, 4]
    finally:
        link.stop()
        link.disconnect()
        link.client.loop_stop()


def test_agent_started_while_the_broker_is_down_connects_once_it_is_up(
    persistent_broker: Mosquitto, listen: Listen, start_agent: StartAgent
) -> None:
    broker = persistent_broker
    listener = listen(broker.port, session="listener-late")
    broker.stop()
    agent = start_agent("box-late", broker.url)
    agent.wait_log("Could not reach broker")
    assert f"broker={broker.url}" in agent.log()  # says where it tried
    assert "check=" in agent.log()  # and what to check
    assert agent.process.poll() is None  # a daemon: it keeps trying
    broker.restart()
    online = wait_for(status_where(listener, "box-late", state="online"), timeout=15, what="online")
    wait_for(lambda: len(listener.heartbeats("box-late")) >= 8, timeout=15, what="heartbeats")
    seqs = sorted({b.seq for b in listener.heartbeats("box-late")})
    assert seqs[0] == 1, "the heartbeats made before the broker came up were dropped"
    assert seqs == list(range(1, seqs[-1] + 1))
    assert {b.boot for b in listener.heartbeats("box-late")} == {online.boot}


def test_a_refused_login_stops_the_agent_with_a_clear_error(tmp_path: Path, start_agent: StartAgent) -> None:
    with mosquitto(tmp_path, extra_config="allow_anonymous false\n") as broker:
        agent = start_agent("box-refused", broker.url)
        assert agent.wait() == EXIT_CREDENTIALS_REFUSED
    log = agent.log()
    assert "Broker refused the box's login; stopped" in log
    assert "--username with --password-file" in log  # says what to check
    assert "Traceback" not in log

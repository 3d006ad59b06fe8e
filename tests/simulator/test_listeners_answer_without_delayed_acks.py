"""The simulator's listeners (its control API and every simulated cluster) are made so that asyncio sets
TCP_NODELAY on the connections they accept: without it each answer on a kept-alive connection waits ~40 ms for
the client's delayed ACK. ``socket.create_server``'s socket is the planted violation."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable

import pytest

from simulator.listening import listen_tcp


def _accepted_nodelay(make: Callable[[], socket.socket]) -> int:
    async def accept_one() -> int:
        listener = make()
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        port = listener.getsockname()[1]
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            return await asyncio.wait_for(accepted, timeout=10)
        finally:
            writer.close()
            server.close()

    return asyncio.run(accept_one())


def test_connections_accepted_by_the_simulators_listener_send_at_once() -> None:
    assert _accepted_nodelay(lambda: listen_tcp("127.0.0.1", 0)) != 0


def test_the_planted_create_server_socket_would_wait_for_delayed_acks() -> None:
    if _accepted_nodelay(lambda: socket.create_server(("127.0.0.1", 0))) != 0:
        pytest.fail("socket.create_server's connections get TCP_NODELAY here after all: the guard proves nothing")

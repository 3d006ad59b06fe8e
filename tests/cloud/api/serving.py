"""Serve an app with a real uvicorn on a free loopback port, in a thread, for the length of a ``with``.

Tests speak real HTTP to it with httpx (Starlette's TestClient is deprecated with the httpx we ship, and the
CLI needs a real port anyway). The socket is bound before the server starts, so the port cannot be lost to
another test in between.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator

import uvicorn
from fastapi import FastAPI

from edgefleet.cloud.api import end_streams
from tests.support.peers import wait_for


def bound_socket() -> socket.socket:
    """A listening-ready TCP socket bound to a free loopback port."""
    # IPPROTO_TCP said outright: asyncio sets TCP_NODELAY on accepted connections only when the listening
    # socket's proto is IPPROTO_TCP; with proto 0 every keep-alive answer waits ~40 ms for a delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextlib.contextmanager
def serving(app: FastAPI, sock: socket.socket | None = None) -> Iterator[str]:
    """Yields the base URL (``http://127.0.0.1:PORT``); stops the server and joins its thread afterwards. ``sock``
    (from ``bound_socket``): a port known before the app is built, as a sign-in provider's redirect URI needs."""
    sock = sock or bound_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, name=f"uvicorn-{port}", daemon=True)
    thread.start()
    try:
        wait_for(lambda: server.started or not thread.is_alive(), timeout=10, what="uvicorn to start")
        if not server.started:
            raise RuntimeError("the app did not start (its lifespan failed; see the log)")
        yield f"http://127.0.0.1:{port}"
    finally:
        end_streams(app)  # as `edgefleet cloud serve` does: an open console stream must not hold the shutdown
        server.should_exit = True
        thread.join(10)
        sock.close()

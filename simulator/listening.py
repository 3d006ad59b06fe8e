"""The simulator's listening sockets and servers (its control API, every simulated cluster's API server and
registry)."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator

import uvicorn
from starlette.types import ASGIApp


def listen_tcp(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (0: a free port) for uvicorn's ``sockets=``.

    Made with ``proto=IPPROTO_TCP`` on purpose: asyncio sets TCP_NODELAY on accepted connections only when the
    socket says it is TCP, and ``socket.create_server`` leaves ``proto`` 0. Without it every answer on a kept-alive
    connection waits ~40 ms for the client's delayed ACK (measured: 44 ms per request, 0.6 ms with it), which
    kubectl, the official client and the controller's gateway all reuse. The controller's own listener
    (``edgefleet.cli.cloud``) does the same.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        # A restarted server may bind while connections of the previous one linger in TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen()
    except OSError:
        sock.close()
        raise
    return sock


class QuietServer(uvicorn.Server):
    """uvicorn without signal handling of its own: whoever runs the simulator owns SIGINT/SIGTERM (so the boxes get
    to say "offline" before the process ends; uvicorn would re-raise the signal once it has stopped)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving(app: ASGIApp, *, host: str, port: int, name: str) -> AsyncIterator[str]:
    """Serve ``app`` on ``host:port`` (0: a free port) while the block runs; yields its URL once it listens.
    The simulated API servers and registries each run one on the simulator's loop."""
    listener = listen_tcp(host, port)
    url = f"http://{host}:{listener.getsockname()[1]}"
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", ws="none", timeout_graceful_shutdown=2
    )
    server = QuietServer(config)
    task = asyncio.create_task(server.serve(sockets=[listener]), name=name)
    try:
        while not server.started and not task.done():
            await asyncio.sleep(0.01)
        yield url
    finally:
        server.should_exit = True
        await asyncio.gather(task, return_exceptions=True)
        listener.close()

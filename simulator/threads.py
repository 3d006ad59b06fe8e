"""An event loop in a thread of its own, for what the simulator serves to tests and scripts from outside its
loop: ``BackgroundSimulator`` (the fleet), ``BackgroundCluster`` (one simulated Kubernetes API server) and
``BackgroundRegistry`` (one simulated registry host).

``LoopThread`` runs the coroutine a subclass gives (``serve(stop)``) with ``asyncio.run`` in a daemon thread,
hands an exception that ended it to the thread that waits for it, runs functions on the loop for the caller
(writes there wake the loop's own watchers) and stops it by setting the ``stop`` event from outside.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class LoopThread:
    """``what`` names the thing served, in errors ("the simulator", "the simulated cluster 'east'")."""

    def __init__(self, *, thread_name: str, what: str) -> None:
        self.what = what
        # Where it serves, once it does (``served_at``).
        self.url = ""
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name=thread_name, daemon=True)

    async def serve(self, stop: asyncio.Event) -> None:
        """Serve until ``stop`` is set; call ``ready()`` once serving."""
        raise NotImplementedError

    def ready(self) -> None:
        self._ready.set()

    def served_at(self, url: str) -> None:
        """It serves at ``url``: say so to the starting thread."""
        self.url = url
        self.ready()

    def _main(self) -> None:
        async def main() -> None:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            await self.serve(self._stop)

        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the starting thread, which raises it
            self._error = exc
            self._ready.set()

    def start_thread(self, timeout_s: float) -> bool:
        """Start the thread and wait until it serves or failed; False when neither happened in ``timeout_s``."""
        self._thread.start()
        return self._ready.wait(timeout_s)

    def start_serving(self, timeout_s: float) -> None:
        """Start the thread and wait until it serves; TimeoutError when it did not within ``timeout_s``, or the
        exception that ended it."""
        if not self.start_thread(timeout_s):
            raise TimeoutError(f"{self.what} was not serving within {timeout_s} s")
        error = self.take_error()
        if error is not None:
            raise error

    def take_error(self) -> BaseException | None:
        """What ended the loop, once (None when nothing did)."""
        error, self._error = self._error, None
        return error

    def run_on_loop(self, function: Callable[[], T], *, timeout_s: float) -> T:
        """Run ``function()`` on the loop and return its result."""
        assert self._loop is not None

        async def wrapped() -> T:
            return function()

        return asyncio.run_coroutine_threadsafe(wrapped(), self._loop).result(timeout=timeout_s)

    def stop_thread(self, timeout_s: float) -> None:
        """Set the stop event and wait for the thread; TimeoutError when it goes on."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed between the check and the call
                self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            raise TimeoutError(f"{self.what} did not stop within {timeout_s} s")

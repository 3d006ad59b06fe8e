"""A standby answers every state-changing request with 503 and the leader's address: never a silent loss.

Only the leader writes (``edgefleet.cloud.leading``). A request that would change state (any method but GET,
HEAD and OPTIONS) reaching a standby is answered ``503`` ``{"error": {"code": "not-leader", ...}}`` whose message
names the leader (host, pid, since, address) and says to send it there, with the leader's address in the
``X-Edgefleet-Leader`` header (absent while nobody leads) and ``Retry-After``. Chosen over forwarding the request:
a forward would carry the caller's credentials through a second hop, could loop between two replicas that each
believe the other leads during a takeover, and would turn the leader's own 503s and time-outs into the standby's;
a client (the CLI, a load balancer routing writes by ``/healthz``'s ``leader``) retries against the named leader
at once, and nothing is half-done. Reads are served by every replica from its own live state.

ASGI middleware, installed by ``create_app`` around every route: a route added later is covered without a word.
"""

from __future__ import annotations

from typing import Final

from starlette.types import ASGIApp, Receive, Scope, Send

from edgefleet.cloud.api.errors import error_response
from edgefleet.cloud.leading import Leadership, LeaderView, describe_holder
from edgefleet.errors import EdgefleetError

# Methods that only read: every replica serves them.
READ_METHODS: Final = frozenset({"GET", "HEAD", "OPTIONS"})
# Signing in and out writes only the browser's own session (the shared database's, never fenced): every replica
# serves it, or with two replicas behind one Service every other sign-in would be refused.
ANY_REPLICA_PREFIXES: Final = ("/auth/",)
LEADER_HEADER: Final = "X-Edgefleet-Leader"
NOT_LEADER_CODE: Final = "not-leader"
# A takeover comes within a lease; the client may try again (the leader or this replica) after this long.
RETRY_AFTER_S: Final = 2


def refusal_message(view: LeaderView | None) -> str:
    """What a standby says to a write: who leads and where to send it."""
    if view is None or view.leader is None:
        return (
            "this controller is a standby and no controller leads the database now (a takeover is under way); "
            f"try again in {RETRY_AFTER_S} s"
        )
    where = f" at {view.address}" if view.address else ""
    return (
        f"this controller is a standby; the leader is {describe_holder(view.leader)}, epoch {view.epoch}{where}: "
        "send changes to the leader"
    )


class StandbyRefusesWrites:
    """ASGI middleware: state-changing requests pass only on the leader (module docstring)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] in READ_METHODS
            or str(scope.get("path", "")).startswith(ANY_REPLICA_PREFIXES)
        ):
            await self.app(scope, receive, send)
            return
        leadership: Leadership = scope["state"]["controller"].leadership
        if leadership.leader:
            await self.app(scope, receive, send)
            return
        try:
            view: LeaderView | None = leadership.view()
        except EdgefleetError:
            view = None  # the database is away: nobody can be named, and the write could not be made anyway
        response = error_response(503, NOT_LEADER_CODE, refusal_message(view))
        response.headers["Retry-After"] = str(RETRY_AFTER_S)
        if view is not None and view.leader is not None and view.address:
            response.headers[LEADER_HEADER] = view.address
        await response(scope, receive, send)

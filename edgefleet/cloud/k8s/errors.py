"""The gateway's errors and their retry policy, and the one boundary where the client's errors become them.

ClusterError                        (an EdgefleetError) a call to a cluster did not do what was asked
├── TemporaryClusterError           the same call may work later: 409 Conflict (someone wrote first), 429
│   │                               (``retry_after_s`` from Retry-After), 408, 5xx, timeouts, refused or dropped
│   │                               connections
│   └── ExpiredError                410 Gone/Expired: the resourceVersion left the server's history; list again
└── PermanentClusterError           the same call cannot work until someone changes it or the cluster: 400, 401,
    │                               403, 404, 422 and any other answer; ``status``, ``reason`` and ``message``
    │                               are the API's own (its ``Status`` object)
    └── ApplyConflictError          a server-side apply without force met fields another manager owns (a 409 whose
                                    causes are ``FieldManagerConflict``): asking again meets them again; the
                                    ``conflicts`` name each manager and field

``translating(cluster, doing)`` wraps every call the gateway makes: ``kubernetes.client.ApiException``,
urllib3's errors, ``OSError`` and the kubeconfig loader's ``ConfigException`` are translated there once, with
``raise ... from exc``, so the cause stays in the traceback. Messages name the cluster and what was being done.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Final

import urllib3.exceptions
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException

from edgefleet.errors import EdgefleetError, retry_after_seconds
from edgefleet.ids import ClusterId

# Answers worth asking again: a write that lost a race (409), a server asking us to slow down (429), a request
# the server gave up on (408), and a server or proxy in trouble (5xx).
TEMPORARY_STATUS: Final = frozenset({408, 409, 429})
EXPIRED_STATUS: Final = 410
# A Retry-After beyond ten minutes is not a plan for a controller that resyncs every minute: the caller's own
# backoff takes over.
MAX_RETRY_AFTER_S: Final = 600.0
# What of a non-JSON answer goes into a message.
ANSWER_EXCERPT_CHARS: Final = 200
# The manager named in a server-side apply conflict's cause: ``conflict with "kubectl" using apps/v1``.
_MANAGER: Final = re.compile(r'conflict with "([^"]*)"')


class ClusterError(EdgefleetError):
    """A call to ``cluster`` failed while ``doing`` (e.g. "list pods in namespace default")."""

    def __init__(self, cluster: ClusterId, doing: str, message: str) -> None:
        self.cluster = cluster
        self.doing = doing
        self.message = message
        super().__init__(f"cluster {cluster}: {doing}: {message}")


class TemporaryClusterError(ClusterError):
    """Worth trying again; ``retry_after_s`` is the earliest the server wants to hear again, when it said."""

    def __init__(
        self,
        cluster: ClusterId,
        doing: str,
        message: str,
        *,
        status: int | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(cluster, doing, message)
        self.status = status
        self.retry_after_s = retry_after_s


class ExpiredError(TemporaryClusterError):
    """The resourceVersion asked for is older than the server keeps: list again and watch from the new version."""


class PermanentClusterError(ClusterError):
    """Asking again cannot work; ``status`` and ``reason`` are the API's (``NotFound``, ``Forbidden``, ...) and
    ``message`` its own words, so a person can fix the request, the manifest or the permissions."""

    def __init__(self, cluster: ClusterId, doing: str, message: str, *, status: int | None, reason: str) -> None:
        super().__init__(cluster, doing, message)
        self.status = status
        self.reason = reason


class ApplyConflictError(PermanentClusterError):
    """A server-side apply that did not force met fields other managers own; ``conflicts`` is (manager, field)
    pairs, e.g. ``("kubectl-edit", ".spec.replicas")``. Apply with force to take them over, or leave them out."""

    def __init__(self, cluster: ClusterId, doing: str, message: str, *, conflicts: list[tuple[str, str]]) -> None:
        super().__init__(cluster, doing, message, status=409, reason="Conflict")
        self.conflicts = conflicts


@contextmanager
def translating(cluster: ClusterId, doing: str) -> Iterator[None]:
    """Run a call to ``cluster``; whatever the client raises leaves as a ClusterError."""
    try:
        yield
    except ApiException as exc:
        raise api_error(cluster, doing, exc) from exc
    except urllib3.exceptions.HTTPError as exc:
        # MaxRetryError (the connection was refused or timed out), ReadTimeoutError, ProtocolError (the connection
        # dropped), ...
        raise TemporaryClusterError(cluster, doing, _unreachable(exc)) from exc
    except ConfigException as exc:
        raise PermanentClusterError(
            cluster, doing, f"the kubeconfig is unusable: {exc}", status=None, reason="BadKubeconfig"
        ) from exc
    except OSError as exc:
        raise TemporaryClusterError(cluster, doing, f"unreachable: {exc}") from exc


def api_error(cluster: ClusterId, doing: str, exc: ApiException) -> ClusterError:
    """The error an answer of the API server stands for, with its message from the ``Status`` body."""
    status = exc.status if isinstance(exc.status, int) else None
    reason, message = status_of(exc.body, fallback=str(exc.reason or "no reason given"))
    conflicts = apply_conflicts(exc.body) if status == 409 else []
    if conflicts:
        owners = "; ".join(f"{field} is owned by {manager!r}" for manager, field in conflicts)
        return ApplyConflictError(
            cluster,
            doing,
            f"{message} ({owners}); leave those fields out of what edgefleet applies, or apply with force to take "
            "them over",
            conflicts=conflicts,
        )
    headers: Mapping[str, str] = exc.headers or {}
    return status_error(cluster, doing, status, reason, message, retry_after_header=headers.get("Retry-After"))


def status_error(
    cluster: ClusterId,
    doing: str,
    status: int | None,
    reason: str,
    message: str,
    *,
    retry_after_header: str | None = None,
) -> ClusterError:
    """The error for an answer ``status`` (an HTTP status, or a watch's ERROR event's ``code``)."""
    if status == EXPIRED_STATUS:
        return ExpiredError(cluster, doing, message, status=status)
    if status in TEMPORARY_STATUS or (status is not None and status >= 500):
        retry = retry_after(retry_after_header) if status == 429 else None
        return TemporaryClusterError(cluster, doing, message, status=status, retry_after_s=retry)
    return PermanentClusterError(cluster, doing, message, status=status, reason=reason)


def status_of(body: object, *, fallback: str) -> tuple[str, str]:
    """``(reason, message)`` of a ``Status`` answer (``{"kind": "Status", "reason": ..., "message": ...}``);
    a body that is not one gives its excerpt (or ``fallback``) as the message."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    if not isinstance(body, str) or not body.strip():
        return "", fallback
    try:
        parsed = json.loads(body)
    except ValueError:
        return "", body.strip()[:ANSWER_EXCERPT_CHARS]
    if not isinstance(parsed, dict):
        return "", fallback
    reason = parsed.get("reason")
    message = parsed.get("message")
    return (
        reason if isinstance(reason, str) else "",
        message if isinstance(message, str) and message else fallback,
    )


def apply_conflicts(body: object) -> list[tuple[str, str]]:
    """(manager, field) of each ``FieldManagerConflict`` cause of a 409 ``Status`` body; the cause's message is
    ``conflict with "<manager>"`` (a real API server adds `` using <apiVersion>``)."""
    if isinstance(body, bytes):
        body = body.decode("utf-8", errors="replace")
    try:
        parsed = json.loads(body) if isinstance(body, str) else None
    except ValueError:
        return []
    details = parsed.get("details") if isinstance(parsed, dict) else None
    causes = details.get("causes") if isinstance(details, dict) else None
    found: list[tuple[str, str]] = []
    for cause in causes if isinstance(causes, list) else []:
        if not isinstance(cause, dict) or cause.get("reason") != "FieldManagerConflict":
            continue
        named = _MANAGER.search(str(cause.get("message") or ""))
        found.append((named.group(1) if named else "another manager", str(cause.get("field") or "")))
    return found


def retry_after(value: str | None) -> float | None:
    """Seconds from a 429's Retry-After header (in seconds, the API server's form), at most ``MAX_RETRY_AFTER_S``."""
    return retry_after_seconds(value, at_most=MAX_RETRY_AFTER_S)


def _unreachable(exc: urllib3.exceptions.HTTPError) -> str:
    """ "timed out: ..." or "unreachable: ..." with urllib3's cause (MaxRetryError hides it in ``reason``)."""
    cause = exc.reason if isinstance(exc, urllib3.exceptions.MaxRetryError) and exc.reason is not None else exc
    # NewConnectionError is a ConnectTimeoutError to urllib3 (for history's sake), but it means refused.
    timed_out = isinstance(cause, urllib3.exceptions.TimeoutError) and not isinstance(
        cause, urllib3.exceptions.NewConnectionError
    )
    return f"{'timed out' if timed_out else 'unreachable'}: {cause}"

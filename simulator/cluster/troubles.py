"""What a simulated cluster does when the simulator's faults trouble it, as data and pure rules.

- ``ApiTrouble``: its API server fails a share of requests, each with one of 409, 429, 500, 503 or a timeout,
  answered as kube-apiserver answers them (``failure_for``). Drawn with the caller's random source, so a seeded
  simulation fails the same requests every run.

No I/O: the server (``simulator.cluster.server``) acts on what these return.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any, Final, Literal, get_args

ApiError = Literal["409", "429", "500", "503", "timeout"]
API_ERRORS: Final[tuple[ApiError, ...]] = get_args(ApiError)

# kube-apiserver's --request-timeout: a request that has not finished by then is answered 504.
REQUEST_TIMEOUT_S: Final = 60.0
# What the API server's priority-and-fairness filter asks a throttled client to wait.
RETRY_AFTER_S: Final = 1

_WRITES: Final = frozenset({"POST", "PUT", "PATCH", "DELETE"})


@dataclass(frozen=True, slots=True)
class ApiTrouble:
    """An API server failing ``rate`` (0 < rate <= 1) of its requests with one of ``errors`` each."""

    rate: float
    errors: tuple[ApiError, ...] = API_ERRORS


@dataclass(frozen=True, slots=True)
class Failure:
    """The answer to a failed request: ``hold_s`` seconds of nothing first (a timeout), then ``status``."""

    code: int
    status: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.0


def failure_for(
    trouble: ApiTrouble | None,
    *,
    method: str,
    resource: str | None,
    name: str | None,
    timeout_s: float | None,
    rng: random.Random,
) -> Failure | None:
    """Whether this request fails, and how. A 409 only ever answers a write to a named object (a stale
    resourceVersion is the only conflict a read cannot have); a read drawn for 409 is served. A watch's timeout
    holds until the request's own ``timeout_s`` when that is shorter than the API server's."""
    if trouble is None or rng.random() >= trouble.rate:
        return None
    error = rng.choice(trouble.errors)
    if error == "409":
        if method not in _WRITES or not resource or not name:
            return None
        return Failure(
            409,
            _status(
                409,
                "Conflict",
                f'Operation cannot be fulfilled on {resource} "{name}": the object has been modified; '
                "please apply your changes to the latest version and try again",
                {"name": name, "kind": resource.split(".", 1)[0]},
            ),
        )
    if error == "429":
        return Failure(
            429,
            _status(
                429,
                "TooManyRequests",
                "Too many requests, please try again later.",
                {"retryAfterSeconds": RETRY_AFTER_S},
            ),
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    if error == "500":
        message = "etcdserver: request timed out"
        return Failure(
            500,
            _status(500, "InternalError", f"Internal error occurred: {message}", {"causes": [{"message": message}]}),
        )
    if error == "503":
        return Failure(503, _status(503, "ServiceUnavailable", "the server is currently unable to handle the request"))
    hold = REQUEST_TIMEOUT_S if timeout_s is None else max(0.0, min(timeout_s, REQUEST_TIMEOUT_S))
    return Failure(
        504,
        _status(
            504, "Timeout", "Timeout: request did not complete within requested timeout - context deadline exceeded"
        ),
        hold_s=hold,
    )


def _status(code: int, reason: str, message: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": message,
        "reason": reason,
        "details": details or {},
        "code": code,
    }

"""The simulator's receivers: a DingTalk-like robot and a generic webhook on the control API, so that the demo's
alerts and rollout news land somewhere a person can read them (``edgefleet sim inbox``) with nothing sent out.

- ``POST /receivers/dingtalk/{robot}/robot/send?access_token=...&timestamp=...&sign=...``: answers as a DingTalk
  custom robot does (HTTP 200 and ``{"errcode": ..., "errmsg": ...}``). When the simulator was given a token and
  secret (``EDGEFLEET_SIM_DINGTALK_TOKEN`` / ``EDGEFLEET_SIM_DINGTALK_SECRET``) it checks them as DingTalk does
  (FIELD-NOTES: ``HMAC-SHA256(secret, f"{timestamp_ms}\\n{secret}")``, base64; the timestamp within an hour),
  refuses bodies over 20,000 bytes (460101) and a robot's 21st message within a minute (410100), and keeps only
  what it accepted.
- ``POST /receivers/webhook/{name}``: any JSON body, kept as sent; 400 for a body that is not JSON.
- ``GET /receivers/messages?since=N``: what was kept, oldest first, each with its number (``since`` gives only
  later ones, for ``--follow``).

Pure of I/O: ``Inbox`` takes requests as values and the time as a parameter; the control API wires it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Final

# DingTalk's documented limits for a custom robot (FIELD-NOTES.md): bodies up to 20,000 bytes, about 20 messages
# a minute (then the robot is blocked), and a signature's timestamp within an hour of DingTalk's clock.
MAX_BODY_BYTES: Final = 20_000
PER_MINUTE: Final = 20
SIGN_WINDOW_S: Final = 3600.0
# The messages kept in memory (the oldest dropped first): a demo's hours of alerts and rollouts.
KEEP: Final = 1000

# What DingTalk answers (errcode, errmsg), with HTTP 200 every time.
OK: Final = (0, "ok")
TOKEN_UNKNOWN: Final = (300001, "token is not exist")
SIGN_MISMATCH: Final = (310000, "sign not match")
TIMESTAMP_INVALID: Final = (310000, "invalid timestamp")
TOO_LONG: Final = (460101, "message too long, exceed 20000 bytes")
TOO_FAST: Final = (410100, "send too fast, exceed 20 times per minute")
BAD_BODY: Final = (40035, "missing or invalid parameter json: msgtype and its content")

MESSAGE_TYPES: Final = frozenset({"text", "markdown", "link", "actionCard", "feedCard"})


@dataclass(frozen=True, slots=True)
class Received:
    """One message kept: which receiver, when (simulator wall clock), and the body as sent."""

    number: int
    kind: str  # "dingtalk" or "webhook"
    receiver: str
    received_at: float
    body: Any

    def view(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "kind": self.kind,
            "receiver": self.receiver,
            "received_at": round(self.received_at, 3),
            "body": self.body,
        }


@dataclass
class Inbox:
    """The receivers' state. ``dingtalk_token``/``dingtalk_secret``: None accepts any (a demo without them)."""

    dingtalk_token: str | None = field(default=None, repr=False)
    dingtalk_secret: str | None = field(default=None, repr=False)
    keep: int = KEEP
    _messages: deque[Received] = field(init=False)
    _sent: dict[str, deque[float]] = field(init=False, default_factory=dict)
    _count: int = field(init=False, default=0)

    def __post_init__(self) -> None:
        self._messages = deque(maxlen=self.keep)

    def dingtalk(self, robot: str, query: dict[str, str], raw: bytes, *, now: float) -> tuple[int, str]:
        """A DingTalk robot's answer to ``raw`` posted with ``query``; the message is kept when it is ``OK``."""
        if self.dingtalk_token is not None and not hmac.compare_digest(
            query.get("access_token", ""), self.dingtalk_token
        ):
            return TOKEN_UNKNOWN
        if self.dingtalk_secret is not None:
            refused = _check_sign(self.dingtalk_secret, query.get("timestamp"), query.get("sign"), now=now)
            if refused is not None:
                return refused
        if len(raw) > MAX_BODY_BYTES:
            return TOO_LONG
        try:
            body = json.loads(raw)
        except ValueError:
            return BAD_BODY
        if not isinstance(body, dict) or body.get("msgtype") not in MESSAGE_TYPES or body.get("msgtype") not in body:
            return BAD_BODY
        sent = self._sent.setdefault(robot, deque())
        while sent and sent[0] <= now - 60.0:
            sent.popleft()
        if len(sent) >= PER_MINUTE:
            return TOO_FAST
        sent.append(now)
        self._keep("dingtalk", robot, body, now)
        return OK

    def webhook(self, name: str, raw: bytes, *, now: float) -> bool:
        """Keep a webhook's JSON body; False (nothing kept) when it is not JSON."""
        try:
            body = json.loads(raw)
        except ValueError:
            return False
        self._keep("webhook", name, body, now)
        return True

    def messages(self, since: int = 0) -> list[Received]:
        return [m for m in self._messages if m.number > since]

    def _keep(self, kind: str, receiver: str, body: Any, now: float) -> None:
        self._count += 1
        self._messages.append(Received(self._count, kind, receiver, now, body))


def sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature of ``timestamp_ms`` (before URL-encoding)."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _check_sign(secret: str, timestamp: str | None, signature: str | None, *, now: float) -> tuple[int, str] | None:
    if timestamp is None or not timestamp.isdigit():
        return TIMESTAMP_INVALID
    if abs(now - int(timestamp) / 1000) > SIGN_WINDOW_S:
        return TIMESTAMP_INVALID
    if signature is None or not hmac.compare_digest(signature, sign(secret, int(timestamp))):
        return SIGN_MISMATCH
    return None

"""Senders: the one place where notifications leave the controller, over HTTP (httpx), to the configured URLs only.

``Sender`` is the seam: ``deliver(notification, target)`` returns when the receiver took the message and raises
a ``DeliveryError`` otherwise. The outbox (``outbox.Outbox.deliver_due``) calls it and turns the error into its
retry policy; tests use these HTTP senders against loopback receivers and a real Alertmanager.

DeliveryError                   (an AlertingError)
├── TemporaryDeliveryError      try again later: timeouts, refused connections, 429, 5xx, DingTalk "too fast";
│                               ``retry_after_s`` is the receiver's own wish when it gave one
└── PermanentDeliveryError      sending the same message again cannot work: a wrong URL or token, a bad
                                signature, a body the receiver refuses; a person must fix the configuration

httpx's errors are translated here, once. Error messages never carry a channel's URL, token or secret: they name
the channel and show the URL as ``ChannelTarget.shown`` (``config.redact``) does.

Receivers:
- DingTalk robot: ``POST <url>&timestamp=<ms>&sign=<sign>`` with the rendered markdown body. DingTalk answers
  HTTP 200 with ``{"errcode": 0}`` when it took the message and another errcode when not.
- generic webhook: ``POST <url>`` with the rendered JSON and the channel's headers; any 2xx is success.
- Alertmanager: ``POST <url>/api/v2/alerts`` with the rendered array of alerts; 200 is success.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping
from typing import Final, Protocol
from urllib.parse import quote_plus

import httpx

from edgefleet.clock import Clock, SystemClock
from edgefleet.cloud.alerting.alerts import AlertingError
from edgefleet.cloud.alerting.allowing import admitted
from edgefleet.cloud.alerting.config import ChannelTarget
from edgefleet.cloud.alerting.notifying import Notification
from edgefleet.errors import retry_after_seconds

# A receiver that has not answered in 5 s is down or overloaded; waiting longer holds back the alert loop's
# other channels for nothing (the outbox retries).
DELIVERY_TIMEOUT_S: Final = 5.0
# DingTalk blocks a robot for 10 minutes once it is over 20 messages a minute; trying earlier is refused again.
DINGTALK_BLOCKED_RETRY_S: Final = 600.0
# DingTalk's "system busy" (-1): its own advice is to try again a little later.
DINGTALK_BUSY_RETRY_S: Final = 5.0
# A receiver's Retry-After beyond an hour is a misconfiguration, not a plan: the outbox's backoff takes over.
MAX_RETRY_AFTER_S: Final = 3600.0
# What of a refusing receiver's answer goes into the reason kept in the outbox (and the log).
ANSWER_EXCERPT_CHARS: Final = 200
ALERTMANAGER_ALERTS_PATH: Final = "/api/v2/alerts"
USER_AGENT: Final = "edgefleet-controller"

# DingTalk custom robot errcodes. Temporary: the same message goes through later. Everything else that is not 0
# is permanent: a wrong token (300001, 300005), a failed security check - signature, keyword or IP allow-list
# (310000), a message too big (460101) or of a bad type, a dissolved group (400013); sending again cannot help.
DINGTALK_OK: Final = 0
DINGTALK_TEMPORARY: Final[Mapping[int, float]] = {
    -1: DINGTALK_BUSY_RETRY_S,  # system busy
    130101: DINGTALK_BLOCKED_RETRY_S,  # send too fast: over 20 messages a minute, blocked for 10 minutes
    410100: DINGTALK_BLOCKED_RETRY_S,  # send too fast (the newer code for the same limit)
}
# HTTP answers worth waiting for: the receiver is overloaded, restarting, or behind a proxy that lost it.
TEMPORARY_STATUS: Final = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryError(AlertingError):
    """A notification was not delivered; ``reason`` says why in words fit for ops (no URL, no secret)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


class TemporaryDeliveryError(DeliveryError):
    """Worth trying again; ``retry_after_s`` is the earliest the receiver wants to hear again, when it said."""

    def __init__(self, reason: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(reason)
        self.retry_after_s = retry_after_s


class PermanentDeliveryError(DeliveryError):
    """Trying again cannot work until someone changes the configuration (or the receiver)."""


class Sender(Protocol):
    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        """Hand ``notification`` to the receiver at ``target``; raise a DeliveryError when it did not take it."""
        ...


def http_client(*, timeout_s: float = DELIVERY_TIMEOUT_S) -> httpx.Client:
    """The HTTP client senders share (thread-safe, pooled). No proxies from the environment, no redirects: a
    notification goes to the configured URL and nowhere else. The caller closes it."""
    return httpx.Client(timeout=timeout_s, follow_redirects=False, trust_env=False, headers={"User-Agent": USER_AGENT})


def build_senders(client: httpx.Client, *, clock: Clock | None = None) -> dict[str, Sender]:
    """One sender per channel kind (the mapping ``Outbox.deliver_due`` takes), all on ``client``; ``clock`` gives
    DingTalk's signing time."""
    return {
        "dingtalk": DingTalkSender(client, clock=clock or SystemClock()),
        "webhook": WebhookSender(client),
        "alertmanager": AlertmanagerSender(client),
    }


# --- DingTalk signing -------------------------------------------------------------------------------------


def dingtalk_sign(secret: str, timestamp_ms: int) -> str:
    """DingTalk's signature, URL-encoded: base64(HMAC-SHA256(key=secret, msg=f"{timestamp_ms}\\n{secret}"))."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return quote_plus(base64.b64encode(digest).decode())


def dingtalk_url(url: str, secret: str | None, timestamp_ms: int) -> str:
    """The robot URL to post to: with ``&timestamp=...&sign=...`` when the robot has a signing secret."""
    if secret is None:
        return url
    joiner = "&" if "?" in url else "?"
    return f"{url}{joiner}timestamp={timestamp_ms}&sign={dingtalk_sign(secret, timestamp_ms)}"


# --- senders ----------------------------------------------------------------------------------------------


class _HttpSender:
    """POSTs a body and translates httpx's errors and the HTTP status into DeliveryErrors."""

    def __init__(self, client: httpx.Client) -> None:
        self.client = client

    def _post(self, url: str, body: bytes, target: ChannelTarget, headers: Mapping[str, str]) -> httpx.Response:
        channel = target.channel
        # Checked again here, not only at load: whatever built this target, nothing goes outside the allow-list.
        if not admitted(url, target.allowed):
            raise PermanentDeliveryError(
                f"{channel}: {target.shown} is not admitted by the notification file's allowedUrls; not sent"
            )
        try:
            response = self.client.post(url, content=body, headers=dict(headers))
        except httpx.TimeoutException as exc:
            raise TemporaryDeliveryError(
                f"{channel} at {target.shown} did not answer in time ({type(exc).__name__})"
            ) from exc
        except (httpx.UnsupportedProtocol, httpx.InvalidURL) as exc:
            raise PermanentDeliveryError(f"{channel}: {target.shown} is no URL httpx can send to") from exc
        except httpx.TransportError as exc:
            raise TemporaryDeliveryError(
                f"{channel} at {target.shown} could not be reached: {_scrub(str(exc), target)}"
            ) from exc
        if not response.is_success:
            raise _status_error(response, target)
        return response


def _status_error(response: httpx.Response, target: ChannelTarget) -> DeliveryError:
    status = response.status_code
    said = _excerpt(response, target)
    where = f"{target.channel} at {target.shown}"
    if status in TEMPORARY_STATUS:
        return TemporaryDeliveryError(
            f"{where} answered HTTP {status}{said}",
            retry_after_s=retry_after_seconds(response.headers.get("Retry-After"), at_most=MAX_RETRY_AFTER_S),
        )
    if response.is_redirect:
        return PermanentDeliveryError(
            f"{where} answered HTTP {status} (a redirect, not followed): configure the URL it redirects to"
        )
    return PermanentDeliveryError(f"{where} refused the message with HTTP {status}{said}")


def _excerpt(response: httpx.Response, target: ChannelTarget) -> str:
    text = " ".join(response.text.split())[:ANSWER_EXCERPT_CHARS]
    return f": {_scrub(text, target)}" if text else ""


def _scrub(text: str, target: ChannelTarget) -> str:
    """``text`` without the target's URL, token and secret (receivers and httpx may echo them)."""
    secrets = [target.url, *(v for v in _query_values(target.url) if len(v) >= 4)]
    if target.secret:
        secrets.append(target.secret)
    for secret in sorted(secrets, key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _query_values(url: str) -> list[str]:
    _, _, query = url.partition("?")
    return [part.partition("=")[2] for part in query.split("&") if "=" in part]


class DingTalkSender(_HttpSender):
    """A DingTalk custom robot; signs each request when the channel has a secret."""

    def __init__(self, client: httpx.Client, *, clock: Clock | None = None) -> None:
        super().__init__(client)
        self.clock = clock or SystemClock()

    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        timestamp_ms = round(self.clock.now() * 1000)
        url = dingtalk_url(target.url, target.secret, timestamp_ms)
        response = self._post(url, notification.body, target, {"Content-Type": "application/json; charset=utf-8"})
        where = f"{target.channel} at {target.shown}"
        try:
            answer = response.json()
            errcode = int(answer["errcode"])
        except (ValueError, KeyError, TypeError) as exc:
            raise PermanentDeliveryError(
                f"{where} answered HTTP {response.status_code} without DingTalk's errcode{_excerpt(response, target)}; "
                "is the URL a DingTalk robot's?"
            ) from exc
        if errcode == DINGTALK_OK:
            return
        errmsg = _scrub(str(answer.get("errmsg", ""))[:ANSWER_EXCERPT_CHARS], target)
        if errcode in DINGTALK_TEMPORARY:
            raise TemporaryDeliveryError(
                f"{where} refused the message for now: errcode {errcode} {errmsg}",
                retry_after_s=DINGTALK_TEMPORARY[errcode],
            )
        raise PermanentDeliveryError(f"{where} refused the message: errcode {errcode} {errmsg}{_hint(errcode)}")


def _hint(errcode: int) -> str:
    if errcode == 310000:
        return " (check the robot's security settings: the secret, keywords or IP allow-list)"
    if errcode in (300001, 300005):
        return " (check the access_token in the channel's URL)"
    if errcode == 460101:
        return " (the message is too big: lower spec.dingtalk.maxBytes)"
    return ""


class WebhookSender(_HttpSender):
    """A generic JSON webhook: the rendered body and the channel's headers; any 2xx answer is success."""

    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        self._post(target.url, notification.body, target, {**target.headers, "Content-Type": "application/json"})


class AlertmanagerSender(_HttpSender):
    """Prometheus Alertmanager's ``POST /api/v2/alerts``: the rendered array of alerts."""

    def deliver(self, notification: Notification, target: ChannelTarget) -> None:
        self._post(
            alertmanager_alerts_url(target.url),
            notification.body,
            target,
            {**target.headers, "Content-Type": "application/json"},
        )


def alertmanager_alerts_url(url: str) -> str:
    """Alertmanager's alerts endpoint under the configured base URL (taken as is when it already ends in it)."""
    base = url.rstrip("/")
    return base if base.endswith(ALERTMANAGER_ALERTS_PATH) else base + ALERTMANAGER_ALERTS_PATH

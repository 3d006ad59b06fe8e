"""The secrets the test suite uses, and the watch that fails a test whose log records or HTTP answers show one.

Every test that needs a password or token takes it from here, so the guard knows it. ``SecretWatch`` is installed
for every test by ``tests/conftest.py``: a log record factory sees every record any logger creates (whatever
handlers the code under test installs or replaces; before ``logs.PlainFormatter`` masks anything, so the mask
cannot hide a leak from it), and ``httpx``'s ``Client.send`` / ``AsyncClient.send`` are wrapped so every answer
a test reads through httpx (the API's, the receivers') is seen. Output of a subprocess (``cloud serve``) is checked
by the test that reads it, with ``assert_no_secret``.
"""

from __future__ import annotations

import logging
import threading
import traceback
from collections.abc import Callable, Iterable
from typing import Any, Final

import httpx

BROKER_USERNAME: Final = "edgefleet-cloud"
BROKER_PASSWORD: Final = "s3cr3t-broker-pw"
WRONG_BROKER_PASSWORD: Final = "wr0ng-broker-pw"
DINGTALK_TOKEN: Final = "dingtalk-token-5e1f7a"
DINGTALK_SECRET: Final = "SECdingtalk-sign-9c2b"
DATABASE_PASSWORD: Final = "pg-s3cr3t-9d1e"

# The values no log record or HTTP answer of the suite may hold. The notification file tests' own token and
# secret (tests/alerting/delivery) are here too: they prove the masking of channel URLs.
WATCHED: Final = frozenset(
    {
        BROKER_PASSWORD,
        WRONG_BROKER_PASSWORD,
        DINGTALK_TOKEN,
        DINGTALK_SECRET,
        DATABASE_PASSWORD,
        "tok3f9a0c1d2e",
        "SEC0123456789abcdef",
    }
)


def secrets_in(text: str, watched: Iterable[str] = WATCHED) -> list[str]:
    return sorted(s for s in watched if s in text)


def assert_no_secret(text: str, *, where: str = "output") -> None:
    found = secrets_in(text)
    assert not found, f"{where} shows the test secret(s) {found}: {text[-2000:]}"


def _record_text(record: logging.LogRecord) -> str:
    """All a record could show: its message, every attribute (``extra`` fields), its exception and stack."""
    try:
        message = record.getMessage()
    except Exception:  # a bad format string still shows msg and args
        message = f"{record.msg!r} {record.args!r}"
    parts = [message, *(repr(v) for v in vars(record).values())]
    if record.exc_info and record.exc_info[1] is not None:
        parts.append("".join(traceback.format_exception(record.exc_info[1])))
    return "\n".join(parts)


class SecretWatch:
    """What one test's code logged and answered over HTTP, checked for the watched secrets at its end."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[logging.LogRecord] = []
        self._answers: list[tuple[str, str]] = []
        self._doubles: set[str] = set()

    def not_ours(self, origin: str) -> None:
        """Answers from ``origin`` (``http://127.0.0.1:PORT``) come from a test double playing a hostile peer
        (a DingTalk robot that echoes the token), not from edgefleet: they are not checked."""
        self._doubles.add(origin.rstrip("/"))

    def saw_record(self, record: logging.LogRecord) -> None:
        with self._lock:
            self._records.append(record)

    def saw_answer(self, response: httpx.Response) -> None:
        try:
            body = response.text
        except httpx.ResponseNotRead:
            body = ""
        headers = "\n".join(f"{k}: {v}" for k, v in response.headers.items())
        url = response.request.url
        with self._lock:
            if f"{url.scheme}://{url.netloc.decode()}" in self._doubles:
                return
            self._answers.append((f"{response.request.method} {url.path}", f"{headers}\n{body}"))

    def leaks(self) -> list[str]:
        """One line per log record or HTTP answer that shows a watched secret, naming which."""
        with self._lock:
            records, answers = list(self._records), list(self._answers)
        found = []
        for record in records:
            hit = secrets_in(_record_text(record))
            if hit:
                found.append(f"log record {record.name}: {record.msg!r} shows {hit}")
        for what, text in answers:
            hit = secrets_in(text)
            if hit:
                found.append(f"HTTP answer to {what} shows {hit}")
        return found

    def clear(self) -> None:
        with self._lock:
            self._records.clear()
            self._answers.clear()


def install(watch: SecretWatch) -> Callable[[], None]:
    """Route every new log record and httpx answer through ``watch``; returns the function that undoes it."""
    previous_factory = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous_factory(*args, **kwargs)
        watch.saw_record(record)
        return record

    sync_send = httpx.Client.send
    async_send = httpx.AsyncClient.send

    def send(self: httpx.Client, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = sync_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            watch.saw_answer(response)
        return response

    async def asend(self: httpx.AsyncClient, request: httpx.Request, **kwargs: Any) -> httpx.Response:
        response = await async_send(self, request, **kwargs)
        if not kwargs.get("stream"):
            watch.saw_answer(response)
        return response

    logging.setLogRecordFactory(factory)
    httpx.Client.send = send  # type: ignore[method-assign]
    httpx.AsyncClient.send = asend  # type: ignore[method-assign]

    def undo() -> None:
        logging.setLogRecordFactory(previous_factory)
        httpx.Client.send = sync_send  # type: ignore[method-assign]
        httpx.AsyncClient.send = async_send  # type: ignore[method-assign]

    return undo

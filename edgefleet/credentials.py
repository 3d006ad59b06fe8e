"""Secrets as every edgefleet process handles them: one way to show a URL without its credentials, one way to read
a secret file, and the set of secret values a process holds, which its log masks wherever they appear.

``mask_url`` is the only code that turns a URL into something printable: the controller's broker and database
URLs (settings, store, health check, logs), the notification channels' URLs (``alerting.config``), the agent's
and the simulator's broker. It masks the password, every query value (a DingTalk robot URL carries its
``access_token`` there; a libpq URL may carry ``password=``) and, in http(s) URLs, token-like path segments
(Slack-style webhooks carry their secret in the path).

``hide_in_logs`` registers a secret value once it is read (``Settings.from_env``, the notification file's loader,
the agent's options); ``logs.PlainFormatter`` replaces every registered value in every line it writes. That is
defence in depth: the code never puts a secret into a log record in the first place, and tests/conftest.py fails
any test whose log or HTTP answers hold a test secret. Standard library only: the agent imports it.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Final
from urllib.parse import parse_qsl, urlencode

REDACTED: Final = "***"
# A path segment at least this long made of letters and digits (with at least one of each) is treated as a
# token in http(s) URLs: Slack-style webhooks carry their secret in the path.
TOKEN_SEGMENT_MIN_CHARS: Final = 16
# A secret file holds one line; anything far longer is the wrong file (a key pair, a whole config).
MAX_SECRET_BYTES: Final = 4096
# Shorter values are not masked in log lines by value: "ab" would turn every word holding it into ***. The code
# masks them where they are used (URLs); the registry is the second line of defence.
MIN_HIDDEN_CHARS: Final = 4

_HTTP: Final = frozenset({"http", "https"})


class _Hidden:
    """The process's registered secret values and the one pattern that finds them all."""

    def __init__(self) -> None:
        self.values: set[str] = set()
        self.pattern: re.Pattern[str] | None = None
        self.lock = threading.Lock()


_hidden = _Hidden()


def mask_url(url: str) -> str:
    """``url`` safe to show: the password, query values and (http/https) token-like path segments become ``***``.

    ``mqtt://ops:pw@broker:1883`` -> ``mqtt://ops:***@broker:1883``;
    ``https://oapi.dingtalk.com/robot/send?access_token=abc`` -> ``https://oapi.dingtalk.com/robot/send?access_token=***``.
    The URL is masked as text, not parsed and rebuilt: ``sqlite:///path`` keeps its slashes, and a URL with a
    bad port is still shown (masked) in the error that says so.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    else:
        scheme = scheme.lower()
    # The authority ends at the first '/', '?' or '#' - unless an '@' follows: a password may hold a raw '/',
    # and then everything up to the last '@' before the query is taken as the login, so no piece of it is shown.
    head, query_mark, tail = rest.partition("?")
    head, fragment_mark, _ = head.partition("#")
    if not query_mark and fragment_mark:
        tail = ""
    elif query_mark:
        tail, fragment_mark, _ = tail.partition("#")
    login, at, after = head.rpartition("@")
    if at:
        user, colon, _ = login.partition(":")
        login_shown = f"{user}:{REDACTED}@" if colon else f"{user}@"
        authority, slash, path = after.partition("/")
    else:
        login_shown = ""
        authority, slash, path = head.partition("/")
    if scheme in _HTTP and path:
        path = "/".join(REDACTED if _looks_like_token(segment) else segment for segment in path.split("/"))
    shown = f"{scheme}{sep}{login_shown}{authority}{slash}{path}"
    if query_mark:
        pairs = parse_qsl(tail, keep_blank_values=True)
        shown += "?" + urlencode([(key, REDACTED) for key, _ in pairs], safe="*") if pairs else "?"
    if fragment_mark:
        shown += f"#{REDACTED}"
    return shown


def _looks_like_token(segment: str) -> bool:
    return (
        len(segment) >= TOKEN_SEGMENT_MIN_CHARS
        and segment.replace("-", "").replace("_", "").isalnum()
        and any(c.isdigit() for c in segment)
        and any(c.isalpha() for c in segment)
    )


def hide_in_logs(*values: str | None) -> None:
    """Register secret values: every log line this process writes through ``logs`` shows them as ``***``."""
    with _hidden.lock:
        added = {v for v in values if v and len(v) >= MIN_HIDDEN_CHARS} - _hidden.values
        if not added:
            return
        _hidden.values.update(added)
        # Longest first, so a secret that contains another is masked whole.
        ordered = sorted(_hidden.values, key=len, reverse=True)
        _hidden.pattern = re.compile("|".join(re.escape(v) for v in ordered))


def mask_secrets(text: str) -> str:
    """``text`` with every value registered by ``hide_in_logs`` replaced by ``***``."""
    pattern = _hidden.pattern
    return pattern.sub(REDACTED, text) if pattern is not None else text


def forget_hidden() -> None:
    """Empty the registry (tests that prove the masking start from nothing)."""
    with _hidden.lock:
        _hidden.values.clear()
        _hidden.pattern = None


class SecretFileError(ValueError):
    """A secret file cannot be used; the message says which file and why (never its content)."""


def read_secret_file(path: Path) -> str:
    """The secret a file holds: read bounded (a wrong path may name a device or a huge file), UTF-8, one value,
    surrounding whitespace removed (editors save a trailing newline the secret does not have)."""
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_SECRET_BYTES + 1)
    except OSError as exc:
        raise SecretFileError(f"cannot read the secret file {str(path)!r}: {exc.strerror or exc}") from None
    if len(data) > MAX_SECRET_BYTES:
        raise SecretFileError(f"{str(path)!r} is over {MAX_SECRET_BYTES} bytes; a secret file holds the secret alone")
    try:
        text = data.decode("utf-8").strip()
    except UnicodeDecodeError:
        raise SecretFileError(f"{str(path)!r} is not UTF-8 text; a secret file holds the secret alone") from None
    if not text:
        raise SecretFileError(f"the secret file {str(path)!r} is empty")
    return text

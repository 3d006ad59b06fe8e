"""Which URLs notifications may be sent to: the notification file's ``spec.allowedUrls``, pure.

A channel is a way out of the controller's network; without a limit, whoever edits the notification file could
make the controller POST to an internal service (a metadata endpoint, an admin port). ``allowedUrls`` lists
patterns ``SCHEME://HOST[:PORT]``: the host is exact, or ``*.example.com`` for any name under example.com (not
example.com itself); the port is a number or ``*``, and when left out it is the scheme's default (443, 80). No
path: a pattern admits a receiver, not a page of it. An empty or absent list admits every URL (as before the
list existed).

The loader (``config``) refuses a bad pattern and a channel URL no pattern admits, at file and line; the senders
(``delivery``) check again before each POST, and never follow a redirect (``http_client``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

_DEFAULT_PORTS: Final = {"http": 80, "https": 443}
_PATTERN: Final = re.compile(
    r"^(?P<scheme>https?)://(?P<host>(\*\.)?[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(:(?P<port>\d{1,5}|\*))?/?$"
)


class UrlPatternError(ValueError):
    """A pattern of ``allowedUrls`` that cannot be read; the message says what is expected."""


@dataclass(frozen=True, slots=True)
class UrlPattern:
    scheme: str
    host: str
    # None: any port.
    port: int | None

    def admits(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port = parts.port or _DEFAULT_PORTS.get(parts.scheme)
        except ValueError:
            return False
        host = (parts.hostname or "").lower().rstrip(".")
        if parts.scheme != self.scheme or not host:
            return False
        if self.port is not None and port != self.port:
            return False
        if self.host.startswith("*."):
            return host.endswith(self.host[1:]) and len(host) > len(self.host) - 1
        return host == self.host


def parse_pattern(text: str) -> UrlPattern:
    found = _PATTERN.match(text.strip())
    if found is None:
        raise UrlPatternError(
            f"{text!r} is no URL pattern; write SCHEME://HOST[:PORT] (http or https; HOST exact or *.domain; "
            "PORT a number or *), with no path"
        )
    scheme = found.group("scheme")
    host = found.group("host").lower().rstrip(".").strip("[]")
    raw_port = found.group("port")
    port = None if raw_port == "*" else int(raw_port) if raw_port else _DEFAULT_PORTS[scheme]
    if port is not None and not 0 < port < 65536:
        raise UrlPatternError(f"{text!r}: port {port} is out of range (1 to 65535, or *)")
    return UrlPattern(scheme, host, port)


def admitted(url: str, patterns: tuple[UrlPattern, ...]) -> bool:
    """Whether ``url`` may be sent to: no patterns admit everything, else one must admit it."""
    return not patterns or any(p.admits(url) for p in patterns)

"""A real OpenID Connect provider for the sign-in tests: panva's ``oidc-provider`` from the npm registry, run by
Node.js from ``tests/support/oidc/`` (its ``package.json`` and lock pin it; ``provider.js`` configures it).

``ensure_node_modules`` installs it (``npm ci``) where it is missing, as ``scripts/test`` does before the suite;
``oidc_provider(...)`` starts it on a free 127.0.0.1 port with one static client (PKCE required, the given
redirect URI) and the given accounts, each with its password and groups, and stops it afterwards. Its login page
is a plain form that httpx posts and Chromium fills alike (``log_in``).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import queue
import re
import shutil
import subprocess
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin

import httpx
import pytest

NODE_DIR = Path(__file__).parent / "oidc"
CLIENT_ID = "edgefleet-console"
# Long and random-looking, as a provider's generated secrets are; the test provider takes any.
CLIENT_SECRET = "test-client-secret-0123456789abcdef0123456789"
START_TIMEOUT_S = 30.0


@dataclass(frozen=True)
class Account:
    password: str
    groups: Sequence[str]


@dataclass(frozen=True)
class RunningProvider:
    issuer: str
    client_id: str
    client_secret: str


def ensure_node_modules() -> None:
    """``npm ci`` in tests/support/oidc/ unless its modules are there; a clear failure without Node.js or npm."""
    installed = NODE_DIR / "node_modules" / "oidc-provider" / "package.json"
    if installed.is_file():
        return
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        pytest.fail("Node.js and npm are needed for the sign-in tests: run scripts/test, or apt-get install nodejs npm")
    # Several pytest workers may get here at once: `npm ci` deletes node_modules first, so one at a time, and the
    # ones that waited find it installed.
    with open(NODE_DIR / ".npm-ci.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if installed.is_file():
            return
        done = subprocess.run(
            [npm, "ci", "--no-audit", "--no-fund"],
            cwd=NODE_DIR,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
    if done.returncode != 0:
        pytest.fail(f"npm ci in {NODE_DIR} failed: {done.stderr[-2000:]}")


@contextlib.contextmanager
def oidc_provider(directory: Path, redirect_uri: str, accounts: Mapping[str, Account]) -> Iterator[RunningProvider]:
    ensure_node_modules()
    node = shutil.which("node")
    assert node is not None
    config = directory / "oidc-provider.json"
    config.write_text(
        json.dumps(
            {
                "client": {"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": [redirect_uri]},
                "accounts": {
                    name: {"password": a.password, "groups": list(a.groups), "email": f"{name}@example.com"}
                    for name, a in accounts.items()
                },
            }
        )
    )
    log = (directory / "oidc-provider.log").open("w")
    process = subprocess.Popen(
        [node, str(NODE_DIR / "provider.js"), str(config)], cwd=NODE_DIR, stdout=subprocess.PIPE, stderr=log, text=True
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    stdout = process.stdout
    threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
    try:
        try:
            first = lines.get(timeout=START_TIMEOUT_S)
        except queue.Empty:
            first = ""
        if not first:
            log.flush()
            pytest.fail(f"the OIDC provider did not start: {(directory / 'oidc-provider.log').read_text()[-2000:]}")
        yield RunningProvider(issuer=json.loads(first)["issuer"], client_id=CLIENT_ID, client_secret=CLIENT_SECRET)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        stdout.close()
        log.close()


def log_in(browser: httpx.Client, authorization_url: str, redirect_uri: str, name: str, password: str) -> str:
    """Walk the provider's pages as a browser would (its login form, then its redirects) until it sends the browser
    back to ``redirect_uri``; returns that URL (with ``code`` and ``state``), not followed."""
    response = browser.get(authorization_url)
    for _ in range(10):
        if response.is_redirect:
            location = urljoin(str(response.url), response.headers["location"])
            if location.startswith(redirect_uri):
                return location
            response = browser.get(location)
            continue
        form = re.search(r'action="([^"]+)"', response.text)
        assert response.status_code == 200, response.text[:500]
        assert form is not None, response.text[:500]
        response = browser.post(urljoin(str(response.url), form.group(1)), data={"login": name, "password": password})
    raise AssertionError(f"the provider never sent the browser back: {response.status_code} {response.text[:300]}")

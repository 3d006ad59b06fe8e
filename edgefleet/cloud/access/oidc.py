"""The OpenID Connect client of the console's sign-in: the authorization code flow with PKCE (S256), state and
nonce, and the ID token checked against the provider's published keys.

``begin(next_path, now)`` remembers a pending sign-in (state, nonce, PKCE verifier; in memory for ten minutes)
and returns the provider's authorization URL; ``finish(...)`` takes the provider's answer at the callback, uses
the pending sign-in once (a replayed callback finds none), exchanges the code (the provider refuses a code used
before), checks the ID token (signature by a key of the provider's JWKS, issuer, audience, expiry, nonce) and maps
the ``groups`` claim to a principal through the mapping file (``oidc_config``). The provider's metadata comes
from its discovery document, fetched once.

Pending sign-ins live in memory on purpose: they last minutes, and a controller restarted in between costs the
person one more click. Every refusal is an ``OidcRefused`` carrying the API status to answer and a message for the
person signing in.

Built on authlib's protocol pieces (discovery URL, authorization request, PKCE challenge, token generation) and
joserfc (authlib's JOSE library) for the ID token; the HTTP calls go through httpx like the rest of the
controller. Who calls: ``edgefleet.cloud.api.routes.signin``.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

import httpx
from authlib.common.security import generate_token
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc.discovery import get_well_known_url
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from edgefleet.cloud.access.authorizing import Principal
from edgefleet.cloud.access.oidc_config import OidcSettings

# Long enough to find a phone and scan a QR code, short enough that a stolen state is stale.
PENDING_TTL_S: Final = 600.0
# Pending sign-ins held at most: a client that starts sign-ins without end cannot grow the controller's memory.
MAX_PENDING: Final = 10_000
SCOPE: Final = "openid profile email groups"
HTTP_TIMEOUT_S: Final = 10.0
# Clocks of the controller and the provider may differ this much when the ID token's times are checked.
LEEWAY_S: Final = 60
SIGNING_ALGORITHMS: Final = frozenset({"RS256", "RS384", "RS512", "PS256", "ES256", "ES384", "EdDSA"})


class OidcRefused(Exception):
    """A sign-in that cannot go on; ``status`` is the API's answer, the message is for the person."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Pending:
    nonce: str
    verifier: str
    next_path: str
    started_at: float


@dataclass(frozen=True, slots=True)
class Begun:
    url: str
    state: str


@dataclass
class OidcClient:
    settings: OidcSettings
    http: httpx.Client = field(default_factory=lambda: httpx.Client(timeout=HTTP_TIMEOUT_S))
    _pending: dict[str, Pending] = field(default_factory=dict)
    _metadata: dict[str, Any] | None = None
    _keys: KeySet | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def begin(self, next_path: str, *, now: float) -> Begun:
        metadata = self.metadata()
        state = generate_token(43)
        pending = Pending(nonce=generate_token(43), verifier=generate_token(64), next_path=next_path, started_at=now)
        with self._lock:
            self._forget_stale(now)
            if len(self._pending) >= MAX_PENDING:
                oldest = min(self._pending, key=lambda key: self._pending[key].started_at)
                del self._pending[oldest]
            self._pending[state] = pending
        url = prepare_grant_uri(
            metadata["authorization_endpoint"],
            self.settings.client_id,
            "code",
            redirect_uri=self.settings.redirect_uri,
            scope=SCOPE,
            state=state,
            nonce=pending.nonce,
            code_challenge=create_s256_code_challenge(pending.verifier),
            code_challenge_method="S256",
        )
        return Begun(url=url, state=state)

    def finish(self, query: Mapping[str, str], *, browser_state: str | None, now: float) -> tuple[Principal, str]:
        """The principal of a finished sign-in and the page to go back to. ``query`` is the callback's
        (code, state, or error); ``browser_state`` the state the sign-in cookie holds (None: none)."""
        state = query.get("state", "")
        with self._lock:
            self._forget_stale(now)
            pending = self._pending.pop(state, None) if state else None
        if pending is None:
            raise OidcRefused(400, "this sign-in is unknown, expired or was finished already; start again at /signin")
        if browser_state is None or not secrets.compare_digest(browser_state.encode(), state.encode()):
            # The state came back to a browser that did not start this sign-in (a link someone else made).
            raise OidcRefused(400, "this sign-in was started in another browser; start again at /signin")
        if "error" in query:
            described = query.get("error_description") or query["error"]
            raise OidcRefused(401, f"the sign-in provider refused: {described}; start again at /signin")
        code = query.get("code", "")
        if not code:
            raise OidcRefused(400, "the provider sent no code back; start again at /signin")
        tokens = self._exchange(code, pending.verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise OidcRefused(
                401, "the provider answered without an ID token; check that the 'openid' scope is allowed"
            )
        claims = self._check_id_token(id_token, pending.nonce, now=now)
        return self._principal(claims), pending.next_path

    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            url = get_well_known_url(self.settings.issuer, external=True)
            document = self._get_json(url, "discovery document")
            if document.get("issuer", "").rstrip("/") != self.settings.issuer:
                raise OidcRefused(
                    503,
                    f"the provider at {url} names itself {document.get('issuer')!r}, not {self.settings.issuer!r}; "
                    "fix EDGEFLEET_OIDC_ISSUER",
                )
            for needed in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
                if not isinstance(document.get(needed), str):
                    raise OidcRefused(503, f"the provider's discovery document ({url}) has no {needed}")
            self._metadata = document
        return self._metadata

    def _keyset(self, *, fresh: bool) -> KeySet:
        if self._keys is None or fresh:
            document = self._get_json(self.metadata()["jwks_uri"], "signing keys (JWKS)")
            try:
                self._keys = KeySet.import_key_set(document)  # type: ignore[arg-type]
            except (JoseError, ValueError, KeyError) as exc:
                raise OidcRefused(503, f"the provider's signing keys cannot be read: {exc}") from None
        return self._keys

    def _exchange(self, code: str, verifier: str) -> dict[str, Any]:
        try:
            response = self.http.post(
                self.metadata()["token_endpoint"],
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "redirect_uri": self.settings.redirect_uri,
                    "code_verifier": verifier,
                },
                auth=(self.settings.client_id, self.settings.client_secret),
                headers={"Accept": "application/json"},
            )
        except httpx.HTTPError as exc:
            raise OidcRefused(503, f"cannot reach the sign-in provider's token endpoint: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {}
        if response.status_code != 200 or not isinstance(body, dict):
            error = body.get("error_description") or body.get("error") if isinstance(body, dict) else None
            # invalid_grant: a code used already, expired, or not this client's; the person starts again.
            raise OidcRefused(
                401,
                f"the sign-in provider refused the code ({error or f'HTTP {response.status_code}'}); "
                "start again at /signin",
            )
        return body

    def _check_id_token(self, id_token: str, nonce: str, *, now: float) -> dict[str, Any]:
        allowed = set(self.metadata().get("id_token_signing_alg_values_supported") or ["RS256"])
        algorithms = sorted(allowed & SIGNING_ALGORITHMS)
        try:
            try:
                token = jwt.decode(id_token, self._keyset(fresh=False), algorithms=algorithms)
            except JoseError:
                # The provider may have rotated its keys since they were fetched: fetch them again, once.
                token = jwt.decode(id_token, self._keyset(fresh=True), algorithms=algorithms)
            jwt.JWTClaimsRegistry(
                now=int(now),
                leeway=LEEWAY_S,
                iss={"essential": True, "value": self.settings.issuer},
                aud={"essential": True, "value": self.settings.client_id},
                exp={"essential": True},
                sub={"essential": True},
                nonce={"essential": True, "value": nonce},
            ).validate(token.claims)
        except (JoseError, ValueError) as exc:
            raise OidcRefused(401, f"the provider's ID token does not hold: {exc}; start again at /signin") from None
        return dict(token.claims)

    def _principal(self, claims: Mapping[str, Any]) -> Principal:
        name = str(claims.get("preferred_username") or claims.get("email") or claims["sub"])
        raw = claims.get(self.settings.groups_claim)
        groups = [str(g) for g in raw] if isinstance(raw, list) else []
        principal = self.settings.groups.principal(name, groups)
        if principal is None:
            held = ", ".join(groups) if groups else "none"
            raise OidcRefused(
                403,
                f"{name!r} signed in, but none of their groups ({held}) is given a role in edgefleet; ask an "
                "admin to add one of them to the group mapping file",
            )
        return principal

    def _get_json(self, url: str, what: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, headers={"Accept": "application/json"})
            response.raise_for_status()
            body = response.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise OidcRefused(503, f"cannot read the sign-in provider's {what} at {url}: {exc}") from None
        if not isinstance(body, dict):
            raise OidcRefused(503, f"the sign-in provider's {what} at {url} is not a JSON object")
        return body

    def _forget_stale(self, now: float) -> None:
        stale = [key for key, pending in self._pending.items() if now - pending.started_at > PENDING_TTL_S]
        for key in stale:
            del self._pending[key]

"""Box enrollment: a new box trades a single-use enrollment token of its site for its own broker login.

``Enrollment.enroll(token, box)`` spends the token (``access.enrollment_tokens.redeeming``), checks the box
against the inventory, has the CA sign a certificate for the box (``broker.pki.issue_box_pem``) and creates the
box's account on the running broker through the dynamic-security plugin (``broker.accounts``): the broker knows
the box at once, with no restart. The password, certificate and key are in the answer once and stored nowhere
on the controller (the broker keeps only the password's hash).

Which boxes a token of site S may enroll:
- a box the inventory places at S: yes;
- a box the inventory places at another site: refused (``BoxOfAnotherSite``), so a token of one center cannot
  mint a login for another's box;
- a box in no site manifest: yes. It then publishes and shows in the unknown-box list
  (``GET /api/v1/unknown-boxes``, ``edgefleet boxes --unknown``); adding it to S's manifest and reloading the
  inventory adopts it (docs/security.md, "Enrollment").

A box that has an account already is refused (``AlreadyEnrolled``): revoke it first, so that a stolen token
cannot take over a live box's login. Any failure leaves the token unspent.

Who calls: the API's ``POST /api/v1/enroll`` (``api/routes/enrollment.py``); the controller builds one when
``EDGEFLEET_BROKER_DIR`` and ``EDGEFLEET_PKI_DIR`` are set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from edgefleet.clock import Clock
from edgefleet.cloud.access.enrollment_tokens import EnrollmentTokens
from edgefleet.cloud.broker import grants, pki
from edgefleet.cloud.broker.accounts import BrokerAccountError, BrokerAccounts
from edgefleet.cloud.broker.configuring import BrokerSettings, read_settings
from edgefleet.errors import EdgefleetError
from edgefleet.ids import BoxId, SiteId
from edgefleet.inventory import Inventory

# One answer for an unknown, used or expired token, so that a guess learns nothing (the API's standby says it too).
TOKEN_REFUSED: Final = (
    "the enrollment token is unknown, used or expired; ask for a new one (edgefleet enrollment create --site SITE)"
)

log = logging.getLogger(__name__)


class EnrollmentError(EdgefleetError):
    """An enrollment that cannot be served; the message says what to do.

    EnrollmentError
    ├── TokenRefused       the token is unknown, used or expired (one answer for the three)
    ├── BoxOfAnotherSite   the inventory places the box at another site than the token's
    ├── AlreadyEnrolled    the box has a broker account already
    └── EnrollmentOff      this controller has no broker or CA directory to enroll with
    """


class TokenRefused(EnrollmentError):
    pass


class BoxOfAnotherSite(EnrollmentError):
    pass


class AlreadyEnrolled(EnrollmentError):
    pass


class EnrollmentOff(EnrollmentError):
    pass


@dataclass(frozen=True, slots=True)
class Enrolled:
    """What the box gets, once. The secrets are left out of repr."""

    box: BoxId
    site: SiteId
    in_inventory: bool
    username: str
    client_id: str
    password: str = field(repr=False)
    certificate: str = field(repr=False)
    key: str = field(repr=False)
    ca: str = field(repr=False)
    broker_host: str = ""
    broker_port: int = 0


class Enrollment:
    def __init__(
        self,
        tokens: EnrollmentTokens,
        *,
        broker: BrokerSettings | None,
        pki_dir: Path | None,
        inventory: Callable[[], Inventory],
        clock: Clock,
    ) -> None:
        self.tokens = tokens
        self.broker = broker
        self.pki_dir = pki_dir
        self.inventory = inventory
        self.clock = clock

    @classmethod
    def from_dirs(
        cls,
        tokens: EnrollmentTokens,
        *,
        broker_dir: Path | None,
        pki_dir: Path | None,
        inventory: Callable[[], Inventory],
        clock: Clock,
    ) -> Enrollment:
        """Read ``broker.json`` of ``broker_dir`` (raises ``BrokerConfigError`` saying how to write it). Without
        both directories tokens can still be made, and redeeming one answers that enrollment is off."""
        broker = read_settings(broker_dir) if broker_dir is not None and pki_dir is not None else None
        return cls(tokens, broker=broker, pki_dir=pki_dir, inventory=inventory, clock=clock)

    def enroll(self, token: str, box: str) -> Enrolled:
        """Spend ``token`` on ``box`` and return its login; raises an ``EnrollmentError`` (the token left
        unspent), ``grants.BadBoxName``, or the broker's errors (``UnreachableError``, ``BrokerAccountError``)."""
        grants.check_box(box)
        now = self.clock.now()
        made = False
        try:
            with self.tokens.redeeming(token, box=box, now=now) as site:
                if site is None:
                    raise TokenRefused(TOKEN_REFUSED)
                if self.broker is None or self.pki_dir is None:
                    raise EnrollmentOff(
                        "box enrollment is off in this controller: set EDGEFLEET_BROKER_DIR and EDGEFLEET_PKI_DIR "
                        "(docs/security.md, Enrollment); the token was not spent"
                    )
                broker, pki_dir = self.broker, self.pki_dir
                placed = self.inventory().boxes.get(BoxId(box))
                if placed is not None and placed.site != site:
                    raise BoxOfAnotherSite(
                        f"this token enrolls boxes of site {site}, and the inventory places box {box} elsewhere; "
                        "use a token of the box's own site"
                    )
                issued = pki.issue_box_pem(pki_dir, box, now=datetime.fromtimestamp(now, UTC))
                with BrokerAccounts.connect(broker) as accounts:
                    try:
                        account = accounts.add_box(box)
                    except BrokerAccountError as exc:
                        if "already has a broker account" in str(exc):
                            raise AlreadyEnrolled(
                                f"box {box} is enrolled already; to enroll it again, revoke it first "
                                f"(edgefleet broker box revoke {box}) and use a new token"
                            ) from None
                        raise
                    made = True
        except BaseException:
            if made:
                # The token's spending did not commit: take the account back, so the token can be used again.
                with BrokerAccounts.connect(broker) as accounts:
                    accounts.revoke_box(box)
            raise
        log.info("Enrolled box", extra={"box": box, "site": site, "in_inventory": placed is not None})
        return Enrolled(
            box=BoxId(box),
            site=site,
            in_inventory=placed is not None,
            username=account.username,
            client_id=account.clientid,
            password=account.password,
            certificate=issued.cert.decode(),
            key=issued.key.decode(),
            ca=(pki_dir / pki.CA_CERT).read_text(),
            broker_host=broker.host,
            broker_port=broker.port,
        )

"""A refused mailbox login: recorded for ``check`` (CRITICAL), retried slowly, cleared once a login succeeds.

A wrong password is not an outage: retrying it every few seconds can lock the account
(Microsoft 365's smart lockout counts failed sign-ins), so after a refusal the watcher waits
:data:`FIRST_RETRY_S`, doubling, up to ``mailbox.login_retry_max_s``.  The ledger fact
``mailbox_login`` says since when and why; it never holds the password (the error text has
it blanked by :func:`reconciler.mailbox.imap.describe`).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from datetime import datetime

from reconciler import backoff
from reconciler.clock import iso
from reconciler.errors import MailboxLoginError
from reconciler.ledger.store import Ledger

log = logging.getLogger(__name__)

FACT = "mailbox_login"
FIRST_RETRY_S = 60.0


def retry_delay(refusals: int, cap_s: float, rng: random.Random) -> float:
    """Seconds to wait after the ``refusals``-th refused login in a row: 60 s doubling, at most ``cap_s``."""
    return backoff.delay(refusals, min(FIRST_RETRY_S, cap_s), cap_s, rng)


class LoginRecord:
    """Keeps the ledger's ``mailbox_login`` fact in step with the last login attempt."""

    def __init__(self, ledger: Ledger, clock: Callable[[], datetime], *, record: bool = True) -> None:
        self._ledger = ledger
        self._clock = clock
        self._record = record
        self.refusals = 0
        self._since: str | None = None
        self._clear_pending = True  # a fact left by an earlier run is cleared by the first login that works

    async def refused(self, error: MailboxLoginError) -> int:
        """Record a refusal; returns how many in a row."""
        now = self._clock()
        self.refusals += 1
        self._since = self._since or iso(now)
        fact = {"refused": True, "error": str(error)[:300], "since": self._since, "attempts": self.refusals}
        if self._record:
            await self._ledger.set_fact(FACT, fact, now)
        self._clear_pending = True
        return self.refusals

    async def succeeded(self) -> None:
        """A login worked: clear the fact (once) and the count."""
        if self.refusals:
            log.info("mailbox: login accepted after %d refusal(s)", self.refusals)
        self.refusals, self._since = 0, None
        if self._clear_pending and self._record:
            # Read first: a login must not write to the ledger when there is nothing to clear (a
            # full disk is then reported once, by the loop that needed to write).
            if FACT in await self._ledger.facts():
                await self._ledger.clear_fact(FACT)
            self._clear_pending = False

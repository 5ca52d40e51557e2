"""The circuit breaker: its state and decisions (:class:`Breaker`), and its memory of which credentials tripped it.

An account-level code (601-605, 620, 633) must never be followed by more
attempts with the same credentials: 604 locks the account after repeated wrong
passwords.  The ledger keeps a salted PBKDF2 fingerprint of the credentials that
tripped the breaker (never the password), so a daemon started with a changed
password can clear it on its own.

:class:`Breaker` is pure: the daemon reads the ledger's ``breaker`` fact, computes
the (slow) fingerprint comparison off the event loop when :meth:`Breaker.stale`
says so, and writes what :meth:`Breaker.load` and :meth:`Breaker.trip` decide.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import Any

ITERATIONS = 200_000


def fingerprint(usuario: str, password: str, salt: bytes | None = None) -> dict[str, str]:
    """A salted, slow hash of the credentials, for the ledger's ``breaker`` fact."""
    salt = salt if salt is not None else os.urandom(16)
    digest = hashlib.pbkdf2_hmac("sha256", f"{usuario}\0{password}".encode(), salt, ITERATIONS)
    return {"salt": salt.hex(), "fingerprint": digest.hex()}


def same_credentials(fact: Mapping[str, Any], usuario: str, password: str) -> bool:
    """Whether the breaker was tripped with these credentials (unknown fingerprint: assume yes)."""
    salt, stored = fact.get("salt"), fact.get("fingerprint")
    if not isinstance(salt, str) or not isinstance(stored, str):
        return True
    try:
        again = fingerprint(usuario, password, bytes.fromhex(salt))["fingerprint"]
    except ValueError:
        return True
    return hmac.compare_digest(again, stored)


class Load(Enum):
    """What the ledger's ``breaker`` fact means when a pass starts."""

    CLOSED = "closed"  # no fact: submit
    OPENED = "opened"  # a fact with these credentials, new to this daemon: stop, and say so once
    OPEN = "open"  # still open, already said
    CHANGED = "changed"  # a fact from other credentials: clear it (fact and event), submit again


@dataclass
class Breaker:
    """The breaker as one daemon sees it.

    ``tripped``: no provider call may start.  ``proven``: a reply showed the credentials
    work, so requests may go ``max_concurrency`` at a time; until then one at a time, so a
    wrong password costs one failed login, not ``max_concurrency`` of them.  ``seen`` and
    ``same``: the ``recorded_at`` of the last fact compared with the credentials, and the
    answer (the fingerprint is a slow hash: compared once per fact, not on every pass).
    """

    tripped: bool = False
    proven: bool = False
    seen: str | None = None
    same: bool = False

    def width(self, max_concurrency: int) -> int:
        """How many jobs to keep claimed: twice the provider's slots once proven, else one."""
        return max_concurrency * 2 if self.proven else 1

    def stale(self, fact: Mapping[str, Any]) -> bool:
        """Whether ``fact`` must be compared with the credentials before :meth:`load`."""
        return fact.get("recorded_at") != self.seen

    def compared(self, fact: Mapping[str, Any], same: bool) -> None:
        """Remember the comparison of ``fact`` with the credentials (``same``: they tripped it)."""
        self.seen, self.same = fact.get("recorded_at"), same

    def load(self, fact: Mapping[str, Any] | None) -> Load:
        """Follow the ledger's fact (None: no breaker).  A breaker that closes proves nothing yet."""
        if fact is None:
            if self.tripped:
                self.proven = False
            self.tripped = False
            return Load.CLOSED
        if self.same:
            opened = not self.tripped
            self.tripped = True
            return Load.OPENED if opened else Load.OPEN
        self.tripped = False
        self.proven = False
        return Load.CHANGED

    def trip(self) -> bool:
        """Open on an account-level code; True when this opened it (the caller records the fact once)."""
        if self.tripped:
            return False
        self.tripped = True
        return True

    def recorded(self, recorded_at: str) -> None:
        """The fact of a :meth:`trip` is in the ledger, written with these credentials."""
        self.seen, self.same = recorded_at, True

    def replied(self, proves: bool) -> None:
        """A reply came; ``proves``: it shows the credentials work."""
        if proves:
            self.proven = True

"""The circuit breaker's memory of which credentials tripped it.

An account-level code (601-605, 620, 633) must never be followed by more
attempts with the same credentials: 604 locks the account after repeated wrong
passwords.  The ledger keeps a salted PBKDF2 fingerprint of the credentials that
tripped the breaker (never the password), so a daemon started with a changed
password can clear it on its own.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
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

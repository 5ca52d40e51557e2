"""Standard Webhooks signatures: pure, no I/O.

A receiver verifies ``webhook-signature`` with the official ``standardwebhooks``
package (or ten lines of its own: see the README): HMAC-SHA256, keyed with the
base64 part of a ``whsec_`` secret, over ``"{webhook-id}.{webhook-timestamp}.{body}"``,
sent as ``v1,<base64>``; several secrets (a rotation) give several space-separated
signatures, and the receiver accepts any one it knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac

PREFIX = "whsec_"


class SecretFormatError(ValueError):
    """A webhook secret that is not ``whsec_`` followed by base64 of at least 16 bytes."""


def key_of(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret; a bad secret raises without echoing it."""
    text = secret.strip()
    if not text.startswith(PREFIX):
        raise SecretFormatError("expected a secret starting with whsec_")
    raw = text[len(PREFIX) :]
    try:  # unpadded base64 is common in the wild (and accepted by the reference verifier)
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except (binascii.Error, ValueError) as e:
        raise SecretFormatError("the part after whsec_ is not base64") from e
    if len(key) < 16:
        raise SecretFormatError("the key is shorter than 16 bytes")
    return key


def sign(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` header value: one ``v1,<base64>`` per key, space-separated."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return " ".join("v1," + base64.b64encode(hmac.new(k, signed, hashlib.sha256).digest()).decode() for k in keys)


def headers(keys: list[bytes], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(keys, msg_id, timestamp, body),
        "content-type": "application/json",
    }

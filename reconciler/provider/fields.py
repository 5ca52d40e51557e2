"""The fields of a provider reply, read defensively: pure, never raises on what zeep hands over."""

from __future__ import annotations

import base64
import binascii
import re
from typing import Any

from reconciler.redact import one_line

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # a status code is an xs:int
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²" and "٣"


def int_of(value: object) -> int | None:
    """A status code (``xs:int``): a 32-bit integer, given as such or in ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _INT_TEXT.fullmatch(text):
            return None
        value = int(text)
    if isinstance(value, int) and INT32_MIN <= value <= INT32_MAX:
        return value
    return None


def code_of(result: Any) -> tuple[int | None, str]:
    """The reply's status code, or None and why (missing, or not a 32-bit integer)."""
    raw = getattr(result, "status", None)
    code = int_of(raw)
    if code is not None:
        return code, ""
    if raw is None:
        return None, "malformed reply: no status code (missing, or not an integer)"
    shown = one_line(repr(raw if isinstance(raw, int | str) else type(raw).__name__)[:60])
    return None, f"malformed reply: status {shown} is not a 32-bit integer"


def text_of(value: object) -> str:
    return "" if value is None else str(value)


def acuse_of(result: Any, message: str) -> tuple[bytes | None, str | None]:
    """The acuse as received and where it came from.

    ``acuseSat`` or ``acuseSAT``: base64Binary (decoded by zeep), base64 text, or XML text; else
    ``mensaje`` when it holds XML (``<?xml`` in it, or it starts with ``<``), as a public client of the
    real service reads it.  Bytes are kept as received (text as UTF-8); :func:`reconciler.provider.acuse.check`
    judges them wherever they came from.
    """
    for name in ("acuseSat", "acuseSAT"):
        value = getattr(result, name, None)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes) and value.strip():
            return unbase64(value), name
    if "<?xml" in message or message.lstrip().startswith("<"):
        return message.encode("utf-8"), "mensaje"
    return None, None


def unbase64(value: bytes) -> bytes:
    """``value`` itself when it is XML or not base64, else its base64 decoding when that is XML."""
    if value.lstrip().startswith(b"<"):
        return value
    try:
        decoded = base64.b64decode(b"".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return value
    return decoded if decoded.lstrip().startswith(b"<") else value

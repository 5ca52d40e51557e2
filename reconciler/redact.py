"""Text made safe where it is shown: secrets masked, outside text inert, long values cut.

Pure, no I/O, never raises on a string.  The one home for

* :class:`Redactor`, which masks secrets in text bound for a log line or an error: every
  known secret value (and its XML-escaped form, as it travels in a SOAP envelope) and the
  content of the SOAP secret elements (``password``, ``csdPassword``, ``csdKey``) become
  ``***``; :class:`reconciler.logs.SecretFilter` applies it to every log record;
* :func:`describe`, one line about an error (an exception or an IMAP response) with the
  secrets masked, for an error message;
* :func:`show`, a value quoted with ``repr`` and cut to a limit, for a reason or a
  validation message;
* :func:`one_line` for a terminal cell or a log line: control characters (CR, LF, TAB,
  ESC, NUL, DEL, the C1 range, the line and paragraph separators) and the bidirectional
  overrides are written as visible escapes, so a value can neither start a new line, move
  the cursor, recolour the terminal nor reorder what is shown around it;
* :func:`csv_cell` for a spreadsheet: a string starting with ``=``, ``+``, ``-``, ``@``,
  TAB or CR gets a leading ``'`` (the OWASP rule against CSV injection), so it is read as
  text, never as a formula.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

MASK = "***"
# Shorter values are not masked in logs and SOAP traces: masking a two-letter value everywhere
# would garble every line.  :func:`describe` masks its secrets whatever their length.
SHORTEST = 4

_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# Format characters that reorder or hide text (Trojan Source): bidi embeddings, overrides,
# isolates and marks.  Other format characters (soft hyphen, joiners) only shape text.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _escape(ch: str) -> str:
    if ch in _NAMED:
        return _NAMED[ch]
    n = ord(ch)
    return f"\\x{n:02x}" if n < 0x100 else f"\\u{n:04x}"


def _unsafe(ch: str) -> bool:
    return ch in _BIDI or unicodedata.category(ch) in ("Cc", "Zl", "Zp")


def one_line(text: str) -> str:
    """``text`` on one line with every control or bidi character escaped (``\\n``, ``\\x1b``, ``\\u202e``)."""
    if text.isprintable():  # the common case, in C: nothing to escape (bidi marks are not printable)
        return text
    return "".join(_escape(ch) if _unsafe(ch) else ch for ch in text)


def csv_cell(value: object) -> object:
    """A CSV cell a spreadsheet reads as data: a string that could start a formula gets a leading ``'``."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


# -- secrets ---------------------------------------------------------------------------------

_SECRET_ELEMENT = re.compile(r"(<(?:[\w.-]+:)?(?:password|csdPassword|csdKey)(?:\s[^>]*)?>)(.*?)(</)", re.S | re.I)


class Redactor:
    """Masks secrets in text: the secret SOAP elements' content and every known value, raw or XML-escaped."""

    def __init__(self, secrets: Iterable[str], *, shortest: int = SHORTEST) -> None:
        from xml.sax.saxutils import escape  # here: it imports urllib and email, which read commands never need

        values = {s for s in secrets if s and len(s) >= shortest}
        values |= {escape(s) for s in values}
        self._values = sorted(values, key=len, reverse=True)  # longest first: a value inside another

    def __bool__(self) -> bool:
        """Whether there is any value to mask (the secret elements are masked regardless)."""
        return bool(self._values)

    def __call__(self, text: str, limit: int | None = None) -> str:
        """``text`` with the secrets masked, then cut to ``limit`` characters (saying how many more)."""
        if "<" in text:
            text = _SECRET_ELEMENT.sub(rf"\1{MASK}\3", text)
        for value in self._values:
            if value in text:
                text = text.replace(value, MASK)
        if limit is not None and len(text) > limit:
            text = f"{text[:limit]}... ({len(text) - limit} more characters)"
        return text


def describe(error: object, *secrets: str, limit: int = 200) -> str:
    """One line about an error, at most ``limit`` characters, with ``secrets`` (any length) masked.

    ``error`` is an exception, an IMAP response (a list of bytes and strings) or anything else.
    """
    if isinstance(error, BaseException):
        text = str(error) or type(error).__name__
    elif isinstance(error, list | tuple):
        text = " ".join(x.decode("utf-8", "replace") if isinstance(x, bytes) else str(x) for x in error)
    else:
        text = str(error)
    text = Redactor(secrets, shortest=1)(_unrepr(text))
    return " ".join(text.split())[:limit]


def _unrepr(text: str) -> str:
    """imaplib puts the server's bytes in its errors, and imapclient their repr: ``b'[AUTH...] ...'`` -> text."""
    if len(text) >= 3 and text[0] == "b" and text[1] in "'\"" and text[-1] == text[1]:
        import ast

        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return text
        if isinstance(value, bytes):
            return value.decode("utf-8", "replace")
    return text


def show(value: object, limit: int) -> str:
    """``value`` quoted with ``repr``, so controls are visible.

    Longer than ``limit``: its first ``limit - 3`` characters and ``...'``.
    """
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "...'"

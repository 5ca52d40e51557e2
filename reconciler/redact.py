"""Text from outside (mail headers, provider messages, file names) made inert where it is shown.

Pure, no I/O, never raises on a string:

* :func:`one_line` for a terminal cell or a log line: control characters (CR, LF, TAB,
  ESC, NUL, DEL, the C1 range, the line and paragraph separators) and the bidirectional
  overrides are written as visible escapes, so a value can neither start a new line, move
  the cursor, recolour the terminal nor reorder what is shown around it;
* :func:`csv_cell` for a spreadsheet: a string starting with ``=``, ``+``, ``-``, ``@``,
  TAB or CR gets a leading ``'`` (the OWASP rule against CSV injection), so it is read as
  text, never as a formula.
"""

from __future__ import annotations

import unicodedata

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

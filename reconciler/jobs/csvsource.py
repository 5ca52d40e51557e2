"""A CSV file as text lines: the encoding (with a hint when it is not UTF-8) and the delimiter.

A path and stdin go through the same function: both are byte streams here.  Spreadsheets
save CSV as cp1252 (Excel's "CSV") or UTF-16 ("Unicode text") and, in Spanish locales, with
``;`` between fields; all three are common in Mexico.  Pure: no I/O beyond the stream given.
"""

from __future__ import annotations

import codecs
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

from reconciler.errors import ValidationError
from reconciler.jobs.jobfile import MAX_LINE, bounded_lines

UTF16_BOMS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


@dataclass
class Source:
    """The file's lines (the header first), its delimiter and the encoding used."""

    name: str
    lines: Iterator[str]
    delimiter: str
    encoding: str


def _hint(encoding: str | None) -> str:
    if encoding is None:
        return "save it as 'CSV UTF-8', or pass --encoding cp1252 (Excel's plain 'CSV')"
    return f"check --encoding {encoding}"


def _lines(text: IO[str], name: str, encoding: str, limit: int = MAX_LINE) -> Iterator[str]:
    """Lines of a wide encoding (UTF-16/32), decoded by chunks."""
    return bounded_lines(text, name, limit, encoding)


def _byte_lines(stream: IO[bytes], name: str, codec: str, encoding: str | None, limit: int = MAX_LINE) -> Iterator[str]:
    """Lines of an encoding where a newline is the byte ``\\n`` (UTF-8, cp1252...), each decoded on its own,
    so a bad byte is reported on its own line."""
    decode = codecs.getdecoder(codec)
    number = 0
    while True:
        raw = stream.readline(limit * 4 + 1)
        if not raw:
            return
        number += 1
        try:
            line = decode(raw)[0]
        except UnicodeDecodeError as e:
            what = "not UTF-8 text" if encoding is None else f"not {encoding} text"
            raise ValidationError(f"{name}: line {number}: {what} ({e.reason}): {_hint(encoding)}") from e
        if number == 1:
            line = line.removeprefix("\ufeff")
        if len(line) > limit and not line.endswith("\n"):
            raise ValidationError(f"{name}: line {number}: longer than {limit} characters; not a job file")
        yield line


def _utf16_text(head: bytes) -> bool:
    """ASCII text saved as UTF-16 without a BOM: every other byte NUL, the others not (``/dev/zero`` is not)."""
    if len(head) < 4:
        return False
    le = head[1] == head[3] == 0 and head[0] != 0 and head[2] != 0
    be = head[0] == head[2] == 0 and head[1] != 0 and head[3] != 0
    return le or be


def delimiter_of(header: str) -> str:
    """``;`` when the header has more semicolons than commas (a Spanish-locale spreadsheet), else ``,``."""
    return ";" if header.count(";") > header.count(",") else ","


def open_source(stream: IO[bytes], name: str, encoding: str | None = None) -> Source:
    """Read ``stream`` as CSV text: UTF-8 (a BOM is fine) unless ``encoding`` names another.

    A UTF-16 file read as UTF-8 stops at once with a hint, as does a byte that is not UTF-8.
    """
    buffered: Any = stream if isinstance(stream, io.BufferedReader) else io.BufferedReader(stream)  # type: ignore[type-var,unused-ignore]
    head = buffered.peek(4)[:4]
    if encoding is None and (head.startswith(UTF16_BOMS) or _utf16_text(head)):
        raise ValidationError(
            f"{name}: the file is UTF-16 text ('Unicode text' in Excel): save it as 'CSV UTF-8', "
            "or pass --encoding utf-16"
        )
    chosen = encoding or "utf-8-sig"
    try:
        codecs.lookup(chosen)
    except (LookupError, UnicodeError, ValueError) as e:
        raise ValidationError(f"--encoding: unknown encoding {encoding!r} (try utf-8, cp1252, latin-1, utf-16)") from e
    if chosen.replace("_", "-").lower() in ("utf-8", "utf8"):
        chosen = "utf-8-sig"  # a BOM is never part of the header
    if chosen == "utf-8-sig" or "\n".encode(chosen) == b"\n":
        lines = _byte_lines(buffered, name, chosen, encoding)
    else:
        lines = _lines(io.TextIOWrapper(buffered, encoding=chosen, newline=""), name, chosen)
    header = next(lines, "")
    if header.startswith("\ufeff"):
        header = header[1:]

    def all_lines() -> Iterator[str]:
        if header:
            yield header
        yield from lines

    return Source(name, all_lines(), delimiter_of(header), chosen)

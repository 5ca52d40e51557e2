"""The bulk readers' writing side: ``status --json`` and ``export`` of a whole ledger at 100,000+ rows a second.

SQLite builds every row's text and joins a block of rows (:func:`reconciler.ledger.reading.blocks`);
this module writes those blocks as they come, as bytes when the stream is UTF-8 (no decoding and
encoding again of hundreds of megabytes), so the memory used is a block whatever the ledger's size.
Only ``export --tz`` with a zone other than UTC handles rows in Python (its times are rewritten).
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Callable
from datetime import datetime
from typing import IO, TYPE_CHECKING, Any

from reconciler.ledger import reading

if TYPE_CHECKING:
    from zoneinfo import ZoneInfo

    from reconciler.ledger.store import Ledger


def byte_writer(out: IO[str]) -> Callable[[bytes], object]:
    """Write UTF-8 text given as bytes to ``out``: straight to its buffer when it encodes UTF-8 (after
    flushing what it holds), else decoded and written as text, exactly as a ``str`` would be."""
    encoding = getattr(out, "encoding", None)
    buffer = getattr(out, "buffer", None)
    if buffer is not None and encoding and codecs.lookup(encoding).name == "utf-8":
        out.flush()
        return buffer.write  # type: ignore[no-any-return]
    return lambda data: out.write(data.decode("utf-8"))


async def json_array(ledger: Ledger, query: reading.Query, out: IO[str]) -> None:
    """``status --json``: one JSON array, one job per line."""
    out.write("[")
    put = byte_writer(out)
    first = True

    def write(block: bytes) -> None:
        nonlocal first
        put(b"\n" if first else b",\n")
        put(block)
        first = False

    await reading.blocks(ledger, reading.JSON, query, ",\n", write)
    put(b"]\n" if first else b"\n]\n")


async def export(
    ledger: Ledger, query: reading.Query, out: IO[str], fmt: str, excel: bool, shift: Any, now: datetime
) -> int:
    """``export``: CSV (a header, ``--excel``'s BOM) or JSON lines; returns the jobs written."""
    from reconciler.ledger import satview

    await satview.register(ledger.connection, now)
    if fmt == "jsonl":
        return await _lines(ledger, reading.jsonl(now), query, out)
    if excel:
        out.write("\ufeff")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(reading.CSV_FIELDS)
    if shift is None:  # UTC: whole lines from SQLite
        return await _lines(ledger, reading.csv_line(now), query, out)
    n = 0
    async for chunk in reading.chunks(ledger, reading.csv_columns(now), query):
        writer.writerows(map(shift, chunk))
        n += len(chunk)
    return n


async def _lines(ledger: Ledger, line: str, query: reading.Query, out: IO[str]) -> int:
    put = byte_writer(out)

    def write(block: bytes) -> None:
        put(block)
        put(b"\n")

    return await reading.blocks(ledger, line, query, "\n", write)


def shifter(zone: ZoneInfo) -> Any:
    """None in UTC (the rows go out as SQLite made them), else a row mapper to ISO times with ``zone``'s offset."""
    if zone.key == "UTC":
        return None
    from reconciler.clock import parse_iso

    at = [reading.CSV_FIELDS.index(k) for k in ("created_at", "submitted_at", "resolved_at")]

    def shift(row: Any) -> list[Any]:
        out = list(row)
        for i in at:
            if out[i]:
                out[i] = parse_iso(out[i]).astimezone(zone).isoformat(timespec="milliseconds")
        return out

    return shift

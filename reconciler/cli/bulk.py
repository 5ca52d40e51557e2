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
    from functools import partial

    from reconciler.sat import sqlview

    await ledger.connection.create_function(sqlview.PAST, 1, partial(sqlview.past_at, now), deterministic=True)
    sat = sqlview.view_sql(now)
    if fmt == "jsonl":
        return await _lines(ledger, reading.jsonl(sat), query, out)
    if excel:
        out.write("\ufeff")
    csv.writer(out, lineterminator="\n").writerow(reading.CSV_FIELDS)
    if shift is not None:  # a zone: SQLite asks Python for each time, the lines stay SQLite's
        await ledger.connection.create_function(LOCAL, 1, shift, deterministic=True)
    return await _lines(ledger, reading.csv_line(sat, None if shift is None else LOCAL), query, out)


async def _lines(ledger: Ledger, line: str, query: reading.Query, out: IO[str]) -> int:
    put = byte_writer(out)

    def write(block: bytes) -> None:
        put(block)
        put(b"\n")

    return await reading.blocks(ledger, line, query, "\n", write)


LOCAL = "reconciler_local_time"  # the SQL function export --tz registers: a ledger time in the zone


def shifter(zone: ZoneInfo) -> Any:
    """None in UTC (the rows go out as SQLite made them), else a time mapper to ISO times with ``zone``'s
    offset (NULL and empty stay so)."""
    if zone.key == "UTC":
        return None
    from functools import partial

    local = partial(_local, zone, {})

    def shift(when: str | None) -> str | None:
        return local(when) if when else when

    return shift


def _convert(zone: ZoneInfo, when: str) -> str:
    from reconciler.clock import parse_iso

    return parse_iso(when).astimezone(zone).isoformat(timespec="milliseconds")


def _local(zone: ZoneInfo, minutes: dict[str, tuple[str, str] | None], when: str) -> str:
    """``_convert(zone, when)``, a zone lookup per minute instead of per time: a ledger time
    (``YYYY-MM-DDTHH:MM:SS.mmmZ``) keeps its seconds; its minute moves by an offset that holds for
    the whole minute (checked at both ends) in whole minutes.  Anything else is converted as it is."""
    if len(when) != 24 or when[10] != "T" or when[19] != "." or when[23] != "Z":
        return _convert(zone, when)
    key = when[:16]
    if key not in minutes:
        if len(minutes) > 100_000:  # bounded: a million distinct minutes would not pay anyway
            minutes.clear()
        try:
            first, last = _convert(zone, key + ":00.000Z"), _convert(zone, key + ":59.999Z")
        except ValueError:
            first = last = ""
        same = first[:16] == last[:16] and first[23:] == last[23:] and len(first) == 29 and first[19] == "."
        minutes[key] = (first[:16], first[23:]) if same and first[17:19] == "00" else None
    cached = minutes[key]
    seconds, millis = when[17:19], when[20:23]
    if cached is None or when[16] != ":" or not (seconds.isdigit() and seconds < "60" and millis.isdigit()):
        return _convert(zone, when)
    return cached[0] + when[16:23] + cached[1]

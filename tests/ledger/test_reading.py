"""The rows SQLite shapes for export and status --json read back as the Python writers' would."""

from __future__ import annotations

import csv
import io
import sqlite3
from datetime import UTC, datetime
from functools import partial

from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.ledger import reading
from reconciler.redact import csv_cell
from reconciler.sat import sqlview

COLUMNS = "uuid, rfc_emisor, motivo, folio_sustitucion, state, code, message, attempts, created_at, submitted_at, resolved_at, overdue_at, acuse, updated_at, rfc_receptor, total, sat_estado, sat_es_cancelable, sat_estatus_cancelacion, sat_checked_at, sat_until, sat_late_after"


def ledger(messages: list[str | None]) -> sqlite3.Connection:
    db = sqlite3.connect(":memory:")
    db.execute(f"CREATE TABLE jobs ({COLUMNS})")
    for i, message in enumerate(messages):
        db.execute(
            f"INSERT INTO jobs ({COLUMNS}) VALUES (?, 'AAA010101AAA', '02', ?, ?, ?, ?, ?, 't', NULL, 'r', ?, ?, 't', 'XAXX010101000', '10.5', ?, NULL, 'En, proceso', NULL, NULL, NULL)",  # noqa: S608
            (
                f"U{i}",
                None if i % 2 else "F",
                ("ok", "queued")[i % 2],
                None if i % 3 else 200,
                message,
                i,
                None if i % 2 else "o",
                None if i % 2 else b"x",
                message,  # the SAT's answers are free text too
            ),
        )
    return db


@settings(max_examples=200, deadline=None)
@given(st.lists(st.none() | st.text(alphabet=st.sampled_from(list('ab,"\n\r\t=+-@ñ; ')), max_size=8), max_size=6))
def test_sqlite_built_csv_lines_read_back_as_the_values(messages: list[str | None]) -> None:
    """Each line SQLite builds parses back to the row's values (a formula start defused as csv_cell does).

    Python's own csv writer leaves a lone carriage return unquoted, which its reader then splits (the
    case Hypothesis found first); the SQLite lines quote it.
    """
    db = ledger(messages)
    now = datetime(2026, 12, 3, tzinfo=UTC)
    db.create_function(sqlview.PAST, 1, partial(sqlview.past_at, now), deterministic=True)
    sat = sqlview.view_sql(now)
    lines = "".join(
        r[0] + "\n"
        for r in db.execute(f"SELECT {reading.csv_line(sat)} FROM jobs ORDER BY rowid")  # noqa: S608
    )
    raw = db.execute(f"SELECT {reading.csv_columns(sat)} FROM jobs ORDER BY rowid")  # noqa: S608
    expected = [["" if v is None else str(v) for v in row] for row in raw]
    assert {row[reading.CSV_FIELDS.index("sat")] for row in expected} <= {"to send", "not asked"}
    assert list(csv.reader(io.StringIO(lines, newline=""))) == expected
    for message, row in zip(messages, expected, strict=True):
        assert row[6] == ("" if message is None else str(csv_cell(message)))

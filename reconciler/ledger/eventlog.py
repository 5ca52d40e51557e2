"""The one writer of the append-only event log: every ``events`` row is written by :func:`append`.

It runs inside the caller's transaction, so an event commits (or rolls back) with the state
change it records.  The rows travel as JSON arrays that SQLite walks with ``json_each``, up to
:data:`ROWS` per statement, as :mod:`reconciler.ledger.mailbatch` explains: one statement per
chunk instead of one ``executemany`` row per event.

This is also where an outbox hooks in (issue 15: every state change, SAT observation and
conflict writes an outbox row in the same transaction): add its ``INSERT ... SELECT ... FROM
json_each(?2)`` for the kinds it carries to :data:`STATEMENTS`, and every writer of events
writes the outbox rows too, from the same array, without a change anywhere else.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import aiosqlite

from reconciler.jobs.records import dumps

#: One event: the job's UUID (None for an event about no job), kind, source, detail.
EventRow = tuple[str | None, str, str, Mapping[str, Any]]

ROWS = 2000  # events per statement: bounds the JSON text and SQLite's parse of it

_EVENTS = """
    INSERT INTO events (uuid, at, kind, source, detail)
    SELECT json_extract(value, '$[0]'), ?1, json_extract(value, '$[1]'), json_extract(value, '$[2]'),
        json_extract(value, '$[3]')
    FROM json_each(?2) ORDER BY key
"""
#: What one chunk of events writes; each statement takes ``?1`` = the time, ``?2`` = the JSON array.
STATEMENTS: tuple[str, ...] = (_EVENTS,)


async def append(db: aiosqlite.Connection, at: str, rows: Sequence[EventRow | Sequence[Any]]) -> None:
    """Append ``rows`` (``[uuid, kind, source, detail]`` each), all at ``at``, in the order given.

    A detail is stored as its compact JSON text, exactly as :func:`reconciler.jobs.records.dumps`
    writes it.
    """
    for i in range(0, len(rows), ROWS):
        chunk = dumps(rows[i : i + ROWS])
        for statement in STATEMENTS:
            await db.execute(statement, (at, chunk))

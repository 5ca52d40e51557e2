"""A ledger holding every combination the bulk readers shape: each SAT answer against each job state
and each kind of ``sat_late_after`` (none, empty, long past, far future, an offset, garbage, an
impossible date), free text that needs quoting or starts a formula, acuses, overdue jobs, NULLs.

Filled by SQL directly (the CLI would take minutes); the times are far from any ``now`` a test runs at.
"""

from __future__ import annotations

import itertools
import sqlite3
import uuid as uuidlib
from pathlib import Path

from reconciler.sat.answer import (
    CANCELADO,
    CANCELADO_SIN,
    CON_ACEPTACION,
    EN_PROCESO,
    NO_CANCELABLE,
    NO_ENCONTRADO,
    RECHAZADA,
    VIGENTE,
)

STATES = ("queued", "submitting", "awaiting", "ok", "error", "rejected")
ESTADOS = (None, VIGENTE, CANCELADO, NO_ENCONTRADO, "Raro", "")
CANCELABLES = (None, NO_CANCELABLE, CON_ACEPTACION)
ESTATUSES = (None, EN_PROCESO, RECHAZADA, CANCELADO_SIN, 'x,"y')
CHECKED = (None, "2026-01-02T00:00:00.000Z")
LATE_AFTER = (
    None,
    "",
    "2001-01-01T00:00:00.000Z",  # long past
    "2999-01-01T00:00:00.000Z",  # far future
    "2001-01-01T00:00:00+05:00",  # past, not the ledger's own form
    "2999-12-31T23:00:00-14:00",  # future, with an offset
    "not a time",
    "2001-02-30T00:00:00.000Z",  # the ledger's form, no such day
    "2999-13-01T00:00:00.000Z",
)
MESSAGES = (None, "", "plain", 'a "quoted", text', "=SUM(A1)", "-1", "line\nbreak", "lone\rreturn", "ñandú; é")


def combinations() -> list[tuple[str, str | None, str | None, str | None, str | None, str | None]]:
    """(state, estado, es_cancelable, estatus, checked_at, late_after), every one of them."""
    return list(itertools.product(STATES, ESTADOS, CANCELABLES, ESTATUSES, CHECKED, LATE_AFTER))


def fill(path: Path, copies: int = 1) -> int:
    """Add ``copies`` jobs per combination to the migrated ledger at ``path``; returns how many."""
    rows = []
    for i, (state, estado, cancelable, estatus, checked, late) in enumerate(combinations() * copies):
        u = str(uuidlib.UUID(int=i + 1, version=4)).upper()
        at = f"2026-0{1 + i % 9}-1{i % 10}T0{i % 10}:3{i % 10}:00.{i % 1000:03d}Z"
        rows.append(
            (
                u,
                "AAA010101AAA" if i % 3 else "ÑEÑ010101AB1",
                "0" + str(1 + i % 4),
                None if i % 4 else str(uuidlib.UUID(int=10**9 + i, version=4)).upper(),
                state,
                None if i % 5 == 0 else (201, 202, 205, 301)[i % 4],
                MESSAGES[i % len(MESSAGES)],
                i % 7,
                at,
                None if i % 2 else at,
                None if i % 3 else at,
                at,
                None if i % 6 else at,  # overdue_at
                None if i % 4 else b"<Acuse/>",
                None if i % 4 else "ab" * 32,
                None if i % 5 else "XAXX010101000",
                None if i % 5 else f"{i}.50",
                estado,
                cancelable,
                estatus,
                checked,
                late,
                None if i % 2 else "2026-03-01T00:00:00.000Z",  # sat_until
                i % 3,  # sat_calls
            )
        )
    with sqlite3.connect(path) as db:
        db.executemany(
            "INSERT INTO jobs (uuid, rfc_emisor, motivo, folio_sustitucion, state, code, message, attempts,"
            " created_at, submitted_at, resolved_at, updated_at, overdue_at, acuse, acuse_sha256, rfc_receptor,"
            " total, sat_estado, sat_es_cancelable, sat_estatus_cancelacion, sat_checked_at, sat_late_after,"
            " sat_until, sat_calls) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            rows,
        )
    db.close()
    return len(rows)

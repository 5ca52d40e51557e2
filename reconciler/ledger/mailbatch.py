"""The ledger's half of a mailbox pass: what a batch of notifications reads and writes, set-based.

:meth:`reconciler.ledger.store.Ledger.mail_batch` opens one transaction and hands the caller a
:class:`Batch`: what the ledger already holds about the batch. The caller decides (the mailbox's
pure ``plan``) and hands the :class:`Decision` records back to :meth:`Batch.write`, which writes
them in that same transaction: the ledger writes what it is told and decides nothing.

Each statement carries its rows as one JSON array (up to ``_ROWS`` of them) that SQLite walks with
``json_each``, so a batch of thousands of notifications is a handful of statements, each done
inside a single ``sqlite3_step`` with the GIL released. One ``executemany`` row per notification would give the
GIL back and take it again for every row, and with the IMAP and parser threads running
alongside every take can wait: measured on a 50,000-notification replay with one busy Python
thread beside it, executemany went from 1.5 to 2.5 s and these statements stayed at 1.7 s.

:func:`writes` is pure: decisions in, rows out. Only JSON arrays of strings, numbers and null
(and the event details as objects) cross into SQL; ``json_extract`` keeps this SQLite 3.37 safe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import aiosqlite

from reconciler.clock import iso
from reconciler.jobs.notices import Applied, Decision, JobView, SeenMessage
from reconciler.jobs.records import dumps
from reconciler.jobs.states import TERMINAL, State, Trigger, step
from reconciler.ledger import eventlog

# Rows per statement: bounds the JSON text and SQLite's parse of it. Replaying 50,000 notifications
# in batches of 10,000, peak RSS was 113 MB with one statement per batch, 78 MB with statements of
# 2,000 rows, and 72 MB with the executemany this replaced.
_ROWS = 2000
SOURCE = "mailbox"  # the events' source

_KNOWN = (
    "SELECT json_group_array(uid) FROM messages WHERE folder = ? AND uidvalidity = ? "
    "AND uid IN (SELECT value FROM json_each(?))"
)
_JOBS = (
    "SELECT json_group_array(json_array(uuid, state, claim)) FROM jobs WHERE uuid IN (SELECT value FROM json_each(?))"
)
_APPLIED = (
    "SELECT json_group_array(message_id) FROM messages WHERE outcome IN ('applied', 'claimed') "
    "AND message_id IN (SELECT value FROM json_each(?))"
)
# Row layouts: jobs [state, resolved_at, claim, check_at, message, uuid]; events [uuid, kind, source,
# detail] (reconciler.ledger.eventlog); messages [uid, message_id, uuid, status, outcome, mark].
_UPDATE_JOBS = """
    UPDATE jobs SET state = json_extract(u.value, '$[0]'), updated_at = ?1,
        resolved_at = coalesce(json_extract(u.value, '$[1]'), jobs.resolved_at),
        claim = coalesce(json_extract(u.value, '$[2]'), jobs.claim),
        check_at = coalesce(json_extract(u.value, '$[3]'), jobs.check_at),
        message = json_extract(u.value, '$[4]')
    FROM json_each(?2) AS u WHERE jobs.uuid = json_extract(u.value, '$[5]')
"""
_INSERT_MESSAGES = """
    INSERT INTO messages (folder, uidvalidity, uid, message_id, uuid, status, outcome, mark, seen_at)
    SELECT ?1, ?2, json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
        json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'), ?3
    FROM json_each(?4) ORDER BY key
"""
_CHECKPOINT = """
    INSERT INTO mailbox_state (folder, uidvalidity, last_uid, marked_uid, updated_at) VALUES (?, ?, ?, ?, ?)
    ON CONFLICT (folder) DO UPDATE SET
        last_uid = CASE WHEN uidvalidity = excluded.uidvalidity
            THEN max(last_uid, excluded.last_uid) ELSE excluded.last_uid END,
        marked_uid = CASE WHEN uidvalidity = excluded.uidvalidity
            THEN max(marked_uid, excluded.marked_uid) ELSE excluded.marked_uid END,
        uidvalidity = excluded.uidvalidity, updated_at = excluded.updated_at
"""  # a new UIDVALIDITY starts both UID counters afresh


@dataclass(frozen=True, slots=True)
class BatchState:
    """What the ledger already holds about one batch."""

    known_uids: frozenset[int]  # UIDs of the batch already recorded under this UIDVALIDITY
    fresh: list[SeenMessage]  # the batch's other messages, in order
    jobs: dict[str, JobView]  # the jobs the batch names
    applied_ids: frozenset[str]  # Message-IDs of the batch already applied
    duplicates: list[SeenMessage] = field(default_factory=list)  # the batch's messages under known_uids


class Batch:
    """One batch of notifications inside its write transaction: read what it holds, write what is decided.

    Only :meth:`reconciler.ledger.store.Ledger.mail_batch` makes one; it is valid inside that block.
    """

    def __init__(self, db: aiosqlite.Connection, folder: str, uidvalidity: int, state: BatchState) -> None:
        self._db = db
        self.folder = folder
        self.uidvalidity = uidvalidity
        self.state = state
        self._written = False

    @property
    def fresh(self) -> list[SeenMessage]:
        """The batch's messages not yet recorded under this UIDVALIDITY, in order: one decision each."""
        return self.state.fresh

    @property
    def jobs(self) -> dict[str, JobView]:
        """The jobs the fresh messages name, as they stand in this transaction."""
        return self.state.jobs

    @property
    def applied_ids(self) -> frozenset[str]:
        """Message-IDs of the fresh messages that were already applied (under any UID)."""
        return self.state.applied_ids

    async def write(
        self, decisions: Sequence[Decision], last_uid: int, marked_uid: int, now: datetime
    ) -> list[Applied]:
        """Write one decision per fresh message (in order) and advance the checkpoint and the mark watermark.

        The messages already recorded under this UIDVALIDITY are left alone and reported as
        duplicates; a decision for any other message than the fresh ones is a programming error
        (ValueError): that is what keeps each message applied exactly once.
        """
        if self._written:
            raise ValueError(f"mailbox batch of {self.folder}: written twice in one transaction")
        fresh = self.state.fresh
        if len(decisions) != len(fresh) or any(d.message.uid != m.uid for d, m in zip(decisions, fresh, strict=False)):
            raise ValueError(f"mailbox batch of {self.folder}: decisions do not match the batch's fresh messages")
        self._written = True
        at = iso(now)
        rows = writes(self.folder, self.uidvalidity, decisions, self.state.jobs, at)
        await write(self._db, self.folder, self.uidvalidity, rows, last_uid, marked_uid, at)
        result = [Applied(d.message.uid, d.outcome, d.message.uuid, d.mark) for d in decisions]
        result.extend(Applied(m.uid, "duplicate", m.uuid, False) for m in self.state.duplicates)
        return result


@dataclass(slots=True)
class Writes:
    """The rows one batch writes, in the layouts above."""

    jobs: list[list[Any]] = field(default_factory=list)
    events: list[list[Any]] = field(default_factory=list)
    messages: list[list[Any]] = field(default_factory=list)


async def read_state(
    db: aiosqlite.Connection, folder: str, uidvalidity: int, messages: Sequence[SeenMessage]
) -> BatchState:
    known = frozenset(await _one_array(db, _KNOWN, (folder, uidvalidity, dumps([m.uid for m in messages]))))
    fresh = [m for m in messages if m.uid not in known]
    rows = await _one_array(db, _JOBS, (dumps(sorted({m.uuid for m in fresh if m.uuid})),))
    applied = await _one_array(db, _APPLIED, (dumps(sorted({m.message_id for m in fresh if m.message_id})),))
    jobs = {uuid: JobView(State(state), claim) for uuid, state, claim in rows}
    return BatchState(known, fresh, jobs, frozenset(applied), [m for m in messages if m.uid in known])


def writes(folder: str, uidvalidity: int, decisions: Sequence[Decision], jobs: dict[str, JobView], at: str) -> Writes:
    """The rows for ``decisions``: one event per message (plus a transition when a job's state
    changed), one ``messages`` record each, and one jobs row per job (later decisions on the same
    job folded into the earlier, as sequential updates would leave it)."""
    out = Writes()
    updates: dict[str, list[Any]] = {}
    states = {uuid: view.state for uuid, view in jobs.items()}  # as the decisions so far leave them
    for d in decisions:
        m = d.message
        detail = {
            "folder": folder,
            "uidvalidity": uidvalidity,
            "uid": m.uid,
            "message_id": m.message_id,
            "sender": m.sender,
            "status": m.status,
            "date": m.date,
            "outcome": d.outcome,
            "reason": d.reason,
            "uuid": m.uuid if d.outcome == "orphan" else None,
        }
        kind = "notification" if d.outcome in ("applied", "claimed") else d.outcome
        job_uuid = m.uuid if m.uuid in jobs else None
        out.events.append([job_uuid, kind, SOURCE, {k: v for k, v in detail.items() if v is not None}])
        changed = d.after != d.before
        if changed or d.claim or d.check:
            assert m.uuid is not None and d.after is not None
            _check_step(m.uuid, states.get(m.uuid), d)
            states[m.uuid] = d.after
            row = [
                str(d.after),
                at if d.after in TERMINAL else None,
                "OK" if d.claim else None,
                at if d.claim or d.check else None,
                f"notification: {m.status}",
                m.uuid,
            ]
            if (earlier := updates.get(m.uuid)) is not None:  # coalesce(new, old), as two UPDATEs would
                row[1:4] = [new if new is not None else old for new, old in zip(row[1:4], earlier[1:4], strict=True)]
            updates[m.uuid] = row
            if changed:
                out.events.append([m.uuid, "transition", SOURCE, _transition(d.before, d.after, d.trigger)])
        out.messages.append([m.uid, m.message_id, m.uuid, m.status, d.outcome, int(d.mark)])
    out.jobs = list(updates.values())
    return out


async def write(
    db: aiosqlite.Connection,
    folder: str,
    uidvalidity: int,
    rows: Writes,
    last_uid: int,
    marked_uid: int,
    at: str,
) -> None:
    """Write one batch's rows and advance the checkpoint and the mark watermark."""
    for i in range(0, len(rows.jobs), _ROWS):
        await db.execute(_UPDATE_JOBS, (at, dumps(rows.jobs[i : i + _ROWS])))
    await eventlog.append(db, at, rows.events)
    for i in range(0, len(rows.messages), _ROWS):
        await db.execute(_INSERT_MESSAGES, (folder, uidvalidity, at, dumps(rows.messages[i : i + _ROWS])))
    await db.execute(_CHECKPOINT, (folder, uidvalidity, last_uid, marked_uid, at))


def _check_step(uuid: str, current: State | None, d: Decision) -> None:
    """The ledger's own guard: a decision may only move a job along an edge of the state table."""
    moved = d.after != d.before
    legal = current is not None and d.before == current
    if legal and moved:
        legal = current is not None and d.trigger is not None and step(current, d.trigger).new == d.after
    if not legal:
        raise ValueError(
            f"job {uuid}: a mailbox decision {d.before} -> {d.after} by {d.trigger} does not follow"
            f" the state table from {current}"
        )


@cache
def _transition(before: State | None, after: State | None, trigger: Trigger | None) -> dict[str, str]:
    return {"from": str(before), "to": str(after), "trigger": str(trigger)}  # shared: never mutated


async def _one_array(db: aiosqlite.Connection, sql: str, params: Sequence[Any]) -> list[Any]:
    """The JSON array a ``json_group_array`` query returns, as a list: one row instead of thousands."""
    async with db.execute(sql, params) as cur:
        row = await cur.fetchone()
    return list(json.loads(row[0])) if row is not None and row[0] else []

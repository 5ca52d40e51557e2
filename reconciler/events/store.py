"""The outbox's tables: the event feed, each endpoint's cursor and each delivery's state.

The outbox rows themselves are written by triggers in the same transaction as the
change they report (:mod:`reconciler.ledger.schema`, migration 4); this module reads
them, fans them out to endpoints, and records what each delivery attempt did.  It
writes what it is told: the decisions come from :mod:`reconciler.events.outbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from reconciler.clock import iso
from reconciler.events.outbox import Attempt, Next, OutboxEvent, Verdict, wants
from reconciler.ledger.store import Ledger

_EVENT_COLUMNS = "o.seq, o.id, o.at, o.type, o.uuid, o.payload"
_FANOUT = 5000  # outbox rows looked at per endpoint per transaction


@dataclass(frozen=True, slots=True)
class Due:
    event: OutboxEvent
    attempts: int


@dataclass(frozen=True, slots=True)
class EndpointStat:
    name: str
    pending: int
    delivered: int
    failed: int
    oldest_pending_at: str | None
    last_success_at: str | None
    disabled_at: str | None
    disabled_reason: str | None
    last_error: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "endpoint": self.name,
            "pending": self.pending,
            "delivered": self.delivered,
            "failed": self.failed,
            "oldest_pending_at": self.oldest_pending_at,
            "last_success_at": self.last_success_at,
            "disabled_at": self.disabled_at,
            "disabled_reason": self.disabled_reason,
            "last_error": self.last_error,
        }


@dataclass(frozen=True, slots=True)
class FailedDelivery:
    endpoint: str
    event: OutboxEvent
    state: str
    attempts: int
    last_status: int | None
    last_error: str | None
    updated_at: str


def _event(row: Sequence[Any]) -> OutboxEvent:
    return OutboxEvent.from_row(row[0], row[1], row[2], row[3], row[4], row[5])


class OutboxStore:
    def __init__(self, ledger: Ledger) -> None:
        self.ledger = ledger

    # -- the feed -----------------------------------------------------------

    async def read(
        self, *, after: int = 0, types: Sequence[str] = (), limit: int = 1000
    ) -> tuple[list[OutboxEvent], int]:
        """Up to ``limit`` events with ``seq > after`` in order (``types`` filters like an endpoint's
        ``events``), and the last seq looked at: the next read starts after it."""
        out: list[OutboxEvent] = []
        filters = tuple(types)
        while len(out) < limit:
            rows = await self.ledger.fetch(
                f"SELECT {_EVENT_COLUMNS} FROM outbox o WHERE o.seq > ? ORDER BY o.seq LIMIT ?", (after, limit)
            )
            for row in rows:
                event = _event(row)
                if wants(filters, event.type):
                    out.append(event)
                after = event.seq
                if len(out) == limit:
                    break
            if len(rows) < limit:
                break
        return out, after

    async def exists(self, seq: int) -> bool:
        return bool(await self.ledger.fetch("SELECT 1 FROM outbox WHERE seq = ?", (seq,)))

    async def seq_of(self, ref: str) -> int | None:
        """The seq an event reference names: a number, or an ``evt_`` id."""
        if ref.isascii() and ref.isdigit():
            return int(ref)
        rows = await self.ledger.fetch("SELECT seq FROM outbox WHERE id = ?", (ref,))
        return int(rows[0][0]) if rows else None

    async def last_seq(self) -> int:
        rows = await self.ledger.fetch("SELECT coalesce(max(seq), 0) FROM outbox")
        return int(rows[0][0])

    # -- fan-out and delivery ----------------------------------------------

    async def register(self, names: Sequence[str], now: datetime) -> None:
        """Endpoints seen for the first time start at the beginning of the retained feed."""
        async with self.ledger.transaction() as db:
            await db.executemany(
                "INSERT OR IGNORE INTO endpoints (name, cursor, created_at) VALUES (?, 0, ?)",
                [(n, iso(now)) for n in names],
            )

    async def fan_out(self, endpoint: str, filters: tuple[str, ...], now: datetime) -> int:
        """Create pending deliveries for the endpoint's new outbox rows; returns how many."""
        at = iso(now)
        async with self.ledger.transaction() as db:
            async with db.execute("SELECT cursor FROM endpoints WHERE name = ?", (endpoint,)) as cur:
                row = await cur.fetchone()
            cursor = int(row[0]) if row else 0
            async with db.execute(
                "SELECT seq, type, uuid FROM outbox WHERE seq > ? ORDER BY seq LIMIT ?", (cursor, _FANOUT)
            ) as cur:
                rows = list(await cur.fetchall())
            if not rows:
                return 0
            wanted = [(endpoint, r[0], r[2], at, at) for r in rows if wants(filters, r[1])]
            await db.executemany(
                "INSERT OR IGNORE INTO deliveries (endpoint, seq, uuid, state, next_at, updated_at)"
                " VALUES (?, ?, ?, 'pending', ?, ?)",
                wanted,
            )
            await db.execute("UPDATE endpoints SET cursor = ? WHERE name = ?", (rows[-1][0], endpoint))
        return len(wanted)

    async def due(self, endpoint: str, now: datetime, limit: int) -> list[Due]:
        """Due pending deliveries, oldest first, at most one per job: a job's later event waits for its earlier."""
        rows = await self.ledger.fetch(
            f"""
            SELECT {_EVENT_COLUMNS}, d.attempts FROM deliveries d JOIN outbox o ON o.seq = d.seq
            WHERE d.endpoint = ?1 AND d.state = 'pending' AND d.next_at <= ?2
              AND NOT EXISTS (SELECT 1 FROM deliveries e
                              WHERE e.endpoint = ?1 AND e.state = 'pending' AND e.uuid = d.uuid AND e.seq < d.seq)
            ORDER BY d.seq LIMIT ?3
            """,
            (endpoint, iso(now), limit),
        )
        return [Due(_event(r), int(r[6])) for r in rows]

    async def next_due_at(self, endpoint: str) -> str | None:
        rows = await self.ledger.fetch(
            "SELECT min(next_at) FROM deliveries WHERE endpoint = ? AND state = 'pending'", (endpoint,)
        )
        return None if rows[0][0] is None else str(rows[0][0])

    async def record(self, endpoint: str, results: Sequence[tuple[Due, Attempt, Next]], now: datetime) -> None:
        """Write what a batch of attempts did, in one transaction."""
        at = iso(now)
        rows = []
        for due, attempt, nxt in results:
            state = {Verdict.DELIVERED: "delivered", Verdict.FAILED: "failed"}.get(nxt.verdict, "pending")
            next_at = iso(nxt.next_at) if nxt.next_at is not None else at
            rows.append((state, next_at, attempt.status, attempt.error, at, endpoint, due.event.seq))
        gone = [a for _d, a, n in results if n.verdict is Verdict.GONE]
        async with self.ledger.transaction() as db:
            await db.executemany(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, next_at = ?, last_status = ?,"
                " last_error = ?, updated_at = ? WHERE endpoint = ? AND seq = ?",
                rows,
            )
            if any(n.verdict is Verdict.DELIVERED for _d, _a, n in results):
                await db.execute("UPDATE endpoints SET last_success_at = ? WHERE name = ?", (at, endpoint))
            if gone:
                await db.execute(
                    "UPDATE endpoints SET disabled_at = ?, disabled_reason = ? WHERE name = ?",
                    (at, gone[0].describe(), endpoint),
                )

    async def disabled(self, endpoint: str) -> str | None:
        rows = await self.ledger.fetch("SELECT disabled_at FROM endpoints WHERE name = ?", (endpoint,))
        return str(rows[0][0]) if rows and rows[0][0] is not None else None

    async def enable(self, endpoint: str) -> bool:
        async with self.ledger.transaction() as db:
            cur = await db.execute(
                "UPDATE endpoints SET disabled_at = NULL, disabled_reason = NULL"
                " WHERE name = ? AND disabled_at IS NOT NULL",
                (endpoint,),
            )
            return cur.rowcount > 0

    async def redeliver(self, seqs: Sequence[int], now: datetime) -> int:
        """Queue these events again wherever they were delivered, failed or pending; returns deliveries queued."""
        at = iso(now)
        count = 0
        async with self.ledger.transaction() as db:
            for seq in seqs:
                cur = await db.execute(
                    "UPDATE deliveries SET state = 'pending', attempts = 0, next_at = ?1, updated_at = ?1"
                    " WHERE seq = ?2",
                    (at, seq),
                )
                count += max(cur.rowcount, 0)
        return count

    async def prune(self, now: datetime, retention_s: float, active: Sequence[str]) -> int:
        """Delete events older than the retention that every active endpoint has delivered (or never wanted)."""
        cutoff = iso(now - timedelta(seconds=retention_s))
        names = list(active)
        if names:  # an event past some active endpoint's cursor has not been fanned out to it yet
            floor = f"(SELECT coalesce(min(cursor), 0) FROM endpoints WHERE name IN ({','.join('?' * len(names))}))"
        else:
            floor = "(SELECT coalesce(max(seq), 0) FROM outbox)"
        async with self.ledger.transaction() as db:
            where = (
                f"o.at < ? AND o.seq <= {floor} AND NOT EXISTS "
                "(SELECT 1 FROM deliveries d WHERE d.seq = o.seq AND d.state != 'delivered')"
            )
            params: list[Any] = [cutoff, *names]
            await db.execute(f"DELETE FROM deliveries WHERE seq IN (SELECT o.seq FROM outbox o WHERE {where})", params)
            cur = await db.execute(f"DELETE FROM outbox AS o WHERE {where}", params)
            return max(cur.rowcount, 0)

    # -- reports ------------------------------------------------------------

    async def stats(self) -> list[EndpointStat]:
        rows = await self.ledger.fetch(
            """
            SELECT e.name,
                   (SELECT count(*) FROM deliveries d WHERE d.endpoint = e.name AND d.state = 'pending'),
                   (SELECT count(*) FROM deliveries d WHERE d.endpoint = e.name AND d.state = 'delivered'),
                   (SELECT count(*) FROM deliveries d WHERE d.endpoint = e.name AND d.state = 'failed'),
                   (SELECT min(o.at) FROM deliveries d JOIN outbox o ON o.seq = d.seq
                    WHERE d.endpoint = e.name AND d.state = 'pending'),
                   e.last_success_at, e.disabled_at, e.disabled_reason,
                   (SELECT d.last_error FROM deliveries d WHERE d.endpoint = e.name AND d.last_error IS NOT NULL
                    ORDER BY d.updated_at DESC LIMIT 1)
            FROM endpoints e ORDER BY e.name
            """
        )
        return [EndpointStat(*r) for r in rows]

    async def failed(self, limit: int = 1000) -> list[FailedDelivery]:
        """Deliveries that failed for good, or are pending after at least one failed attempt."""
        rows = await self.ledger.fetch(
            f"""
            SELECT d.endpoint, {_EVENT_COLUMNS}, d.state, d.attempts, d.last_status, d.last_error, d.updated_at
            FROM deliveries d JOIN outbox o ON o.seq = d.seq
            WHERE d.state = 'failed' OR (d.state = 'pending' AND d.attempts > 0)
            ORDER BY d.seq, d.endpoint LIMIT ?
            """,
            (limit,),
        )
        return [FailedDelivery(r[0], _event(r[1:7]), r[7], r[8], r[9], r[10], r[11]) for r in rows]

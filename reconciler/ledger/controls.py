"""Operator controls in the ledger: holds, the pause, requeue and forget, each with its event.

Every control records who did it (``actor``: the OS user and the command, given by the CLI)
in an event, in the same transaction as the change.  The daemon reads the pause and the holds
from here on every submit pass, so a control takes effect without a restart.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from reconciler.clock import iso
from reconciler.errors import JobNotFoundError, ValidationError
from reconciler.jobs.records import Change, dumps
from reconciler.jobs.states import REQUEUABLE, TERMINAL, State, Trigger
from reconciler.ledger import eventlog

if TYPE_CHECKING:
    from reconciler.ledger.store import Ledger

PAUSED = "paused"  # the facts key: present while submissions are paused


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a control did to one job: ``changed`` or, when not, why."""

    uuid: str
    changed: bool
    note: str

    def as_dict(self) -> dict[str, Any]:
        return {"uuid": self.uuid, "changed": self.changed, "note": self.note}


def _by(actor: Mapping[str, str]) -> str:
    return actor.get("user", "?")


async def _states(ledger: Ledger, uuids: Sequence[str]) -> dict[str, tuple[State, int]]:
    found: dict[str, tuple[State, int]] = {}
    for i in range(0, len(uuids), 500):
        chunk = list(uuids[i : i + 500])
        rows = await ledger.read(
            f"SELECT uuid, state, attempts FROM jobs WHERE uuid IN ({','.join('?' * len(chunk))})",  # noqa: S608
            chunk,
        )
        found.update({r[0]: (State(r[1]), int(r[2])) for r in rows})
    return found


async def held(ledger: Ledger) -> dict[str, dict[str, str]]:
    """Every held job: uuid -> when and by whom."""
    rows = await ledger.read("SELECT uuid, at, by FROM holds ORDER BY at, uuid")
    return {r[0]: {"at": r[1], "by": r[2]} for r in rows}


async def hold(ledger: Ledger, uuids: Sequence[str], actor: Mapping[str, str], now: datetime) -> list[Outcome]:
    """Hold each unresolved job (a held job is never sent); a finished or unknown job is reported, not held."""
    at = iso(now)
    out: list[Outcome] = []
    async with ledger.transaction() as db:
        states = await _states(ledger, uuids)
        already = {u for u in uuids if u in await held(ledger)}
        for uuid in uuids:
            current = states.get(uuid)
            if current is None:
                out.append(Outcome(uuid, False, "not in the ledger"))
            elif current[0] in TERMINAL:
                out.append(Outcome(uuid, False, f"already {current[0]}: nothing left to send"))
            elif uuid in already:
                out.append(Outcome(uuid, False, "already held"))
            else:
                await db.execute("INSERT INTO holds (uuid, at, by) VALUES (?, ?, ?)", (uuid, at, _by(actor)))
                await eventlog.append(db, at, [(uuid, "hold", "cli", {"action": "held", **actor})])
                already.add(uuid)
                note = "held" if current[0] == State.QUEUED else f"held ({current[0]}: a resend is held)"
                out.append(Outcome(uuid, True, note))
    return out


async def release(ledger: Ledger, uuids: Sequence[str], actor: Mapping[str, str], now: datetime) -> list[Outcome]:
    """Release held jobs: the submitter sends them at its next pass when due."""
    at = iso(now)
    out: list[Outcome] = []
    async with ledger.transaction() as db:
        for uuid in uuids:
            async with db.execute("DELETE FROM holds WHERE uuid = ? RETURNING uuid", (uuid,)) as cur:
                gone = bool(await cur.fetchall())
            if gone:
                await eventlog.append(db, at, [(uuid, "hold", "cli", {"action": "released", **actor})])
            out.append(Outcome(uuid, gone, "released" if gone else "was not held"))
    return out


async def pause(ledger: Ledger, actor: Mapping[str, str], reason: str | None, now: datetime) -> bool:
    """Stop all submissions (the mailbox and status calls carry on); False if already paused."""
    at = iso(now)
    async with ledger.transaction() as db:
        async with db.execute("SELECT 1 FROM facts WHERE key = ?", (PAUSED,)) as cur:
            if await cur.fetchall():
                return False
        detail = {"by": _by(actor), "command": actor.get("command", ""), "reason": reason or ""}
        await db.execute("INSERT INTO facts (key, value, at) VALUES (?, ?, ?)", (PAUSED, dumps(detail), at))
        await eventlog.append(db, at, [(None, "pause", "cli", {"action": "paused", "reason": reason or "", **actor})])
    return True


async def unpause(ledger: Ledger, actor: Mapping[str, str], now: datetime) -> bool:
    """Let submissions start again; False if they were not paused."""
    at = iso(now)
    async with ledger.transaction() as db:
        async with db.execute("DELETE FROM facts WHERE key = ? RETURNING key", (PAUSED,)) as cur:
            if not await cur.fetchall():
                return False
        await eventlog.append(db, at, [(None, "pause", "cli", {"action": "unpaused", **actor})])
    return True


async def requeueable(ledger: Ledger, state: State, rfc: str | None) -> list[str]:
    """The jobs ``requeue --state`` selects."""
    if state not in REQUEUABLE:
        raise ValidationError(f"--state: only {' or '.join(REQUEUABLE)} jobs can be sent again, not {state}")
    sql = "SELECT uuid FROM jobs WHERE state = ?1 AND (?2 IS NULL OR rfc_emisor = ?2) ORDER BY created_at"
    return [r[0] for r in await ledger.read(sql, (str(state), rfc))]


async def requeue(ledger: Ledger, uuids: Sequence[str], actor: Mapping[str, str], now: datetime) -> int:
    """Send error or rejected jobs again, all or nothing: any other state or an unknown UUID refuses all."""
    states = await _states(ledger, uuids)
    for uuid in uuids:
        if uuid not in states:
            raise JobNotFoundError(f"job {uuid} is not in the ledger; nothing requeued")
        if states[uuid][0] not in REQUEUABLE:
            raise ValidationError(
                f"job {uuid} is {states[uuid][0]}: only error or rejected jobs can be sent again; nothing requeued"
            )
    at = iso(now)
    fresh = {
        "next_attempt_at": at,
        "resolved_at": None,
        "code": None,
        "message": None,
        "claim": None,
        "check_at": None,
        "checks": 0,
        "overdue_at": None,
    }
    changes = [Change(u, Trigger.REQUEUE, "cli", fresh, [("requeue", {"action": "requeued", **actor})]) for u in uuids]
    steps = await ledger.apply(changes, now)
    return sum(1 for s in steps if s.new is not None)


async def forget(ledger: Ledger, uuids: Sequence[str], actor: Mapping[str, str], now: datetime) -> int:
    """Delete queued jobs that were never sent, all or nothing (their events stay, with a ``forgotten`` one)."""
    at = iso(now)
    async with ledger.transaction() as db:
        states = await _states(ledger, uuids)
        for uuid in uuids:
            if uuid not in states:
                raise JobNotFoundError(f"job {uuid} is not in the ledger; nothing forgotten")
            state, attempts = states[uuid]
            if state != State.QUEUED or attempts:
                why = f"is {state}" if state != State.QUEUED else f"was claimed for sending {attempts} time(s)"
                raise ValidationError(
                    f"job {uuid} {why}: only a queued job never sent can be forgotten; nothing forgotten"
                )
        for uuid in uuids:
            await db.execute("DELETE FROM holds WHERE uuid = ?", (uuid,))
            await db.execute("DELETE FROM jobs WHERE uuid = ? AND state = 'queued' AND attempts = 0", (uuid,))
            await eventlog.append(db, at, [(uuid, "forgotten", "cli", {"action": "forgotten", **actor})])
    return len(uuids)

"""The ledger's mailbox batch: it writes the decisions it is handed, exactly once, or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.jobs.notices import Decision, SeenMessage
from reconciler.jobs.states import State
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.mailbox.reconcile import plan

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
U1 = "71452784-AFC7-4BE5-8623-3BA1436D573B"


def notice(uid: int) -> SeenMessage:
    return SeenMessage(uid, f"<m{uid}@sf>", "notification", U1, "OK", "n@solucionfactible.com", None, None)


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    async with await Ledger.open(tmp_path / "l.db") as opened:
        await opened.add_jobs([job_spec(U1, "AAA010101AAA")], T0, "test")
        yield opened


async def test_the_batch_shows_what_the_ledger_holds_and_writes_what_it_is_told(ledger: Ledger) -> None:
    async with ledger.mail_batch("INBOX", 1, [notice(1)]) as batch:
        assert [m.uid for m in batch.fresh] == [1] and batch.jobs[U1].state == State.QUEUED
        assert batch.applied_ids == frozenset()
        [told] = plan(batch.fresh, batch.jobs, batch.applied_ids, False)
        # the ledger does not decide: a decision that changes nothing is written as such
        quiet = Decision(told.message, "duplicate", None, False, False, "said so", State.QUEUED, State.QUEUED)
        [done] = await batch.write([quiet], 1, 0, T0)
    assert (done.uid, done.outcome, done.mark) == (1, "duplicate", False)
    assert (await ledger.get_job(U1)).state == State.QUEUED and await ledger.checkpoint("INBOX") == (1, 1)
    async with ledger.mail_batch("INBOX", 1, [notice(1), notice(2)]) as batch:
        assert [m.uid for m in batch.fresh] == [2] and batch.applied_ids == frozenset()
        applied = await batch.write(plan(batch.fresh, batch.jobs, batch.applied_ids, False), 2, 0, T0)
    assert [(a.uid, a.outcome) for a in applied] == [(2, "applied"), (1, "duplicate")]


@pytest.mark.parametrize("which", ["none", "known uid too", "another uid", "twice"])
async def test_decisions_that_are_not_one_per_fresh_message_are_refused(ledger: Ledger, which: str) -> None:
    async with ledger.mail_batch("INBOX", 1, [notice(1)]) as batch:
        await batch.write(plan(batch.fresh, batch.jobs, batch.applied_ids, False), 1, 0, T0)
    async with ledger.mail_batch("INBOX", 1, [notice(1), notice(2)]) as batch:
        known = plan([notice(1)], batch.jobs, (), False)
        fresh = plan(batch.fresh, batch.jobs, batch.applied_ids, False)
        told = {"none": [], "known uid too": known + fresh, "another uid": plan([notice(3)], {}, (), False)}
        if which == "twice":
            await batch.write(fresh, 2, 0, T0)
        with pytest.raises(ValueError, match="mailbox batch of INBOX"):
            await batch.write(told.get(which, fresh), 2, 0, T0)
    assert await ledger.checkpoint("INBOX") == (1, 2 if which == "twice" else 1)  # the refused write left nothing


async def test_an_error_inside_the_block_writes_nothing(ledger: Ledger) -> None:
    with pytest.raises(RuntimeError):
        async with ledger.mail_batch("INBOX", 1, [notice(1)]) as batch:
            await batch.write(plan(batch.fresh, batch.jobs, batch.applied_ids, False), 1, 0, T0)
            raise RuntimeError("crash between the write and the commit")
    assert await ledger.checkpoint("INBOX") is None and (await ledger.get_job(U1)).state == State.QUEUED
    assert await ledger.event_count("notification") == 0

"""The ledger's mailbox batch: it writes the decisions it is handed, exactly once, or nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from reconciler.jobs.notices import Decision, JobView, SeenMessage
from reconciler.jobs.states import State, Trigger
from reconciler.jobs.validation import job_spec
from reconciler.ledger.mailbatch import writes
from reconciler.ledger.store import Ledger
from reconciler.mailbox.reconcile import plan

T0 = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
U1 = "71452784-AFC7-4BE5-8623-3BA1436D573B"
U2 = "E329DD15-7D0B-44E9-A204-51A7443D1FBE"


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


@pytest.mark.parametrize(
    ("before", "trigger", "after"),
    [
        (State.QUEUED, None, State.OK),  # no trigger, yet a new state
        (State.QUEUED, Trigger.NOTIFIED, State.OK),  # a trigger whose edge leads elsewhere
        (State.AWAITING, Trigger.CONFIRMED_OK, State.OK),  # told the job was awaiting: it is queued
    ],
)
async def test_a_decision_off_the_state_table_is_refused(
    ledger: Ledger, before: State, trigger: Trigger | None, after: State
) -> None:
    with pytest.raises(ValueError, match=f"job {U1}: a mailbox decision"):
        async with ledger.mail_batch("INBOX", 1, [notice(1)]) as batch:
            forged = Decision(batch.fresh[0], "applied", trigger, False, True, "forged", before, after)
            await batch.write([forged], 1, 0, T0)
    assert (await ledger.get_job(U1)).state == State.QUEUED and await ledger.checkpoint("INBOX") is None


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["OK", "ERROR"]),
            st.sampled_from(["notification", "notification", "notification", "untrusted", "malformed"]),
            st.sampled_from([U1, U1, U2, "11111111-1111-1111-1111-111111111111"]),
            st.integers(0, 4),  # Message-ID: repeats are duplicates
        ),
        max_size=10,
    ),
    st.sampled_from(list(State)),
    st.sampled_from(list(State)),
    st.booleans(),
)
@example([("OK", "notification", U1, 1), ("OK", "notification", U1, 2)], State.QUEUED, State.OK, True)  # two steps
@example([("ERROR", "notification", U2, 1), ("OK", "notification", U2, 2)], State.OK, State.AWAITING, False)
@settings(max_examples=300)
def test_every_plan_passes_the_ledgers_guard(
    batch: list[tuple[str, str, str, int]], first: State, second: State, confirm: bool
) -> None:
    messages = [
        SeenMessage(uid, f"<{n}@sf>", verdict, uuid, status, "n@sf.com", None, None)  # type: ignore[arg-type]
        for uid, (status, verdict, uuid, n) in enumerate(batch, 1)
    ]
    jobs = {U1: JobView(first, None), U2: JobView(second, "OK")}
    rows = writes("INBOX", 1, plan(messages, jobs, (), confirm), jobs, "t")
    assert len(rows.messages) == len(messages)

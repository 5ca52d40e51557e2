"""A pass's bookkeeping: fetch groups, the mark watermark, the counts, the capped warnings; no IMAP server."""

from __future__ import annotations

import asyncio
import logging

import pytest

from reconciler.jobs.notices import Applied, SeenMessage
from reconciler.mailbox.passes import Batch, Complaints, Fetches, Marks, Tally, settle

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"


def msg(uid: int, reason: str | None = None) -> SeenMessage:
    return SeenMessage(uid, f"<{uid}@sf>", "notification", None, "OK", "n@sf.com", reason, None)


async def test_marks_watermark_follows_commit_order_not_completion_order() -> None:
    loop = asyncio.get_running_loop()
    first, second = loop.create_future(), loop.create_future()
    marks = Marks()
    marks.add(first, 10)
    marks.add(None, 15)  # a group with nothing to mark
    marks.add(second, 20)
    assert marks.watermark() == 0
    second.set_result(None)  # done out of order: the watermark may not pass the first group
    assert marks.watermark() == 0
    first.set_result(None)
    assert marks.watermark() == 20 and marks.last == 20
    await marks.wait()


async def test_a_failed_mark_fails_the_pass() -> None:
    failed = asyncio.get_running_loop().create_future()
    failed.set_exception(OSError("connection reset"))
    marks = Marks()
    marks.add(failed, 5)
    with pytest.raises(OSError):
        marks.watermark()
    assert marks.watermark() == 0


async def test_settle_cancels_queued_work_and_retrieves_errors() -> None:
    loop = asyncio.get_running_loop()
    queued, failed = loop.create_future(), loop.create_future()
    failed.set_exception(OSError("gone"))
    settle([queued, failed])
    assert queued.cancelled()


def test_tally_keeps_the_checkpoint_below_the_lowest_uid_put_off() -> None:
    tally = Tally()
    assert tally.take([Batch(10, 10, [msg(3)]), Batch(20, 10, [msg(12)], held=[15, 17])]) == ([msg(3), msg(12)], 14)
    assert tally.take([Batch(30, 10, [msg(25)])]) == ([msg(25)], 14)  # still held below 15
    assert (tally.fetched, tally.notifications, tally.held) == (30, 3, 2)
    fresh = Tally()
    assert fresh.take([Batch(30, 5, [])]) == ([], 30)


async def test_fetches_run_ahead_and_group_what_has_arrived() -> None:
    started: list[list[int]] = []
    gates: dict[int, asyncio.Event] = {}

    async def load(uids: list[int]) -> Batch:
        started.append(uids)
        gates[uids[0]] = gate = asyncio.Event()
        await gate.wait()
        return Batch(uids[-1], len(uids), [msg(u) for u in uids])

    fetches = Fetches(([u, u + 1] for u in range(1, 10, 2)), 3, load)
    waiting = asyncio.ensure_future(fetches.next_group(limit=100))
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert started == [[1, 2], [3, 4], [5, 6]]  # three ahead, no more
    for key in (3, 1):
        gates[key].set()
    group = await waiting
    assert [b.last_uid for b in group] == [2, 4]  # the first, and the one already arrived behind it
    await asyncio.sleep(0)
    assert [u[0] for u in started] == [1, 3, 5, 7, 9]  # topped up again
    for gate in gates.values():
        gate.set()
    assert [b.last_uid for b in await fetches.next_group(limit=1)] == [6]  # limit: one batch per group
    assert [b.last_uid for b in await fetches.next_group(limit=100)] == [8, 10]
    assert await fetches.next_group(limit=100) == [] and fetches.futures() == []


def test_complaints_are_capped_per_pass(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.mailbox.passes")
    complaints = Complaints(2)
    seen = [msg(u, "sender x is not allowed") for u in range(1, 5)]
    applied = [
        Applied(u, o, None, False) for u, o in [(1, "untrusted"), (2, "applied"), (3, "orphan"), (4, "conflict")]
    ]
    complaints.report(seen, applied)
    complaints.summarise()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 3 and "untrusted notification uid 1" in lines[0] and "not allowed" in lines[0]
    assert "orphan notification uid 3" in lines[1] and lines[2].startswith("1 more")


def test_each_complaint_line_word_for_word(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="reconciler.mailbox.passes")
    long_sender = "a" * 100 + "@evil.example"
    seen = [
        SeenMessage(1, "<1@x>", "untrusted", U, "OK", "x@evil.example", "r" * 300, None),
        SeenMessage(2, "<2@x>", "malformed", None, None, long_sender, None, None),
        SeenMessage(3, "<3@x>", "notification", U, "OK", None, "", None),
    ]
    applied = [
        Applied(1, "untrusted", U, False),
        Applied(2, "malformed", None, False),
        Applied(3, "conflict", U, False),
        Applied(9, "orphan", None, False),  # no message seen under that UID
        Applied(5, "applied", U, True),
        Applied(6, "duplicate", U, True),
        Applied(7, "claimed", U, True),
    ]
    complaints = Complaints(4)
    complaints.report(seen, applied)
    complaints.summarise()  # exactly at the limit: no summary line
    assert [r.getMessage() for r in caplog.records] == [
        f"untrusted notification uid 1 for {U} from 'x@evil.example': {'r' * 200}",
        f"malformed notification uid 2 for ? from {repr(long_sender)[:80]}",
        f"conflict notification uid 3 for {U} from None",
        "orphan notification uid 9 for ? from None",
    ]
    assert complaints.count == 4
    caplog.clear()
    complaints.report(seen, applied[:2])
    complaints.summarise()
    assert [r.getMessage() for r in caplog.records] == [
        "2 more untrusted, malformed or conflicting notifications not logged"
    ]

"""The outbox on a real ledger file: written with the change or not at all, fanned out, pruned safely."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from reconciler.errors import JobNotFoundError
from reconciler.events.outbox import Attempt, Next, Verdict
from reconciler.events.store import OutboxStore
from reconciler.jobs.records import Change
from reconciler.jobs.states import Trigger
from reconciler.jobs.validation import JobSpec
from reconciler.ledger.store import Ledger

T0 = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)
RFC = "AAA010101AAA"
A, B, C = (f"{c * 8}-AAAA-4AAA-8AAA-AAAAAAAAAAA{c}" for c in "123")


def spec(uuid: str) -> JobSpec:
    return JobSpec(uuid, RFC, "02", None)


async def types(store: OutboxStore) -> list[tuple[str | None, str, str | None, str | None]]:
    events, _ = await store.read()
    return [(e.uuid, e.type, e.payload.get("old_state"), e.payload.get("new_state")) for e in events]


@pytest.fixture
async def ledger(tmp_path: Path) -> Ledger:
    led = await Ledger.open(tmp_path / "ledger.sqlite3")
    yield led  # type: ignore[misc]
    await led.close()


async def test_every_visible_state_change_and_conflict_is_an_event_written_with_it(ledger: Ledger) -> None:
    store = OutboxStore(ledger)
    await ledger.add_jobs([spec(A), spec(B)], T0, "test")
    assert await types(store) == [(A, "job.queued", None, "queued"), (B, "job.queued", None, "queued")]

    claimed = await ledger.claim_due(T0, 10)  # queued -> submitting: internal, no event
    assert {j.uuid for j in claimed} == {A, B}
    await ledger.apply([Change(B, Trigger.RETRY, "test")], T0)  # submitting -> queued: a retry, no event
    assert len(await types(store)) == 2

    await ledger.apply([Change(A, Trigger.ACCEPTED, "test", {"code": 200, "message": "accepted"})], T0)
    await ledger.apply([Change(A, Trigger.CONFIRMED_OK, "test", {"code": 201})], T0)
    await ledger.apply([Change(A, Trigger.CONFIRMED_ERROR, "test")], T0)  # contradicts ok: a conflict
    got = await types(store)
    assert got[2:] == [
        (A, "job.awaiting", "queued", "awaiting"),
        (A, "job.ok", "awaiting", "ok"),
        (A, "job.conflict", "ok", "ok"),
    ]
    events, _ = await store.read()
    assert events[3].payload["code"] == 201 and events[3].payload["rfc_emisor"] == RFC
    assert events[4].payload["detail"]["trigger"] == "confirmed_error"
    assert len({e.id for e in events}) == len(events) and all(e.id.startswith("evt_") for e in events)
    assert [e.seq for e in events] == sorted(e.seq for e in events)


async def test_a_rolled_back_change_writes_no_event(ledger: Ledger) -> None:
    store = OutboxStore(ledger)
    await ledger.add_jobs([spec(A)], T0, "test")
    await ledger.claim_due(T0, 10)
    before = await types(store)
    with pytest.raises(JobNotFoundError):  # the second change fails: the first is rolled back with it
        await ledger.apply([Change(A, Trigger.ACCEPTED, "test"), Change(C, Trigger.ACCEPTED, "test")], T0)
    assert await types(store) == before
    assert (await ledger.get_job(A)).state == "submitting"


async def test_a_jobs_later_event_waits_for_its_earlier_one(ledger: Ledger) -> None:
    store = OutboxStore(ledger)
    await ledger.add_jobs([spec(A), spec(B)], T0, "test")
    await ledger.claim_due(T0, 10)
    await ledger.apply([Change(A, Trigger.ACCEPTED, "t"), Change(B, Trigger.ACCEPTED, "t")], T0)
    await store.register(["hook"], T0)
    assert await store.fan_out("hook", (), T0) == 4
    due = await store.due("hook", T0, 10)
    assert [(d.event.uuid, d.event.type) for d in due] == [(A, "job.queued"), (B, "job.queued")]
    # A's first event fails and is retried later: A's second waits, B's goes on.
    later = T0 + timedelta(minutes=5)
    await store.record(
        "hook",
        [
            (due[0], Attempt(ok=False, status=500), Next(Verdict.RETRY, later)),
            (due[1], Attempt(ok=True), Next(Verdict.DELIVERED)),
        ],
        T0,
    )
    due = await store.due("hook", T0 + timedelta(seconds=1), 10)
    assert [(d.event.uuid, d.event.type) for d in due] == [(B, "job.awaiting")]
    due = await store.due("hook", later, 10)
    assert [(d.event.uuid, d.event.type, d.attempts) for d in due] == [(A, "job.queued", 1), (B, "job.awaiting", 0)]


async def test_filters_gone_redeliver_and_prune_never_drops_an_undelivered_event(ledger: Ledger) -> None:
    store = OutboxStore(ledger)
    await ledger.add_jobs([spec(A)], T0, "test")
    await ledger.claim_due(T0, 10)
    await ledger.apply([Change(A, Trigger.ACCEPTED, "t")], T0)
    await store.register(["erp", "okonly"], T0)
    assert await store.fan_out("erp", (), T0) == 2
    assert await store.fan_out("okonly", ("job.ok",), T0) == 0
    due = await store.due("erp", T0, 10)
    await store.record("erp", [(due[0], Attempt(ok=True, status=200), Next(Verdict.DELIVERED))], T0)

    later = T0 + timedelta(days=40)
    assert await store.prune(later, 30 * 86400, ["erp", "okonly"]) == 1  # only the delivered one
    events, _ = await store.read()
    assert [e.type for e in events] == ["job.awaiting"]

    gone = (await store.due("erp", later, 10))[0]
    await store.record(
        "erp", [(gone, Attempt(ok=False, status=410, gone=True, error="gone"), Next(Verdict.GONE))], later
    )
    assert await store.disabled("erp") is not None
    assert await store.prune(later + timedelta(days=40), 30 * 86400, ["erp", "okonly"]) == 0

    assert await store.redeliver([gone.event.seq], later) == 1
    assert await store.enable("erp") is True and await store.disabled("erp") is None
    again = await store.due("erp", later, 10)
    assert [(d.event.id, d.attempts) for d in again] == [(gone.event.id, 0)]
    stats = {s.name: s for s in await store.stats()}
    assert (stats["erp"].pending, stats["erp"].delivered) == (1, 0)
    rng = random.Random(1)
    assert rng  # the schedule itself is tested in test_outbox.py

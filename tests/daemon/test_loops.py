"""The daemon's submitter, confirmer and chaser against the simulator over real HTTP and a real ledger.

The mailbox side is exercised end to end in tests/test_e2e.py; here notifications are fed
to the ledger directly so each loop can be driven on its own.
"""

from __future__ import annotations

import contextlib
import random
import sqlite3
import uuid as uuidlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ScheduleSettings, Settings
from reconciler.daemon.loops import Daemon
from reconciler.jobs.notices import SeenMessage
from reconciler.jobs.states import State
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.mailbox.watcher import apply
from reconciler.provider.soap import ProviderClient
from reconciler.sandbox import UUIDS_204, UUIDS_211, Sandbox

from ..fixtures_sandbox import RFC, SandboxFactory, provider_settings
from ..harness import eventually

FAST = ScheduleSettings(retry_base_s=0.05, retry_max_s=0.2, status_check_after_s=0.01, stale_after_s=3600)


def ok_uuid() -> str:
    while True:
        u = str(uuidlib.uuid4()).upper()
        if not u.endswith("E"):
            return u


class Rig:
    def __init__(self, settings: Settings, ledger: Ledger, provider: ProviderClient, sandbox: Sandbox) -> None:
        self.settings, self.ledger, self.provider, self.sandbox = settings, ledger, provider, sandbox
        self.daemon = Daemon(settings, ledger, provider, None, rng=random.Random(7))

    async def add(self, *uuids: str) -> None:
        await self.ledger.add_jobs([job_spec(u, RFC) for u in uuids], datetime.now(UTC), "test")

    async def state(self, u: str) -> State:
        return (await self.ledger.get_job(u)).state

    def tamper(self, sql: str, *params: str) -> None:
        """Put the ledger in a state a crash or the passing of time leaves, through another connection to its file."""
        with contextlib.closing(sqlite3.connect(self.ledger.path, timeout=30)) as db, db:
            db.execute(sql, params)


@pytest.fixture
async def rig_factory(tmp_path: Path, sandbox_factory: SandboxFactory) -> AsyncIterator[Callable[..., Awaitable[Rig]]]:
    made: list[Rig] = []

    async def make(sandbox: Sandbox | None = None, **provider: Any) -> Rig:
        sb = sandbox or sandbox_factory(notify_delay_s=0.2)
        settings = provider_settings(sb, tmp_path, **provider).model_copy(update={"schedule": FAST})
        ledger = await Ledger.open(settings.ledger.path)
        client = await ProviderClient.create(settings)
        rig = Rig(settings, ledger, client, sb)
        made.append(rig)
        return rig

    yield make
    for rig in made:
        await rig.provider.aclose()
        await rig.ledger.close()


async def test_submitter_follows_every_reply_class(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    rig = await rig_factory()
    fine, refused, processing = ok_uuid(), sorted(UUIDS_204)[0], sorted(UUIDS_211)[0]
    await rig.add(fine, refused, processing)
    assert await rig.daemon.submit_pass() == 3
    assert [await rig.state(u) for u in (fine, refused, processing)] == [State.AWAITING, State.REJECTED, State.AWAITING]
    job = await rig.ledger.get_job(refused)
    assert (job.code, job.attempts, job.resolved_at is not None) == (204, 1, True)
    replies = [e.detail for e in await rig.ledger.events(fine) if e.kind == "reply"]
    assert [(r["code"], r["outcome"]) for r in replies] == [(200, "accepted")]
    # A crash after the request left but before the reply was committed: sent again, 701, still once.
    rig.tamper("UPDATE jobs SET state = 'submitting' WHERE uuid = ?", fine)
    assert await rig.daemon.recover() == 1
    assert await rig.daemon.submit_pass() == 1
    assert (await rig.ledger.get_job(fine)).code == 701 and await rig.state(fine) == State.AWAITING
    assert rig.sandbox.record.accepted()[fine] == 1


async def test_transient_failures_back_off_and_converge(
    rig_factory: Callable[..., Awaitable[Rig]], sandbox_factory: SandboxFactory
) -> None:
    sb = sandbox_factory(fault_rate=0.5, fault_kinds=("http500", "soap_fault", "drop"), seed=3, notify_delay_s=0.2)
    rig = await rig_factory(sb)
    uuids = [ok_uuid() for _ in range(20)]
    await rig.add(*uuids)

    async def all_awaiting() -> bool:
        return (await rig.ledger.counts())["awaiting"] == len(uuids)

    await eventually(all_awaiting, 15, "every job to be awaiting", step=rig.daemon.submit_pass)
    jobs = [await rig.ledger.get_job(u) for u in uuids]
    assert any(j.attempts > 1 for j in jobs), "a 50% fault rate should have forced retries"
    assert all(rig.sandbox.record.accepted()[u] == 1 for u in uuids)
    retried = [
        e for u in uuids for e in await rig.ledger.events(u) if e.kind == "reply" and e.detail["outcome"] == "transient"
    ]
    assert retried and all(e.detail["code"] is None for e in retried)


async def test_account_error_trips_the_breaker_after_one_request(
    rig_factory: Callable[..., Awaitable[Rig]], sandbox: Sandbox
) -> None:
    rig = await rig_factory(sandbox, password="wrong-password")
    uuids = [ok_uuid() for _ in range(10)]
    await rig.add(*uuids)
    assert await rig.daemon.submit_pass() == 1
    assert await rig.daemon.submit_pass() == 0  # still open: nothing more goes out
    cancels = [e for e in sandbox.record.entries() if e.operation == "cancelarAsincrono"]
    assert [e.code for e in cancels] == [601]
    breaker = (await rig.ledger.facts())["breaker"]
    assert breaker["code"] == 601 and "wrong-password" not in str(breaker)
    assert (await rig.ledger.counts())["queued"] == 10
    # The same credentials after a restart: still stopped.  New credentials: cleared, submitted.
    again = Daemon(rig.settings, rig.ledger, rig.provider, None)
    assert await again.submit_pass() == 0
    fixed = await rig_factory(sandbox)
    fixed_daemon = Daemon(fixed.settings, rig.ledger, fixed.provider, None)
    assert await fixed_daemon.submit_pass() == 10
    assert "breaker" not in await rig.ledger.facts()
    assert (await rig.ledger.counts())["awaiting"] == 10


def ok_notice(uid: int, u: str) -> SeenMessage:
    return SeenMessage(uid, f"<{uid}@sf>", "notification", u, "OK", "n@solucionfactible.com", None, None)


async def test_confirmer_needs_the_status_call_and_stores_the_acuse(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    rig = await rig_factory()
    good, failing = ok_uuid(), ok_uuid()[:-1] + "E"
    await rig.add(good, failing)
    await rig.daemon.submit_pass()
    now = datetime.now(UTC)
    # Both claim OK; the provider knows `failing` ends in ERROR (213): a contradiction.
    await apply(rig.ledger, "INBOX", 1, [ok_notice(1, good), ok_notice(2, failing)], 2, now, True)
    assert await rig.state(good) == State.AWAITING

    async def resolved() -> bool:
        return {await rig.state(good), await rig.state(failing)} <= {State.OK, State.ERROR}

    await eventually(resolved, 15, "the jobs to be resolved", step=rig.daemon.confirm_pass)
    assert (await rig.state(good), await rig.state(failing)) == (State.OK, State.ERROR)
    acuse = await rig.ledger.acuse(good)
    assert acuse is not None and good.encode() in acuse
    assert [e.detail["reason"] for e in await rig.ledger.events(failing) if e.kind == "conflict"] == [
        "OK notification contradicted by status code 213"
    ]


async def test_forged_claim_for_unknown_transaction_is_a_conflict(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    rig = await rig_factory()
    never_sent = ok_uuid()
    await rig.add(never_sent)
    # A trusted-looking OK arrives before we ever submitted: the provider has no transaction.
    await apply(rig.ledger, "INBOX", 1, [ok_notice(1, never_sent)], 1, datetime.now(UTC), True)
    assert await rig.daemon.confirm_pass() == 1
    job = await rig.ledger.get_job(never_sent)
    assert (job.state, job.claim) == (State.AWAITING, None)
    assert [e.kind for e in await rig.ledger.events(never_sent)].count("conflict") == 1
    # The chaser then finds no transaction (702) and sends it for real.
    rig.tamper("UPDATE jobs SET check_at = '2000-01-01T00:00:00.000Z' WHERE uuid = ?", never_sent)
    await rig.daemon.chase_pass()
    assert await rig.state(never_sent) == State.QUEUED
    await rig.daemon.submit_pass()
    assert rig.sandbox.record.accepted()[never_sent] == 1


async def test_chaser_resolves_silent_jobs(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    rig = await rig_factory()
    silent = sorted(UUIDS_211)[1:3]  # the simulator sends no email for these
    await rig.add(*silent)
    await rig.daemon.submit_pass()

    async def done() -> bool:
        return [await rig.state(u) for u in silent] == [State.OK] * len(silent)

    await eventually(done, 15, "the chaser to finish", step=rig.daemon.chase_pass)
    for u in silent:
        assert await rig.ledger.acuse(u)
        codes = [e.detail["code"] for e in await rig.ledger.events(u) if e.kind == "status"]
        assert codes[-1] == 200


async def test_overdue_jobs_are_flagged_once(rig_factory: Callable[..., Awaitable[Rig]]) -> None:
    """Overdue means created more than ``stale_after_s`` ago, judged on the daemon's clock."""
    rig = await rig_factory()
    u = ok_uuid()
    created = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    await rig.ledger.add_jobs([job_spec(u, RFC)], created, "test")
    now = [created + timedelta(seconds=FAST.stale_after_s - 1)]
    daemon = Daemon(rig.settings, rig.ledger, rig.provider, None, clock=lambda: now[0], rng=random.Random(7))
    await daemon.chase_pass()
    assert not (await rig.ledger.get_job(u)).overdue  # one second short of stale
    now[0] = created + timedelta(seconds=FAST.stale_after_s + 1)
    await daemon.chase_pass()
    await daemon.chase_pass()
    assert (await rig.ledger.get_job(u)).overdue
    assert await rig.ledger.overdue_count() == 1 and await rig.ledger.event_count("overdue") == 1


async def test_after_resume_only_one_request_goes_out_until_one_succeeds(
    rig_factory: Callable[..., Awaitable[Rig]], sandbox: Sandbox
) -> None:
    """An account that was fine, trips on 602 (blocked), is resumed while still blocked: one more
    request, not a burst of max_concurrency, before the breaker opens again."""
    rig = await rig_factory(sandbox)
    await rig.add(*(ok_uuid() for _ in range(5)))
    assert await rig.daemon.submit_pass() == 5  # the credentials are proven
    blocked = [ok_uuid() for _ in range(40)]
    for u in blocked:
        sandbox.service.override(u, 602, "cuenta bloqueada")
    await rig.add(*blocked)
    await rig.daemon.submit_pass()
    assert "breaker" in await rig.ledger.facts()
    before = len([e for e in sandbox.record.entries() if e.code == 602])
    assert await rig.ledger.clear_fact("breaker")  # what `reconciler resume` does
    assert await rig.daemon.submit_pass() == 1
    after = len([e for e in sandbox.record.entries() if e.code == 602])
    assert after == before + 1
    assert "breaker" in await rig.ledger.facts()


def test_a_second_loop_failing_for_the_same_cause_is_not_a_second_critical(
    caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    """A full disk fails every writer at once: one CRITICAL line says what stopped the daemon."""
    import logging

    from reconciler.errors import LedgerError

    settings = provider_settings(None, tmp_path)
    daemon = Daemon(settings, None, None, None)  # type: ignore[arg-type]  # fail() touches neither
    first, second = LedgerError("ledger x: database or disk is full"), LedgerError("ledger x: disk I/O error")
    with caplog.at_level(logging.ERROR, logger="reconciler.daemon.loops"):
        daemon.fail("submit", first)
        daemon.fail("watcher", second)
    assert daemon.fatal is first and daemon.stop.is_set()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("CRITICAL", "submit: ledger x: database or disk is full; stopping"),
        ("ERROR", "watcher: ledger x: disk I/O error (already stopping)"),
    ]

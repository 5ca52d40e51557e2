"""The daemon: submit, watch, confirm and chase loops over one ledger, one provider client, one mailbox.

Each loop is a *pass* (a coroutine that does what is due now and returns);
apscheduler triggers the passes, except the mailbox watcher, which runs as its
own task (IDLE or polling).  ``run --once`` runs every pass once, in order.

Crash safety comes from the ledger, not from this module: a job is committed
to ``submitting`` before its request leaves, jobs found in ``submitting`` at
start are sent again (the provider answers 701 for a transaction it already
holds), and every reply is committed with its event.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconciler.backoff import next_attempt
from reconciler.clock import iso, utc_now
from reconciler.daemon import sdnotify
from reconciler.daemon.totals import Totals
from reconciler.errors import LedgerError, MailboxError
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.ledger import controls
from reconciler.ledger.store import Ledger
from reconciler.provider import breaker
from reconciler.provider.breaker import Breaker, Load
from reconciler.provider.codes import NOT_SENT
from reconciler.provider.outcomes import Decision, cancel_decision, status_decision

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.daemon.metrics import Metrics
    from reconciler.mailbox.watcher import Watcher
    from reconciler.provider.soap import ProviderClient, Reply, StatusReply

log = logging.getLogger(__name__)

HEARTBEAT_S = 10.0
CHECK_BATCH = 200


class Daemon:
    """The loops.  Construct with open resources; :func:`reconciler.daemon.service.run` builds and closes them."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        provider: ProviderClient,
        watcher: Watcher | None,
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.ledger = ledger
        self.provider = provider
        self.watcher = watcher
        self.clock = clock
        self.rng = rng or random.Random()
        self.stop = asyncio.Event()
        self.totals = Totals()
        self.fatal: BaseException | None = None
        self._slots = asyncio.Semaphore(settings.provider.max_concurrency)
        self.breaker = Breaker()
        self._was_paused = False
        self._inflight = 0
        self._idle = asyncio.Event()
        self._idle.set()
        self.unanswered: set[str] = set()  # servers that did not answer during this run: run --once's exit status
        # Loops registered from outside (the SAT follower): (name, pass, interval_s), each run guarded like the others.
        self.passes: list[tuple[str, Callable[[], Coroutine[Any, Any, Any]], float]] = []
        password = settings.provider_password().get_secret_value()
        self._credentials = (settings.provider.usuario or "", password)

    @property
    def breaker_open(self) -> bool:
        """Whether account-level provider codes stopped submissions (run --once's exit status)."""
        return self.breaker.tripped

    # -- bookkeeping -------------------------------------------------------

    @asynccontextmanager
    async def _pass(self, name: str) -> AsyncIterator[bool]:
        """Run one pass unless stopping; a ledger failure is fatal (systemd restarts us)."""
        if self.stop.is_set():
            yield False
            return
        self._inflight += 1
        self._idle.clear()
        try:
            yield True
        except LedgerError as e:
            self.fail(name, e)
        except Exception:
            log.exception("%s pass failed; it runs again at its next tick", name)
        finally:
            self._inflight -= 1
            if self._inflight == 0:
                self._idle.set()

    def fail(self, where: str, e: BaseException, *, trace: bool = False) -> None:
        """Stop for good on ``e``: one CRITICAL line for the first failure (what stopped the daemon);
        a second loop hitting the same cause (a full disk fails every writer at once) says so at ERROR."""
        if self.fatal is not None:
            log.error("%s: %s (already stopping)", where, e)
        elif trace:
            log.critical("%s failed; stopping", where, exc_info=e)
        else:
            log.critical("%s: %s; stopping", where, e)
        if self.fatal is None:
            self.fatal = e
        self.stop.set()

    async def guarded(self, name: str, fn: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        """Run a registered pass as the built-in ones run: skipped when stopping, a ledger failure fatal."""
        async with self._pass(name) as go:
            if go:
                await fn()

    async def wait_idle(self, within_s: float) -> bool:
        """Wait for in-flight passes to finish; False if they did not within ``within_s``."""
        try:
            await asyncio.wait_for(self._idle.wait(), within_s)
            return True
        except TimeoutError:
            return False

    async def recover(self) -> int:
        """Jobs left in ``submitting`` by a crash go back to the queue, due now."""
        now = self.clock()
        uuids = await self.ledger.uuids_in(State.SUBMITTING)
        if uuids:
            note = ("recovered", {"reason": "found in submitting at start: the request may or may not have left"})
            changes = [Change(u, Trigger.RECOVER, "daemon", {"next_attempt_at": iso(now)}, [note]) for u in uuids]
            await self.ledger.apply(changes, now)
            log.warning("%d job(s) were in flight when the last run ended; sending them again", len(uuids))
        return len(uuids)

    async def load_breaker(self) -> None:
        """Open the breaker if the ledger says so, unless the credentials changed since it tripped.

        A breaker closed here (``reconciler resume``, or new credentials) sends one request at a
        time again until a reply proves the credentials.
        """
        fact = (await self.ledger.facts()).get("breaker")
        if fact is not None and self.breaker.stale(fact):
            # The fingerprint is a slow hash: off the event loop, once per breaker fact.
            self.breaker.compared(fact, await asyncio.to_thread(breaker.same_credentials, fact, *self._credentials))
        loaded = self.breaker.load(fact)
        if fact is not None and loaded == Load.OPENED:
            log.error(
                "submissions stopped: provider code %s (%s) at %s; fix the account, then `reconciler resume`",
                fact.get("code"),
                fact.get("meaning"),
                fact.get("recorded_at"),
            )
        elif loaded == Load.CHANGED:
            await self.ledger.clear_fact("breaker")
            await self.ledger.record_event(
                None, "breaker", "daemon", {"action": "cleared", "reason": "credentials changed"}, self.clock()
            )
            log.info("circuit breaker cleared: the provider credentials changed since it tripped")

    async def _trip(self, code: int | None, message: str, meaning: str) -> None:
        if not self.breaker.trip():
            return
        print_ = await asyncio.to_thread(breaker.fingerprint, *self._credentials)  # a slow hash: off the loop
        fact = {"code": code, "message": message[:200], "meaning": meaning, **print_}
        now = self.clock()
        await self.ledger.set_fact("breaker", fact, now)
        self.breaker.recorded(iso(now))
        await self.ledger.record_event(
            None, "breaker", "daemon", {"action": "opened", "code": code, "meaning": meaning}, now
        )
        log.error(
            "provider code %s (%s): all provider calls stopped until `reconciler resume` or new credentials",
            code,
            meaning,
        )

    # -- submitter ---------------------------------------------------------

    async def submit_pass(self) -> int:
        """Send every job due now, keeping the provider's slots busy; returns how many requests left.

        Jobs are claimed in small batches and refilled as replies come back, so one slow
        reply never leaves the other slots idle.  Until the credentials are proven, one at a time.
        """
        sent = 0
        async with self._pass("submitter") as go:
            if not go:
                return 0
            await self.load_breaker()
            if await self._paused():
                return 0
            inflight: set[asyncio.Task[int]] = set()
            exhausted = False
            try:
                while True:
                    width = self.breaker.width(self.settings.provider.max_concurrency)
                    can_claim = not (exhausted or self.breaker.tripped or self.stop.is_set())
                    if can_claim and len(inflight) <= width // 2:
                        # A pause stops a long pass too, between two claims (a fact read: cheap).
                        paused = await self._paused()
                        jobs = [] if paused else await self.ledger.claim_due(self.clock(), width - len(inflight))
                        exhausted = not jobs
                        inflight.update(asyncio.create_task(self._submit_one(job)) for job in jobs)
                    if not inflight:
                        break
                    done, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
                    sent += sum(task.result() for task in done)
            finally:
                if inflight:  # an error above: let the calls already made record their replies
                    await asyncio.gather(*inflight, return_exceptions=True)
        return sent

    async def _paused(self) -> bool:
        """An operator's `reconciler pause`, read from the ledger every pass (logged when it changes)."""
        fact = (await self.ledger.facts()).get(controls.PAUSED)
        if (fact is not None) != self._was_paused:
            self._was_paused = fact is not None
            if fact is not None:
                log.warning(
                    "submissions paused by %s at %s; `reconciler unpause` resumes",
                    fact.get("by"),
                    fact.get("recorded_at"),
                )
            else:
                log.info("submissions unpaused")
        return fact is not None

    async def _submit_one(self, job: Job) -> int:
        async with self._slots:
            if self.breaker.tripped or self.stop.is_set():
                # Claimed but never sent: back to the queue as it was.
                await self.ledger.apply(
                    [
                        Change(
                            job.uuid,
                            Trigger.RETRY,
                            "submitter",
                            {"next_attempt_at": iso(self.clock()), "attempts": job.attempts - 1},
                        )
                    ],
                    self.clock(),
                )
                return 0
            reply = await self.provider.cancel(job.spec)
        await self._record_reply(job, reply)
        return 1

    async def _record_reply(self, job: Job, reply: Reply) -> None:
        now = self.clock()
        c = reply.classification
        sched = self.settings.schedule
        later = next_attempt(now, job.attempts, sched.retry_base_s, sched.retry_max_s, self.rng)
        self.totals.sent += c is not NOT_SENT  # held back by a failed local CSD: nothing was sent
        if c is not NOT_SENT and reply.code is None:
            self.unanswered.add("provider")
        if self.metrics is not None:
            self.metrics.submissions.inc()
            self.metrics.reply(reply.operation, reply.code, str(c.outcome))
        decision = cancel_decision(job, reply, now, later, sched.status_check_after_s)
        await self._follow(job, decision, reply.code, reply.message)
        log.info("job %s: %s -> %s %s (%s)", job.uuid, reply.operation, reply.code, c.outcome, c.meaning)
        await self.ledger.apply([decision.change], now)

    async def _follow(self, job: Job, decision: Decision, code: int | None, message: str) -> None:
        """Everything a reply's decision says besides the job's change: totals, breaker, warning."""
        self.totals.count(decision.tally)
        self.breaker.replied(decision.proves)
        if decision.trip is not None:
            await self._trip(code, message, decision.trip)
        if decision.warning is not None:
            log.warning("job %s: %s", job.uuid, decision.warning)

    # -- confirmer and chaser ------------------------------------------------

    async def confirm_pass(self) -> int:
        """Ask the status call about every claimed OK that is due (confirm_with_status)."""
        return await self._check_pass("confirmer", claimed=True)

    async def chase_pass(self) -> int:
        """Ask about silent accepted jobs; flag the stale ones overdue."""
        done = await self._check_pass("chaser", claimed=False)
        async with self._pass("chaser") as go:
            if go:
                now = self.clock()
                stale = iso(now - timedelta(seconds=self.settings.schedule.stale_after_s))
                flagged = await self.ledger.mark_overdue(now, stale)
                if flagged:
                    log.warning(
                        "%d job(s) unresolved after %ss: flagged overdue", flagged, self.settings.schedule.stale_after_s
                    )
        return done

    async def _check_pass(self, name: str, *, claimed: bool) -> int:
        total = 0
        async with self._pass(name) as go:
            if not go:
                return 0
            await self.load_breaker()
            while not self.breaker.tripped and not self.stop.is_set():
                jobs = await self.ledger.due_checks(self.clock(), CHECK_BATCH, claimed=claimed)
                if not jobs:
                    break
                total += sum(await asyncio.gather(*(self._check_one(job, name) for job in jobs)))
        return total

    async def _check_one(self, job: Job, source: str) -> int:
        async with self._slots:
            if self.breaker.tripped or self.stop.is_set():
                return 0
            reply = await self.provider.status(job.uuid)
        self.totals.status_calls += 1
        await self._record_status(job, reply, source)
        return 1

    async def _record_status(self, job: Job, reply: StatusReply, source: str) -> None:
        now = self.clock()
        sched = self.settings.schedule
        later = next_attempt(now, job.checks + 1, sched.retry_base_s, sched.retry_max_s, self.rng)
        if reply.code is None:
            self.unanswered.add("provider")
        if self.metrics is not None:
            self.metrics.reply("getStatusCancelacionAsincrona", reply.code, str(reply.outcome))
        decision = status_decision(job, reply, source, now, later, sched.status_check_after_s)
        await self._follow(job, decision, reply.code, reply.message)
        log.info("job %s: status -> %s %s", job.uuid, reply.code, reply.outcome)
        await self.ledger.apply([decision.change], now)

    # -- health ----------------------------------------------------------------

    async def heartbeat(self, *, stopped: bool = False, once: bool = False) -> None:
        """Record that the daemon is alive (``check`` reads it) and pet systemd's watchdog.

        A ``--once`` run (cron) is expected again after ``schedule.chase_interval_s``.
        """
        now = self.clock()
        mailbox = self.settings.mailbox
        interval = self.settings.schedule.chase_interval_s if once else HEARTBEAT_S
        mailbox_interval = max(interval, mailbox.poll_interval_s if not mailbox.idle else 300.0)
        await self.ledger.set_fact(
            "heartbeat",
            {
                "pid": os.getpid(),
                "interval_s": interval,
                "mailbox_interval_s": mailbox_interval,
                "stopped": stopped,
                "mode": "once" if once else "daemon",
            },
            now,
        )
        counts = await self.ledger.counts()
        if self.metrics is not None:
            self.metrics.counts(counts, await self.ledger.overdue_count())
            self.metrics.breaker.set(1 if self.breaker.tripped else 0)
            self.metrics.heartbeat.set(now.timestamp())
        status = ", ".join(f"{n} {s}" for s, n in counts.items() if n) or "no jobs"
        if self.breaker.tripped:
            status = "BREAKER OPEN; " + status
        sdnotify.notify("WATCHDOG=1", f"STATUS={status}")

    async def heartbeat_pass(self) -> None:
        async with self._pass("heartbeat") as go:
            if go:
                await self.heartbeat()

    # -- running ---------------------------------------------------------------

    async def run_once(self) -> None:
        """One pass of every loop, in dependency order, without IDLE."""
        await self.recover()
        await self.heartbeat(once=True)
        for name, fn, _ in self.passes:
            await self.guarded(name, fn)
        await self.submit_pass()
        if self.watcher is not None:
            async with self._pass("watcher") as go:
                if go:
                    try:
                        await self.watcher.connect()  # a refused login is recorded for `check`
                        await self.watcher.run_pass()
                    except MailboxError as e:
                        self.unanswered.add("mailbox")
                        log.error("mailbox pass skipped: %s", e)
        await self.confirm_pass()
        await self.chase_pass()

    async def run_forever(self) -> None:
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        await self.recover()
        await self.heartbeat()
        sched = self.settings.schedule
        scheduler = AsyncIOScheduler(timezone="UTC")
        start = self.clock()
        every: list[tuple[Callable[[], Coroutine[Any, Any, Any]], float]] = [
            (self.submit_pass, sched.submit_interval_s),
            (self.confirm_pass, min(sched.submit_interval_s, 2.0)),
            (self.chase_pass, sched.chase_interval_s),
            (self.heartbeat_pass, self._watchdog_period()),
            *((functools.partial(self.guarded, name, fn), s) for name, fn, s in self.passes),
        ]
        for fn, seconds in every:
            scheduler.add_job(
                fn,
                "interval",
                seconds=seconds,
                next_run_time=start,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,
            )
        scheduler.start()
        watch = asyncio.create_task(self._watch()) if self.watcher is not None else None
        try:
            await self.stop.wait()
        finally:
            scheduler.pause()
            grace = self.settings.provider.timeout_s + 5
            if not await self.wait_idle(grace):
                log.warning("in-flight work did not finish within %.0fs; the next start resends it", grace)
            scheduler.shutdown(wait=False)
            if watch is not None:
                try:
                    await asyncio.wait_for(watch, self.settings.mailbox.timeout_s)
                except TimeoutError:
                    log.warning("mailbox watcher did not stop within %ss", self.settings.mailbox.timeout_s)
                except Exception:
                    log.exception("mailbox watcher failed while stopping")

    async def _watch(self) -> None:
        """The mailbox watcher's task: if it fails, stop like a failed pass (systemd restarts us).

        Nothing else awaits this task until shutdown, so without this a ledger error in a mailbox
        pass would end the watcher silently while the other loops kept running.
        """
        assert self.watcher is not None
        try:
            await self.watcher.watch(self.stop)
        except LedgerError as e:
            self.fail("watcher", e)
        except Exception as e:
            self.fail("mailbox watcher", e, trace=True)

    def _watchdog_period(self) -> float:
        interval = sdnotify.watchdog_interval()
        return min(HEARTBEAT_S, interval / 2) if interval else HEARTBEAT_S

"""Delivering the outbox: one task per endpoint (webhook or command hook), beside the daemon's loops.

Each endpoint's task fans new outbox rows out to it, sends what is due (at most
``concurrency`` at once, and a job's events strictly in order), and records each
result.  It shares only the ledger with the submit and mailbox loops, in short
transactions, so a slow or dead receiver never holds them up.  Delivery is at least
once: a crash between a receiver's 2xx and our record sends that event again, with
the same ``webhook-id``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from reconciler.clock import iso, parse_iso, utc_now
from reconciler.events.outbox import Attempt, OutboxEvent, Verdict, after_attempt
from reconciler.events.store import Due, EndpointStat, OutboxStore

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.ledger.store import Ledger

log = logging.getLogger(__name__)

PRUNE_EVERY_S = 3600.0
# Deliveries taken per pass: a few per concurrency slot, so one slow reply holds up little
# and the ledger's per-pass transactions are amortised over many events.
BATCH_PER_SLOT = 8
MAX_BATCH = 256
STATS_EVERY_S = 30.0


class Sender(Protocol):
    async def send(self, event: OutboxEvent) -> Attempt: ...

    async def aclose(self) -> None: ...


@dataclass
class Endpoint:
    name: str
    filters: tuple[str, ...]
    concurrency: int
    sender: Sender
    delivered: int = 0
    failed: int = 0
    attempts: dict[str, int] = field(default_factory=dict)


def endpoints(settings: Settings) -> list[Endpoint]:
    """The configured webhooks and hooks, secrets read once (a bad one raises ConfigError naming it)."""
    from reconciler.events.hooks import HookRunner
    from reconciler.events.webhooks import WebhookSender

    out: list[Endpoint] = []
    for w in settings.webhooks:
        sender = WebhookSender(
            w.url, settings.webhook_keys(w), timeout_s=w.timeout_s, ca_file=w.ca_file, concurrency=w.concurrency
        )
        out.append(Endpoint(w.endpoint, tuple(w.events), w.concurrency, sender))
    for h in settings.hooks:
        out.append(Endpoint(h.endpoint, tuple(h.events), 1, HookRunner(h.endpoint, h.command, timeout_s=h.timeout_s)))
    return out


class Dispatcher:
    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        targets: list[Endpoint],
        *,
        clock: Callable[[], datetime] = utc_now,
        rng: random.Random | None = None,
        on_stats: Callable[[list[EndpointStat]], None] | None = None,
    ) -> None:
        self.settings = settings
        self.store = OutboxStore(ledger)
        self.ledger = ledger
        self.targets = targets
        self.clock = clock
        self.rng = rng or random.Random()
        self.on_stats = on_stats

    async def start(self) -> None:
        await self.store.register([t.name for t in self.targets], self.clock())

    async def pass_once(self) -> int:
        """Every endpoint once: fan out, send what is due, record.  Returns attempts made."""
        made = 0
        for target in self.targets:
            made += await self._endpoint_pass(target)
        await self._report()
        return made

    async def _endpoint_pass(self, target: Endpoint) -> int:
        if await self.store.disabled(target.name):
            return 0
        now = self.clock()
        await self.store.fan_out(target.name, target.filters, now)
        due = await self.store.due(target.name, now, min(BATCH_PER_SLOT * target.concurrency, MAX_BATCH))
        if not due:
            return 0
        slots = asyncio.Semaphore(target.concurrency)
        stopped = asyncio.Event()  # a 410: what has not left yet stays pending, untried

        async def send(d: Due) -> Attempt | None:
            async with slots:
                if stopped.is_set():
                    return None
                attempt = await target.sender.send(d.event)
                if attempt.gone:
                    stopped.set()
                return attempt

        attempts = await asyncio.gather(*(send(d) for d in due))
        sched = self.settings.schedule
        done = self.clock()
        results = []
        for d, attempt in zip(due, attempts, strict=True):
            if attempt is None:
                continue
            nxt = after_attempt(
                attempt,
                d.attempts + 1,
                d.event.at,
                done,
                base_s=sched.retry_base_s,
                cap_s=sched.retry_max_s,
                horizon_s=sched.delivery_horizon_s,
                rng=self.rng,
            )
            results.append((d, attempt, nxt))
            self._log(target, d, attempt, nxt.verdict, nxt.next_at)
        await self.store.record(target.name, results, done)
        return len(results)

    def _log(self, target: Endpoint, d: Due, attempt: Attempt, verdict: Verdict, next_at: datetime | None) -> None:
        key = "delivered" if verdict is Verdict.DELIVERED else "failed"
        target.attempts[key] = target.attempts.get(key, 0) + 1
        if verdict is Verdict.DELIVERED:
            target.delivered += 1
            log.debug("delivered %s (%s) to %s", d.event.id, d.event.type, target.name)
        elif verdict is Verdict.GONE:
            log.warning("%s answered 410 Gone: endpoint disabled (events stay queued for it)", target.name)
        elif verdict is Verdict.FAILED:
            target.failed += 1
            log.warning(
                "delivery of %s to %s failed for good after %d attempts: %s",
                d.event.id,
                target.name,
                d.attempts + 1,
                attempt.describe(),
            )
        elif d.attempts == 0:
            when = iso(next_at) if next_at is not None else "?"
            log.warning(
                "delivery of %s to %s failed (%s); retrying at %s", d.event.id, target.name, attempt.describe(), when
            )

    async def _report(self) -> None:
        stats = await self.store.stats()
        fact = {
            s.name: {
                "pending": s.pending,
                "failed": s.failed,
                "oldest_pending_at": s.oldest_pending_at,
                "last_success_at": s.last_success_at,
                "disabled_at": s.disabled_at,
                "disabled_reason": s.disabled_reason,
            }
            for s in stats
            if s.name in {t.name for t in self.targets}
        }
        await self.ledger.set_fact("deliveries", fact, self.clock())
        if self.on_stats is not None:
            self.on_stats(stats)

    async def run(self, stop: asyncio.Event) -> None:
        """Deliver until ``stop``; each endpoint in a task of its own so one slow receiver delays no other."""
        await self.start()
        tasks = [asyncio.create_task(self._run_endpoint(t, stop), name=f"deliver {t.name}") for t in self.targets]
        tasks.append(asyncio.create_task(self._housekeeping(stop), name="outbox housekeeping"))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run_endpoint(self, target: Endpoint, stop: asyncio.Event) -> None:
        poll = self.settings.events.poll_interval_s
        while not stop.is_set():
            made = await self._endpoint_pass(target)
            if made:
                continue
            wait = poll
            # A disabled endpoint's deliveries stay due but are not sent: look again only after the poll.
            nxt = None if await self.store.disabled(target.name) else await self.store.next_due_at(target.name)
            if nxt is not None:
                wait = min(poll, max(0.0, (parse_iso(nxt) - self.clock()).total_seconds()))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), wait)

    async def _housekeeping(self, stop: asyncio.Event) -> None:
        retention = self.settings.events.retention_days * 86400.0
        last_prune = 0.0
        loop = asyncio.get_running_loop()
        while not stop.is_set():
            await self._report()
            if loop.time() - last_prune >= PRUNE_EVERY_S:
                pruned = await self.store.prune(self.clock(), retention, [t.name for t in self.targets])
                if pruned:
                    log.info("outbox: pruned %d delivered events older than %g days", pruned, retention / 86400)
                last_prune = loop.time()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), STATS_EVERY_S)

    async def aclose(self) -> None:
        for t in self.targets:
            await t.sender.aclose()

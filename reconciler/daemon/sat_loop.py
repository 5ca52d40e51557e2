"""The SAT follower: the daemon's loop that asks the SAT's status service about jobs.

One pass, in order: start following the jobs the provider accepted since the last pass;
preflight the queued jobs not yet cleared (``[sat] preflight``); ask about every job whose
follow-up is due.  The decisions are :mod:`reconciler.sat.decide`'s; this module only reads
due jobs, calls the seam and writes the Changes.  The SAT being slow or down costs this loop
time, never the others: it has its own pass, its calls go through the process-wide rate
limit, and a failure is a ``sat`` event with a backoff.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING

from reconciler.clock import iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.ledger import sat as queries
from reconciler.sat import decide
from reconciler.sat.answer import Answer

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.daemon.loops import Daemon
    from reconciler.ledger.store import Ledger
    from reconciler.sat.client import SatClient

log = logging.getLogger(__name__)

BATCH = 200
WIDTH = 8  # questions in flight at once (the rate limit decides the pace)


class SatFollower:
    """Asks the SAT about due jobs; build one per daemon run and :meth:`attach` it."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        client: SatClient,
        *,
        clock: Callable[[], datetime],
        rng: random.Random | None = None,
    ) -> None:
        self.ledger = ledger
        self.client = client
        self.clock = clock
        self.rng = rng or random.Random()
        self.cadence = settings.sat.cadence()
        self.retry = decide.Retry(settings.sat.retry_base_s, settings.sat.retry_max_s)
        self.preflight_enabled = settings.sat.preflight
        # A pass asks at most this many questions, so it ends and the next one starts from the ledger.
        self.per_pass = max(1, int(settings.sat.max_rps * settings.sat.interval_s * 2))
        self.interval_s = settings.sat.interval_s
        self.calls = 0
        self.stop = asyncio.Event()
        ledger.preflight_gate = self.preflight_enabled

    def attach(self, daemon: Daemon) -> None:
        """Register the pass with the daemon (run before the submitter in ``--once``, every ``interval_s``)."""
        self.stop = daemon.stop
        daemon.passes.append(("sat", self.run_pass, self.interval_s))

    async def run_pass(self) -> int:
        """One pass; returns how many questions were asked."""
        await self._start_following()
        asked = 0
        if self.preflight_enabled:
            asked += await self._ask_due(queries.PREFLIGHT_DUE, self._preflight, self.per_pass)
        asked += await self._ask_due(queries.FOLLOW_DUE, self._follow, self.per_pass - asked)
        return asked

    async def _start_following(self) -> None:
        while True:
            jobs = await self.ledger.sat_jobs(queries.TO_FOLLOW, (BATCH,))
            if not jobs:
                return
            now = self.clock()
            await self.ledger.apply([decide.start(job, now, self.cadence) for job in jobs], now)

    async def _ask_due(self, where: str, handle: Callable[[Job], Awaitable[None]], budget: int) -> int:
        asked = 0
        slots = asyncio.Semaphore(WIDTH)

        async def one(job: Job) -> None:
            async with slots:
                await handle(job)

        while asked < budget and not self.stop.is_set():
            jobs = await self.ledger.sat_jobs(where, (iso(self.clock()), min(BATCH, budget - asked)))
            if not jobs:
                break
            await asyncio.gather(*(one(job) for job in jobs))
            asked += len(jobs)
        return asked

    async def _ask(self, job: Job) -> Answer | None:
        text = decide.question(job)
        if text is None:
            return None
        self.calls += 1
        answer = await self.client.consulta(text)
        if answer.problem is not None:
            log.info("job %s: the SAT did not answer usably (%s); asking again later", job.uuid, answer.problem)
        return answer

    async def _preflight(self, job: Job) -> None:
        answer = await self._ask(job)
        now = self.clock()
        change = decide.preflight(job, answer, now, self.cadence, self.retry, self.rng)
        if change.trigger == Trigger.CONFIRMED_OK:
            log.info("job %s: already cancelled at the SAT; not sent to the provider", job.uuid)
        elif change.trigger == Trigger.NOT_CANCELLABLE:
            log.warning("job %s: the SAT says it is not cancellable; rejected without sending", job.uuid)
        await self.ledger.apply([change], now)

    async def _follow(self, job: Job) -> None:
        answer = await self._ask(job)
        now = self.clock()
        if answer is None:  # nothing to ask with (start() never plans an ask for such a job)
            await self.ledger.apply(
                [Change(job.uuid, None, decide.SOURCE, {"sat_due_at": None}, require=job.state)], now
            )
            return
        change = decide.follow(job, answer, now, self.cadence, self.retry, self.rng)
        if answer.estatus_cancelacion == "Solicitud rechazada" and answer.estado == "Vigente":
            log.warning("job %s: the receiver rejected the cancellation; the invoice is still valid", job.uuid)
        elif answer.cancelled and job.state == State.AWAITING:
            log.info("job %s: cancelled at the SAT (%s)", job.uuid, answer.estatus_cancelacion)
        await self.ledger.apply([change], now)

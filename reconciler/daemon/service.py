"""The daemon as a process: open the ledger, provider and mailbox, run, stop on a signal, close.

Only :func:`run` talks to systemd (READY=1 once the ledger is open and the first
mailbox login succeeded, STOPPING=1).  It returns what happened (:class:`Run`);
the exit status is the CLI's decision.
"""

from __future__ import annotations

import asyncio
import logging
import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler import backoff
from reconciler.daemon import sdnotify
from reconciler.daemon.loops import Daemon
from reconciler.daemon.totals import Totals
from reconciler.errors import MailboxError
from reconciler.ledger.lock import DaemonLock
from reconciler.ledger.store import Ledger

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.mailbox.watcher import Watcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Run:
    """What one run of the daemon did.

    ``started``: the mailbox answered and the loops ran (False: stopped by a signal
    while the first login was still being retried).  ``fatal``: the error that
    stopped the loops (the ledger could not be written), None after a clean stop.
    """

    started: bool
    totals: Totals = field(default_factory=Totals)
    fatal: BaseException | None = None


# The first mailbox login's retries: 1 s doubling to a minute, jittered (many daemons restarted
# together do not knock on one IMAP server in step).
LOGIN_BACKOFF_S = (1.0, 60.0)


async def _connect(watcher: Watcher, stop: asyncio.Event, *, retry: bool, rng: random.Random | None = None) -> bool:
    """Log in to the mailbox; when ``retry``, keep trying with capped backoff until it answers or we stop."""
    rng = rng or random.Random()
    attempt = 0
    failing = False
    while True:
        try:
            await watcher.connect()
        except MailboxError as e:
            if not retry:
                raise
            if not failing:
                log.warning("mailbox: %s; retrying until it answers", e)
                failing = True
            attempt += 1
            try:
                await asyncio.wait_for(stop.wait(), backoff.delay(attempt, *LOGIN_BACKOFF_S, rng))
                return False
            except TimeoutError:
                continue
        if failing:
            log.info("mailbox: logged in")
        return True


async def run(settings: Settings, *, once: bool = False) -> Run:
    """Open everything, run, close everything; returns what the run did."""
    # One daemon per ledger: the lock comes before anything touches the ledger or the provider.
    lock = DaemonLock.acquire(settings.ledger.path)
    try:
        return await _run_locked(settings, once=once)
    finally:
        lock.release()


async def _run_locked(settings: Settings, *, once: bool) -> Run:
    import signal

    from reconciler.mailbox.watcher import Watcher
    from reconciler.provider.soap import ProviderClient

    ledger = await Ledger.open(settings.ledger.path, backup=True, busy_timeout_s=settings.ledger.busy_timeout_s)
    provider: ProviderClient | None = None
    watcher: Watcher | None = None
    endpoint: Any = None
    try:
        metrics = None
        if settings.metrics.listen:
            from reconciler.daemon.metrics import Metrics, serve

            metrics = Metrics()
            endpoint = serve(metrics, settings.metrics.listen)
        provider = await ProviderClient.create(settings)
        on_pass = (lambda stats: metrics.mailbox(stats.outcomes, stats.duration_s)) if metrics is not None else None
        watcher = Watcher(settings, ledger, on_pass=on_pass)
        daemon = Daemon(settings, ledger, provider, watcher, metrics=metrics)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop.set)
        # A ledger we cannot write (read-only, disk full) must fail here, before READY=1.
        await daemon.heartbeat(once=once)
        if not await _connect(watcher, daemon.stop, retry=not once):
            log.info("reconciler stopped before the mailbox answered")
            return Run(started=False)
        sdnotify.notify("READY=1", "STATUS=ledger open, mailbox logged in")
        log.info(
            "reconciler started: ledger %s, mailbox %s/%s",
            settings.ledger.path,
            settings.mailbox.host,
            settings.mailbox.folder,
        )
        if once:
            await daemon.run_once()
        else:
            await daemon.run_forever()
        sdnotify.notify("STOPPING=1")
        if daemon.fatal is None:
            await daemon.heartbeat(stopped=not once, once=once)
        log.info("reconciler stopped: %s", daemon.totals.line())
        return Run(started=True, totals=daemon.totals, fatal=daemon.fatal)
    finally:
        if watcher is not None:
            await watcher.close()
        if provider is not None:
            await provider.aclose()
        if endpoint is not None:
            endpoint.shutdown()
            endpoint.server_close()
        await ledger.close()

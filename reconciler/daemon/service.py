"""The daemon as a process: open the ledger, provider and mailbox, run, stop on a signal, close.

Only :func:`run` talks to systemd (READY=1 once the ledger is open: the mailbox
watcher logs in on its own; STOPPING=1).  It returns what happened (:class:`Run`);
the exit status is the CLI's decision.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from reconciler.daemon import sdnotify
from reconciler.daemon.loops import Daemon
from reconciler.daemon.totals import Totals
from reconciler.errors import LedgerError
from reconciler.ledger.lock import DaemonLock
from reconciler.ledger.store import Ledger

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.events.dispatcher import Dispatcher
    from reconciler.mailbox.watcher import Watcher

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Run:
    """What one run of the daemon did.

    ``started``: the loops ran.  ``fatal``: the error that stopped the loops (the
    ledger could not be written), None after a clean stop.  ``breaker_open``:
    account-level provider codes stopped submissions.  ``unanswered``: the servers
    (``provider``, ``mailbox``) that did not answer at least once during the run.
    """

    started: bool
    totals: Totals = field(default_factory=Totals)
    fatal: BaseException | None = None
    breaker_open: bool = False
    unanswered: frozenset[str] = frozenset()


def _dispatcher(settings: Settings, ledger: Ledger, metrics: Any) -> Dispatcher | None:
    """The outbox dispatcher when webhooks or hooks are configured (their secrets are read here, once)."""
    if not settings.webhooks and not settings.hooks:
        return None
    from reconciler.events.dispatcher import Dispatcher, endpoints

    on_stats = metrics.delivery_counts if metrics is not None else None
    return Dispatcher(settings, ledger, endpoints(settings), on_stats=on_stats)


async def _deliver(settings: Settings, daemon: Daemon, metrics: Any) -> None:
    """The outbox worker (a process of its own): its failure stops the daemon like a failed pass."""
    from reconciler.daemon.delivery import run_worker

    timeouts = [w.timeout_s for w in settings.webhooks] + [h.timeout_s for h in settings.hooks]
    on_stats = metrics.delivery_counts if metrics is not None else None
    try:  # an attempt in flight is bounded by its timeout; one cut short is sent again next start
        await run_worker(settings, daemon.stop, grace_s=max(timeouts, default=0) + 5, on_stats=on_stats)
    except LedgerError as e:
        daemon.fail("outbox", e)
    except Exception as e:
        daemon.fail("outbox worker", e, trace=True)


def _sat_client(settings: Settings) -> Any:
    from reconciler.sat.client import SatClient

    return SatClient(settings.sat.url, timeout_s=settings.sat.timeout_s, max_rps=settings.sat.max_rps)


def _sat_follower(settings: Settings, ledger: Ledger, client: Any) -> Any:
    from reconciler.clock import utc_now
    from reconciler.daemon.sat_loop import SatFollower

    return SatFollower(settings, ledger, client, clock=utc_now)


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
    dispatcher: Dispatcher | None = None
    sat: Any = None
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
        dispatcher = _dispatcher(settings, ledger, metrics)
        if settings.sat.enabled:
            sat = _sat_client(settings)
            _sat_follower(settings, ledger, sat).attach(daemon)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, daemon.stop.set)
        # A ledger we cannot write (read-only, disk full) must fail here, before READY=1.  The
        # mailbox is not waited for: the watcher logs in on its own and retries (a wrong password
        # slowly), so submissions and `check` work while the mailbox is down or refuses us.
        await daemon.heartbeat(once=once)
        sdnotify.notify("READY=1", "STATUS=ledger open")
        log.info(
            "reconciler started: ledger %s, mailbox %s/%s",
            settings.ledger.path,
            settings.mailbox.host,
            settings.mailbox.folder,
        )
        if once:
            await daemon.run_once()
            if dispatcher is not None:
                await dispatcher.start()
                await dispatcher.pass_once()
        else:
            # Delivery runs in a process of its own, so it never takes the loops' CPU; the
            # dispatcher built above only proved the endpoints' secrets readable before READY.
            delivering = asyncio.create_task(_deliver(settings, daemon, metrics)) if dispatcher is not None else None
            await daemon.run_forever()
            if delivering is not None:
                await delivering
        sdnotify.notify("STOPPING=1")
        if daemon.fatal is None:
            await daemon.heartbeat(stopped=not once, once=once)
        log.info("reconciler stopped: %s", daemon.totals.line())
        return Run(
            started=True,
            totals=daemon.totals,
            fatal=daemon.fatal,
            breaker_open=daemon.breaker_open,
            unanswered=frozenset(daemon.unanswered),
        )
    finally:
        if dispatcher is not None:
            await dispatcher.aclose()
        if watcher is not None:
            await watcher.close()
        if provider is not None:
            await provider.aclose()
        if sat is not None:
            await sat.aclose()
        if endpoint is not None:
            endpoint.shutdown()
            endpoint.server_close()
        await ledger.close()

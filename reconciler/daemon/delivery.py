"""The daemon's side of the outbox worker (:mod:`reconciler.events.worker`): start it, feed /metrics, stop it.

The worker is a child process for as long as the daemon runs.  The daemon stops it
by closing its stdin and waits for it (systemd's ``KillMode=mixed`` would otherwise
kill it mid-attempt once the daemon exits); a worker that dies on its own stops
the daemon, as a failed ledger write in the daemon's own loops does, so
``Restart=on-failure`` brings both back.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

from reconciler import logs
from reconciler.errors import LedgerError

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.events.store import EndpointStat

log = logging.getLogger(__name__)

_STATS_LINE_LIMIT = 1 << 20  # one JSON line of per-endpoint counts; far above any real configuration


class WorkerExited(LedgerError):
    """The outbox worker ended while the daemon was running (its own log line says why)."""


async def run_worker(
    settings: Settings,
    stop: asyncio.Event,
    *,
    grace_s: float,
    on_stats: Callable[[list[EndpointStat]], None] | None = None,
) -> None:
    """Run the worker until ``stop``; then let it finish its attempts in flight for up to ``grace_s``.

    Raises :class:`WorkerExited` when the worker exits before ``stop``.
    """
    from reconciler.events.store import EndpointStat
    from reconciler.events.worker import Spec

    current = logs.current()
    spec = Spec(settings, current.level, current.fmt, current.journal, current.secrets)
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "reconciler.events",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        limit=_STATS_LINE_LIMIT,
    )
    assert proc.stdin is not None and proc.stdout is not None
    stdout = proc.stdout

    async def read_stats() -> None:
        while line := await stdout.readline():
            if on_stats is None:
                continue
            try:
                rows = json.loads(line)
                on_stats([EndpointStat(**row) for row in rows])
            except (ValueError, TypeError) as e:
                log.warning("outbox worker: unreadable counts line (%s)", e)

    reading = asyncio.create_task(read_stats(), name="outbox worker counts")
    try:
        try:
            proc.stdin.write(spec.encode())
            await proc.stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            pass  # it died at start; its exit status says so below
        stopping = asyncio.create_task(stop.wait())
        exited = asyncio.create_task(proc.wait())
        await asyncio.wait({stopping, exited}, return_when=asyncio.FIRST_COMPLETED)
        stopping.cancel()
        if exited.done():
            raise WorkerExited(f"outbox worker exited with status {proc.returncode}")
        proc.stdin.close()
        try:
            await asyncio.wait_for(exited, grace_s)
        except TimeoutError:
            log.warning("outbox deliveries still in flight at stop; they are sent again at the next start")
            proc.kill()
            await proc.wait()
    finally:
        if proc.returncode is None:  # cancelled, or failed above: never leave the worker behind
            proc.kill()
            with contextlib.suppress(ProcessLookupError):
                await proc.wait()
        with contextlib.suppress(asyncio.CancelledError, TimeoutError):
            await asyncio.wait_for(reading, 5)

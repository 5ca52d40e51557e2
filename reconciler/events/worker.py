"""The outbox dispatcher in a process of its own: ``python -m reconciler.events``, started by the daemon.

Why a process: each delivery costs CPU (an HTTP request, its signature, the ledger's
bookkeeping) that in the daemon's one event loop would slow the submit and mailbox
loops: the load bench ran at two thirds of its rate with every event delivered
in-process.  Here it uses another core, and shares only the ledger (WAL, short
transactions) with the daemon.

The protocol with the daemon (:mod:`reconciler.daemon.delivery`):

* stdin carries one :class:`Spec` (8-byte length, then its pickle), then stays open.
  EOF means the daemon stopped or died (even by ``kill -9``): the worker lets the
  attempts in flight end (each bounded by its ``timeout_s``) and exits.
* stdout carries one JSON line of per-endpoint counts per report, for ``/metrics``.
* stderr is the daemon's own (the journal), logged in the daemon's format.
* exit status 0 after EOF or SIGTERM, 1 when the ledger failed, 2 for a bad setting.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import pickle
import signal
import struct
import sys
import threading
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING

from reconciler.errors import ConfigError, LedgerError

if TYPE_CHECKING:
    from reconciler.config import Settings
    from reconciler.events.store import EndpointStat

log = logging.getLogger("reconciler.events.worker")

_LENGTH = struct.Struct(">Q")


@dataclass(frozen=True, slots=True)
class Spec:
    """What the worker needs from the daemon: the very settings it runs with, and its log setup."""

    settings: Settings
    log_level: str
    log_format: str
    journal: bool
    secrets: tuple[str, ...]

    def encode(self) -> bytes:
        body = pickle.dumps(self, protocol=pickle.HIGHEST_PROTOCOL)
        return _LENGTH.pack(len(body)) + body


def read_spec(stream: IO[bytes]) -> Spec:
    """The spec the daemon wrote first on our stdin (a trusted pipe from our parent)."""
    head = stream.read(_LENGTH.size)
    if len(head) != _LENGTH.size:
        raise ConfigError("outbox worker: no settings on stdin (it is started by `reconciler run`)")
    (size,) = _LENGTH.unpack(head)
    body = stream.read(size)
    if len(body) != size:
        raise ConfigError("outbox worker: settings cut short on stdin")
    spec = pickle.loads(body)  # noqa: S301 - written by our parent process over a private pipe
    if not isinstance(spec, Spec):
        raise ConfigError("outbox worker: stdin did not hold its settings")
    return spec


def stats_line(stats: list[EndpointStat]) -> str:
    return json.dumps([dataclasses.asdict(s) for s in stats], separators=(",", ":"))


def _watch_parent(stream: IO[bytes], loop: asyncio.AbstractEventLoop, stop: asyncio.Event) -> None:
    """Block on stdin until EOF (the daemon is gone or stopping), then stop delivery."""
    try:
        while stream.read(4096):
            pass
    except OSError:
        pass
    loop.call_soon_threadsafe(stop.set)


async def serve(spec: Spec, stdin: IO[bytes], stdout: IO[str]) -> None:
    from reconciler.events.dispatcher import Dispatcher, endpoints
    from reconciler.ledger.store import Ledger

    settings = spec.settings
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    threading.Thread(target=_watch_parent, args=(stdin, loop, stop), name="parent watch", daemon=True).start()

    def report(stats: list[EndpointStat]) -> None:
        stdout.write(stats_line(stats) + "\n")
        stdout.flush()

    targets = endpoints(settings)
    ledger = await Ledger.open(settings.ledger.path, migrate=False, busy_timeout_s=settings.ledger.busy_timeout_s)
    dispatcher = Dispatcher(settings, ledger, targets, on_stats=report)
    try:
        await dispatcher.run(stop)
    finally:
        await dispatcher.aclose()
        await ledger.close()


def main() -> int:
    # The daemon owns the terminal: a Ctrl-C there reaches the whole process group, and the
    # daemon's stop (EOF on stdin) is what ends this process, after its attempts in flight.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from reconciler import logs

    try:
        spec = read_spec(sys.stdin.buffer)
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    logs.setup(spec.log_level, journal=spec.journal, secrets=spec.secrets, fmt=spec.log_format)
    try:
        asyncio.run(serve(spec, sys.stdin.buffer, sys.stdout))
    except ConfigError as e:
        log.critical("outbox: %s", e)
        return 2
    except LedgerError as e:
        log.critical("outbox: %s", e)
        return 1
    return 0

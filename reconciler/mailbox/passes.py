"""The bookkeeping of one mailbox pass: the fetches in flight, the marks queued, the counts, the warnings.

Nothing here talks to the server or the ledger: :class:`reconciler.mailbox.watcher.Watcher`
hands in the futures of its IMAP thread and the ledger's answers, and these keep the order and
the watermarks that make a pass exactly-once and crash-safe.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.jobs.notices import Applied, SeenMessage

log = logging.getLogger(__name__)

#: The outcomes worth a warning line: someone should look at the mail or the ledger.
COMPLAINTS = frozenset({"untrusted", "malformed", "conflict", "orphan"})


@dataclass(frozen=True, slots=True)
class PassStats:
    """What one pass did."""

    fetched: int  # messages whose headers were fetched
    notifications: int  # of those, messages carrying X-SFService
    applied: int  # notifications that changed (or claimed) a job
    marked: int  # messages flagged \\Seen or moved
    duration_s: float
    uidvalidity: int
    last_uid: int
    rescan: bool = False  # UIDVALIDITY changed, the folder was read again from the start
    outcomes: Mapping[str, int] = field(default_factory=dict)
    held: int = 0  # messages put off for a temporary DKIM failure: the checkpoint stays below them


@dataclass(slots=True)
class Batch:
    """One fetched and judged batch of UIDs."""

    last_uid: int
    fetched: int
    seen: list[SeenMessage]
    held: list[int] = field(default_factory=list)  # UIDs put off to a later pass (DKIM unavailable)


class Fetches:
    """A pass's batches, fetched and judged up to ``ahead`` batches ahead of the ledger, handed out in order."""

    def __init__(self, batches: Iterable[list[int]], ahead: int, load: Callable[[list[int]], Awaitable[Batch]]) -> None:
        self._pending = iter(batches)
        self._ahead = ahead
        self._load = load
        self._loads: deque[asyncio.Future[Batch]] = deque()

    async def next_group(self, limit: int) -> list[Batch]:
        """The next batch and those already arrived behind it, up to ``limit`` notifications; [] at the end.

        Group commit: what arrived while the ledger was busy goes into one transaction. The
        IMAP connection is kept busy: before and after waiting, fetches are queued ahead.
        """
        self._top_up()
        if not self._loads:
            return []
        group = [await self._loads.popleft()]
        while self._loads and self._loads[0].done() and sum(len(b.seen) for b in group) < limit:
            group.append(self._loads.popleft().result())
        self._top_up()
        return group

    def futures(self) -> list[asyncio.Future[Any]]:
        """The loads not yet handed out (to cancel when the pass ends early)."""
        return list(self._loads)

    def _top_up(self) -> None:
        while len(self._loads) < self._ahead and (uids := next(self._pending, None)) is not None:
            self._loads.append(asyncio.ensure_future(self._load(uids)))


class Marks:
    """A pass's marks in commit order, and the watermark they have reached.

    Marks run in order on the IMAP thread, so once a group's mark is done every UID up to its
    last one is marked: that watermark goes into the next commit, and a crash re-marks only
    what lies above it (``Ledger.pending_marks``).
    """

    def __init__(self) -> None:
        self._queue: deque[tuple[asyncio.Future[None] | None, int]] = deque()
        self._watermark = 0
        #: The last committed group's UID bound, once any group was committed.
        self.last: int | None = None

    def add(self, mark: asyncio.Future[None] | None, upto: int) -> None:
        """Queue one committed group's mark (None: it had nothing to mark) and its UID bound."""
        self._queue.append((mark, upto))
        self.last = upto

    def watermark(self) -> int:
        """Every UID needing a mark up to this one has it; a failed mark raises (it fails the pass)."""
        while self._queue and (self._queue[0][0] is None or self._queue[0][0].done()):
            mark, upto = self._queue.popleft()
            if mark is not None:
                mark.result()
            self._watermark = upto
        return self._watermark

    async def wait(self) -> None:
        """Wait for every queued mark; the first failure raises."""
        for mark, _ in self._queue:
            if mark is not None:
                await mark

    def futures(self) -> list[asyncio.Future[Any]]:
        return [mark for mark, _ in self._queue if mark is not None]


@dataclass(slots=True)
class Tally:
    """A pass's counts, and the lowest UID put off (DKIM unavailable for now).

    Neither the checkpoint nor the mark watermark passes a UID put off, so a later pass reads it
    again; the ledger's UID dedupe keeps those after it exactly-once.
    """

    fetched: int = 0
    notifications: int = 0
    marked: int = 0
    held: int = 0
    hold: int = 1 << 62
    outcomes: Counter[str] = field(default_factory=Counter)

    def take(self, group: Sequence[Batch]) -> tuple[list[SeenMessage], int]:
        """Count a group in: its notifications, in order, and the UID the checkpoint may advance to."""
        seen = [m for b in group for m in b.seen]
        put_off = [uid for b in group for uid in b.held]
        self.fetched += sum(b.fetched for b in group)
        self.notifications += len(seen)
        self.held += len(put_off)
        self.hold = min([self.hold, *put_off])
        return seen, min(group[-1].last_uid, self.hold - 1)

    @property
    def applied(self) -> int:
        return self.outcomes["applied"] + self.outcomes["claimed"]


class Complaints:
    """One warning per untrusted, malformed, conflicting or orphan notification, ``limit`` per pass, then a count."""

    def __init__(self, limit: int) -> None:
        self._limit = limit
        self.count = 0

    def report(self, seen: Sequence[SeenMessage], applied: Sequence[Applied]) -> None:
        by_uid = {m.uid: m for m in seen}
        for a in applied:
            if a.outcome not in COMPLAINTS:
                continue
            self.count += 1
            if self.count > self._limit:
                continue
            m = by_uid.get(a.uid)
            reason = f": {m.reason:.200}" if m and m.reason else ""
            log.warning(
                "%s notification uid %d for %s from %.80r%s", a.outcome, a.uid, a.uuid or "?", m and m.sender, reason
            )

    def summarise(self) -> None:
        if self.count > self._limit:
            log.warning(
                "%d more untrusted, malformed or conflicting notifications not logged", self.count - self._limit
            )


def settle(futures: Iterable[asyncio.Future[Any]]) -> None:
    """When a pass ends early: cancel queued work, and retrieve the errors of work already done."""
    for future in futures:
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()

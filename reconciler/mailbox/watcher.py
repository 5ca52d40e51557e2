"""The mailbox poller: fetch notification headers over IMAP, judge them, apply each exactly once.

All imapclient calls run on one dedicated worker thread (an IMAP connection is
not thread-safe, and a single FIFO worker also orders fetches and marks), so
the event loop never blocks on the network. A pass:

1. re-selects the folder and marks UIDs committed before a crash but not yet
   marked (``Ledger.pending_marks``);
2. lists the UIDs above the checkpoint (all of them when UIDVALIDITY changed:
   the ledger's deduplication keeps the rescan exactly-once);
3. per batch of ``batch_size`` UIDs, fetches only the header fields it needs
   with one ``UID FETCH first:last BODY.PEEK[HEADER.FIELDS (...)]`` on the IMAP
   thread (:func:`reconciler.mailbox.imap.fetch_headers`), and judges them
   (:mod:`reconciler.mailbox.judge`) on a second thread, up to ``_AHEAD_UIDS``
   messages ahead of the ledger so the server never waits for us. imapclient 4.1
   does not expand a ``first:last`` range (its ``fetch()`` sends one as given);
   the seam reads the answer with its own splitter for speed: imapclient's
   general response parser takes about a hundred times longer on header blocks;
4. commits with one ledger transaction per group (:func:`apply`: the ledger reads
   the batch's jobs, :func:`reconciler.mailbox.reconcile.plan` decides, the ledger
   writes the decisions): whatever batches are ready when the ledger is free go
   into one transaction (group commit), so a large backlog costs few commits and a
   single new mail still costs one;
5. marks what the ledger says to mark, only after the commit: ``\\Seen``, or a
   move to ``processed_folder`` (MOVE, else COPY + ``\\Deleted`` + UID EXPUNGE).

Mail without ``X-SFService`` is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient

from reconciler import backoff
from reconciler.clock import iso, utc_now
from reconciler.config import Settings
from reconciler.errors import MailboxError, MailboxLoginError
from reconciler.jobs.notices import Applied, SeenMessage
from reconciler.ledger.store import Ledger
from reconciler.mailbox.imap import (
    IMAP_ERRORS,
    close_quietly,
    fetch_headers,
    header_fetch_items,
    open_imap,
    select_info,
    uid_set,
)
from reconciler.mailbox.judge import Owing, judge_all, seen
from reconciler.mailbox.login import LoginRecord, retry_delay
from reconciler.mailbox.notification import AUTH_RESULTS, HEADER_FIELDS
from reconciler.mailbox.passes import Batch, Complaints, Fetches, Marks, PassStats, Tally, settle
from reconciler.mailbox.reconcile import plan
from reconciler.mailbox.trust import DnsFunc, Postponements
from reconciler.redact import describe

log = logging.getLogger(__name__)
T = TypeVar("T")

IDLE_RENEW_S = 290.0  # re-issue IDLE well within 5 minutes: some servers drop longer ones silently
IDLE_CHECK_S = 0.5  # how often a thread in IDLE looks at the stop flag
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
_JITTER = random.Random()  # the reconnect backoff's random source
_FULL_FETCH_CHUNK = 25  # whole messages fetched at once for DKIM: bounds memory with attachments
# Messages fetched and judged ahead of the ledger (at least two batches), so that the ledger finds
# thousands ready whenever it is free; each costs a few hundred bytes until it is committed.
_AHEAD_UIDS = 5_000
# Notifications committed in one transaction at most when batches queue up. Each commit writes
# every page it touched (the jobs, events and messages B-trees, at random), so larger commits write
# less in all: on 50,000 notifications, commits of 3,000 cost 0.46 s in all and of 10,000 0.27 s.
# 10,000 costs the poller 10 MB more peak RSS than 5,000 (94 against 84 MB) for no gain measurable
# in a whole pass on these machines.
_GROUP_MAX = 5_000
_LOG_LIMIT = 20  # untrusted/malformed warnings per pass before summarising


__all__ = ["PassStats", "Watcher", "apply"]


class Watcher:
    """Watches one folder and feeds the ledger; the daemon calls connect, run_pass/watch and close."""

    def __init__(
        self,
        settings: Settings,
        ledger: Ledger,
        *,
        clock: Callable[[], datetime] = utc_now,
        dnsfunc: DnsFunc | None = None,
        on_pass: Callable[[PassStats], None] | None = None,
        record_logins: bool = True,
    ) -> None:
        self._settings = settings
        self._on_pass = on_pass
        self._mb = settings.mailbox
        self._ledger = ledger
        self._clock = clock
        self._dnsfunc = dnsfunc
        self._postponed = Postponements()
        self._trust = self._mb.trust
        self._fetch_items = header_fetch_items([*HEADER_FIELDS, *([AUTH_RESULTS] if self._trust.authserv_id else [])])
        self._client: IMAPClient | None = None
        self._io: ThreadPoolExecutor | None = None
        self._parse_pool: ThreadPoolExecutor | None = None
        self._caps: frozenset[bytes] = frozenset()
        self._selected: int | None = None  # the UIDVALIDITY the connect's SELECT saw, until the first pass
        # Set when the connection fails: the pass's queued fetches and marks then fail at once
        # instead of each reconnecting to a server that just went away. A new pass clears it.
        self._failed = False
        self._stop_flag = threading.Event()
        self.logins = LoginRecord(ledger, clock, record=record_logins)  # config check only tries

    # -- connection ------------------------------------------------------------

    @property
    def capabilities(self) -> frozenset[bytes]:
        """What the server announced after login (MOVE, UIDPLUS, IDLE decide the paths taken); empty before."""
        return self._caps

    async def connect(self) -> None:
        """Log in and select the folder (creating processed_folder if configured); MailboxError on failure."""
        if self._client is not None:
            return
        try:
            await self._run(self._connect_sync)
        except MailboxLoginError as e:
            await self.logins.refused(e)
            raise
        await self.logins.succeeded()

    def _connect_sync(self) -> None:
        self._failed = False
        client = open_imap(self._settings)
        try:
            self._caps = frozenset(client.capabilities())
            processed = self._mb.processed_folder
            if processed and not client.folder_exists(processed):
                try:
                    client.create_folder(processed)
                except IMAP_ERRORS:
                    if not client.folder_exists(processed):  # lost a race with another client: fine
                        raise
                log.info("created folder %r for processed notifications", processed)
            selected = select_info(client.select_folder(self._mb.folder))[0]
        except BaseException:
            close_quietly(client)
            raise
        self._client, self._selected = client, selected

    async def close(self) -> None:
        """Log out (best effort) and stop the worker thread."""
        parser, self._parse_pool = self._parse_pool, None
        if parser is not None:
            parser.shutdown(wait=False)
        io, self._io = self._io, None
        if io is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(io, self._drop_sync, True)
        finally:
            io.shutdown(wait=False)

    def _drop_sync(self, logout: bool = False) -> None:
        client, self._client, self._selected = self._client, None, None
        if client is None:
            return
        if logout:
            try:
                client.logout()
                return
            except Exception:  # already gone: just close the socket below
                log.debug("logout from %s failed", self._mb.host, exc_info=True)
        close_quietly(client)

    def _need(self) -> IMAPClient:
        if self._client is None:
            if self._failed:
                raise MailboxError(f"mailbox {self._mb.host}: connection lost earlier in this pass")
            self._connect_sync()
        assert self._client is not None
        return self._client

    def _submit(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue ``fn`` on the IMAP worker thread; IMAP and socket errors come back as MailboxError."""
        if self._io is None:
            self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        return asyncio.get_running_loop().run_in_executor(self._io, self._guarded, fn, args)

    async def _run(self, fn: Callable[..., T], *args: Any) -> T:
        return await self._submit(fn, *args)

    def _guarded(self, fn: Callable[..., T], args: tuple[Any, ...]) -> T:
        try:
            return fn(*args)
        except MailboxError:
            self._failed = True
            self._drop_sync()
            raise
        except IMAP_ERRORS as e:
            self._failed = True
            self._drop_sync()
            raise MailboxError(f"mailbox {self._mb.host}: {describe(e)}") from e

    # -- one pass --------------------------------------------------------------

    async def run_pass(self) -> PassStats:
        """Fetch everything above the checkpoint, apply it, mark it; see the module docstring."""
        started = time.monotonic()
        folder = self._mb.folder
        uidvalidity, uidnext = await self._run(self._select)
        await self._mark_interrupted(folder, uidvalidity)
        last, rescan = await self._start_after(folder, uidvalidity)
        uids = await self._run(self._uids_above, last) if uidnext is None or uidnext > last + 1 else []
        tally = await self._drain(folder, uidvalidity, uids)
        stats = PassStats(
            tally.fetched, tally.notifications, tally.applied, tally.marked, time.monotonic() - started,
            uidvalidity, uids[-1] if uids else last, rescan, dict(tally.outcomes), tally.held,
        )  # fmt: skip
        await self._record(stats)
        if self._on_pass is not None:
            self._on_pass(stats)
        return stats

    async def _mark_interrupted(self, folder: str, uidvalidity: int) -> None:
        """Mark what was committed before a crash but not yet marked."""
        pending = await self._ledger.pending_marks(folder, uidvalidity)
        if pending:
            log.info("marking %d notifications committed before an interruption", len(pending))
            await self._run(self._mark, pending)
            await self._ledger.set_marked(folder, uidvalidity, pending[-1])

    async def _start_after(self, folder: str, uidvalidity: int) -> tuple[int, bool]:
        """The UID to read above, and whether UIDVALIDITY changed (then the whole folder is read again)."""
        checkpoint = await self._ledger.checkpoint(folder)
        if checkpoint is None:
            return 0, False
        if checkpoint[0] != uidvalidity:
            log.warning(
                "UIDVALIDITY of %s changed from %d to %d: rescanning the folder", folder, checkpoint[0], uidvalidity
            )
            return 0, True
        return checkpoint[1], False

    async def _drain(self, folder: str, uidvalidity: int, uids: list[int]) -> Tally:
        """Fetch, judge, commit and mark ``uids``, batch by batch, the fetches running ahead of the ledger."""
        size = self._mb.batch_size
        fetches = Fetches(
            (uids[i : i + size] for i in range(0, len(uids), size)), max(2, _AHEAD_UIDS // size), self._load
        )
        marks = Marks()
        complaints = Complaints(_LOG_LIMIT)
        tally = Tally()
        try:
            while group := await fetches.next_group(_GROUP_MAX):
                notices, upto = tally.take(group)
                applied = await apply(
                    self._ledger, folder, uidvalidity, notices, upto, self._clock(),
                    self._trust.confirm_with_status, marks.watermark(),
                )  # fmt: skip
                tally.outcomes.update(a.outcome for a in applied)
                complaints.report(notices, applied)
                to_mark = [a.uid for a in applied if a.mark]
                # only after the commit above; queued behind the fetches already in flight
                marks.add(self._submit(self._mark, to_mark) if to_mark else None, upto)
                tally.marked += len(to_mark)
            await marks.wait()
        finally:  # on an error: queued work is dropped, and errors of work already done are retrieved
            settle([*fetches.futures(), *marks.futures()])
        if marks.last is not None:  # the last group's mark is done: the watermark reaches its last UID
            await self._ledger.set_marked(folder, uidvalidity, marks.last)
        complaints.summarise()
        return tally

    async def _record(self, stats: PassStats) -> None:
        """The pass as a health fact, and one log line when it fetched anything."""
        now = self._clock()
        await self._ledger.set_fact(
            "mailbox_pass",
            {
                "at": iso(now), "duration_s": round(stats.duration_s, 3), "fetched": stats.fetched,
                "notifications": stats.notifications, "applied": stats.applied, "marked": stats.marked,
                "uidvalidity": stats.uidvalidity, "last_uid": stats.last_uid, "outcomes": dict(stats.outcomes),
            },
            now,
        )  # fmt: skip
        if stats.fetched:
            log.info(
                "mailbox pass: %d fetched, %d notifications, %d applied, %d marked in %.2fs",
                stats.fetched, stats.notifications, stats.applied, stats.marked, stats.duration_s,
            )  # fmt: skip

    # -- worker-thread side ------------------------------------------------------

    def _select(self) -> tuple[int, int | None]:
        """UIDVALIDITY and UIDNEXT. The first pass on a connection reuses the connect's own SELECT (on
        a cold 50,000-message Maildir a second one costs Dovecot a tenth of a second) but not its
        UIDNEXT, which may be stale by now: None makes the pass search for new UIDs regardless."""
        self._failed = False  # a new pass: reconnect if the last one lost the connection
        client = self._need()
        selected, self._selected = self._selected, None
        if selected is not None:
            return selected, None
        return select_info(client.select_folder(self._mb.folder))

    def _uids_above(self, last: int) -> list[int]:
        found = self._need().search(["UID", f"{last + 1}:*"])
        return sorted(u for u in found if u > last)  # "n:*" always includes the highest UID, even below n

    async def _load(self, uids: list[int]) -> Batch:
        """Fetch one batch's headers on the IMAP thread, then judge them on the parser thread."""
        headers = await self._submit(self._fetch_headers, uids[0], uids[-1])
        loop = asyncio.get_running_loop()
        verdicts, owing = await loop.run_in_executor(self._parser(), judge_all, headers, self._trust)
        held: list[int] = []
        for i in range(0, len(owing), _FULL_FETCH_CHUNK):  # verify_dkim: whole messages, a few at a time
            chunk = owing[i : i + _FULL_FETCH_CHUNK]
            bodies = await self._submit(self._fetch_whole, [o.uid for o in chunk])
            verified, put_off = await loop.run_in_executor(self._parser(), self._verify, chunk, bodies)
            verdicts.extend(verified)
            held.extend(put_off)
        verdicts.sort(key=lambda m: m.uid)
        return Batch(uids[-1], len(headers), verdicts, held)

    def _fetch_headers(self, first: int, last: int) -> dict[int, bytes]:
        return fetch_headers(self._need(), first, last, self._fetch_items, f"mailbox {self._mb.host}")

    def _fetch_whole(self, uids: list[int]) -> dict[int, bytes]:
        found = self._need().fetch(uids, ["BODY.PEEK[]"])
        return {uid: raw for uid in uids if isinstance(raw := found.get(uid, {}).get(b"BODY[]"), bytes)}

    def _verify(self, chunk: Sequence[Owing], bodies: Mapping[int, bytes]) -> tuple[list[SeenMessage], list[int]]:
        """The DKIM verdicts, and the UIDs put off for now (DKIM unavailable)."""
        verified: list[SeenMessage] = []
        put_off: list[int] = []
        for o in chunk:
            verdict = self._postponed.judge(o.uid, o.notification, self._trust, bodies.get(o.uid), self._dnsfunc)
            if verdict is None:
                put_off.append(o.uid)
            else:
                verified.append(seen(o.uid, o.notification, verdict))
        return verified, put_off

    def _parser(self) -> ThreadPoolExecutor:
        if self._parse_pool is None:
            self._parse_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="mailparse")
        return self._parse_pool

    def _mark(self, uids: list[int]) -> None:
        client = self._need()
        target = self._mb.processed_folder
        ids = uid_set(uids)
        if not target:
            client.add_flags(ids, [b"\\Seen"], silent=True)
        elif b"MOVE" in self._caps:
            client.move(ids, target)
        else:
            client.copy(ids, target)
            client.add_flags(ids, [b"\\Deleted"], silent=True)
            if b"UIDPLUS" in self._caps:
                client.uid_expunge(ids)
            else:  # a plain EXPUNGE would also remove other clients' deleted mail
                log.debug("server lacks UIDPLUS: moved notifications stay flagged \\Deleted in %s", self._mb.folder)

    # -- watching --------------------------------------------------------------

    async def watch(self, stop: asyncio.Event) -> None:
        """Run passes until ``stop`` is set: IDLE when possible, else poll; reconnect with backoff on errors."""
        self._stop_flag.clear()
        relay = asyncio.create_task(_relay(stop, self._stop_flag))
        outage: float | None = None
        attempt = 0
        try:
            while not stop.is_set():
                try:
                    await self.connect()
                    stats = await self.run_pass()
                    if outage is not None:
                        log.info("mailbox %s reachable again after %.0fs", self._mb.host, time.monotonic() - outage)
                        outage, attempt = None, 0
                    if stats.fetched and not stats.held:
                        continue  # drain: mail may have arrived during a long pass
                    if self._mb.idle and b"IDLE" in self._caps and not stats.held:
                        await self._run(self._idle_wait)
                    else:
                        await _wait(stop, self._mb.poll_interval_s)
                except MailboxLoginError as e:  # not an outage: retried slowly, never hammered (lockouts)
                    await self._run(self._drop_sync)
                    delay = retry_delay(self.logins.refusals, self._mb.login_retry_max_s, _JITTER)
                    log.error(
                        "%s; next try in %.0fs (fix the password or token; `reconciler check` shows this)", e, delay
                    )
                    await _wait(stop, delay)
                except MailboxError as e:
                    await self._run(self._drop_sync)
                    if outage is None:
                        outage = time.monotonic()
                        log.warning("mailbox unavailable, retrying with backoff: %s", e)
                    else:
                        log.debug("mailbox still unavailable (attempt %d): %s", attempt + 1, e)
                    attempt += 1
                    delay = backoff.delay(attempt, BACKOFF_BASE_S, BACKOFF_MAX_S, _JITTER)
                    await _wait(stop, delay)
        finally:
            self._stop_flag.set()
            relay.cancel()

    def _idle_wait(self) -> bool:
        """IDLE until new mail, stop, or renewal time; True when the server reported new mail."""
        client = self._need()
        client.idle()
        deadline = time.monotonic() + IDLE_RENEW_S
        quick_empty = 0
        try:
            while not self._stop_flag.is_set() and time.monotonic() < deadline:
                started = time.monotonic()
                responses = client.idle_check(timeout=IDLE_CHECK_S)
                if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                    return True
                if any(r and r[0] == b"BYE" for r in responses):
                    raise MailboxError(f"mailbox {self._mb.host}: server closed the connection during IDLE")
                # imapclient's idle_check returns [] at once on EOF: twice in a row means the server is gone
                quick_empty = quick_empty + 1 if not responses and time.monotonic() - started < 0.05 else 0
                if quick_empty >= 3:
                    raise MailboxError(f"mailbox {self._mb.host}: connection lost during IDLE")
            return False
        finally:
            client.idle_done()


async def apply(
    ledger: Ledger,
    folder: str,
    uidvalidity: int,
    messages: Sequence[SeenMessage],
    last_uid: int,
    now: datetime,
    confirm_with_status: bool,
    marked_uid: int = 0,
) -> list[Applied]:
    """Apply one batch of notifications exactly once and advance the checkpoint, in one transaction.

    The ledger reads what it holds about the batch, :func:`plan` decides, the ledger writes the
    decisions it is handed; ``marked_uid`` advances the mark watermark in the same write.
    """
    async with ledger.mail_batch(folder, uidvalidity, messages) as batch:
        decisions = plan(batch.fresh, batch.jobs, batch.applied_ids, confirm_with_status)
        return await batch.write(decisions, last_uid, marked_uid, now)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _relay(stop: asyncio.Event, flag: threading.Event) -> None:
    await stop.wait()
    flag.set()

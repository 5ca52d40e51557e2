"""The mailbox poller: fetch notification headers over IMAP, judge them, apply each exactly once.

All imapclient calls run on one dedicated worker thread (an IMAP connection is
not thread-safe, and a single FIFO worker also orders fetches and marks), so
the event loop never blocks on the network. A pass:

1. re-selects the folder and marks UIDs committed before a crash but not yet
   marked (``Ledger.pending_marks``);
2. lists the UIDs above the checkpoint (all of them when UIDVALIDITY changed:
   the ledger's deduplication keeps the rescan exactly-once);
3. per batch of ``batch_size`` UIDs, fetches only the header fields it needs
   with ``UID FETCH first:last BODY.PEEK[HEADER.FIELDS (...)]`` (an explicit
   range: imapclient's ``fetch()`` would expand it into a UID list that soon
   exceeds Dovecot's 64 KB command line) on the IMAP thread, and parses and
   judges them on a second thread, up to ``_AHEAD_UIDS`` messages ahead of the
   ledger so the server never waits for us;
4. commits with one ``Ledger.apply_messages`` per group: whatever batches are
   ready when the ledger is free go into one transaction (group commit), so a
   large backlog costs few commits and a single new mail still costs one;
5. marks what the ledger says to mark, only after the commit: ``\\Seen``, or a
   move to ``processed_folder`` (MOVE, else COPY + ``\\Deleted`` + UID EXPUNGE).

Mail without ``X-SFService`` is never touched.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import re
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from reconciler import backoff
from reconciler.clock import iso, utc_now
from reconciler.config import Settings
from reconciler.errors import MailboxError
from reconciler.ledger.store import Ledger, SeenMessage
from reconciler.mailbox.imap import IMAP_ERRORS, close_quietly, open_imap, uid_set
from reconciler.mailbox.notification import AUTH_RESULTS, HEADER_FIELDS, Malformed, Notification, NotNotification, parse
from reconciler.mailbox.trust import DnsFunc, Postponements, assess
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
class _Batch:
    last_uid: int
    fetched: int
    seen: list[SeenMessage]
    held: list[int] = field(default_factory=list)  # UIDs put off to a later pass (DKIM unavailable)


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
    ) -> None:
        self._settings = settings
        self._on_pass = on_pass
        self._mb = settings.mailbox
        self._ledger = ledger
        self._clock = clock
        self._dnsfunc = dnsfunc
        self._postponed = Postponements()
        self._trust = self._mb.trust
        self._trust_headers = self._trust.model_copy(update={"verify_dkim": False})
        fields = [*HEADER_FIELDS, *([AUTH_RESULTS] if self._trust.authserv_id else [])]
        self._fetch_items = f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(fields).upper()})])"
        self._client: IMAPClient | None = None
        self._io: ThreadPoolExecutor | None = None
        self._parse_pool: ThreadPoolExecutor | None = None
        self._caps: frozenset[bytes] = frozenset()
        self._selected: int | None = None  # the UIDVALIDITY the connect's SELECT saw, until the first pass
        # Set when the connection fails: the pass's queued fetches and marks then fail at once
        # instead of each reconnecting to a server that just went away. A new pass clears it.
        self._failed = False
        self._stop_flag = threading.Event()

    # -- connection ------------------------------------------------------------

    async def connect(self) -> None:
        """Log in and select the folder (creating processed_folder if configured); MailboxError on failure."""
        if self._client is not None:
            return
        await self._run(self._connect_sync)

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
            selected = _select_info(client.select_folder(self._mb.folder))[0]
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
        pending = await self._ledger.pending_marks(folder, uidvalidity)
        if pending:
            log.info("marking %d notifications committed before an interruption", len(pending))
            await self._run(self._mark, pending)
            await self._ledger.set_marked(folder, uidvalidity, pending[-1])
        checkpoint = await self._ledger.checkpoint(folder)
        rescan = checkpoint is not None and checkpoint[0] != uidvalidity
        if rescan:
            assert checkpoint is not None
            log.warning(
                "UIDVALIDITY of %s changed from %d to %d: rescanning the folder", folder, checkpoint[0], uidvalidity
            )
        last = checkpoint[1] if checkpoint is not None and not rescan else 0
        uids: list[int] = []
        if uidnext is None or uidnext > last + 1:
            uids = await self._run(self._uids_above, last)
        batches = [uids[i : i + self._mb.batch_size] for i in range(0, len(uids), self._mb.batch_size)]
        ahead = max(2, _AHEAD_UIDS // self._mb.batch_size)  # batches in flight

        outcomes: Counter[str] = Counter()
        fetched = notifications = 0
        warned = [0]
        pending_batches = iter(batches)
        loads: deque[asyncio.Task[_Batch]] = deque()
        # Per committed group, in commit order: its mark (None: nothing to mark) and its last UID.
        # Marks run in order on the IMAP thread, so once a group's mark is done every UID up to its
        # last one is marked: that watermark goes into the next commit, and a crash re-marks only
        # what lies above it (Ledger.pending_marks).
        marks: deque[tuple[asyncio.Future[None] | None, int]] = deque()
        watermark = 0
        marked = 0
        # The lowest UID put off (DKIM unavailable for now): neither the checkpoint nor the mark watermark
        # passes it, so a later pass reads it again; the ledger's UID dedupe keeps those after it exactly-once.
        hold, held = 1 << 62, 0

        def marked_upto() -> int:
            nonlocal watermark
            while marks and (marks[0][0] is None or marks[0][0].done()):
                future, upto = marks.popleft()
                if future is not None:
                    future.result()  # a failed mark fails the pass
                watermark = upto
            return watermark

        def top_up() -> None:  # keep the IMAP connection busy: fetches run ahead of parsing and the ledger
            while len(loads) < ahead and (uids_ := next(pending_batches, None)) is not None:
                loads.append(asyncio.ensure_future(self._load(uids_)))

        try:
            top_up()
            while loads:
                group = [await loads.popleft()]
                # Group commit: what has already arrived meanwhile goes into the same transaction.
                while loads and loads[0].done() and sum(len(b.seen) for b in group) < _GROUP_MAX:
                    group.append(loads.popleft().result())
                top_up()
                seen = [m for b in group for m in b.seen]
                fetched += sum(b.fetched for b in group)
                notifications += len(seen)
                put_off = [uid for b in group for uid in b.held]
                held, hold = held + len(put_off), min([hold, *put_off])
                upto = min(group[-1].last_uid, hold - 1)
                applied = await self._ledger.apply_messages(
                    folder, uidvalidity, seen, upto, self._clock(), self._trust.confirm_with_status,
                    marked_upto(),
                )  # fmt: skip
                outcomes.update(a.outcome for a in applied)
                self._report(seen, applied, warned)
                to_mark = [a.uid for a in applied if a.mark]
                # only after the commit above; queued behind the fetches already in flight
                marks.append((self._submit(self._mark, to_mark) if to_mark else None, upto))
                marked += len(to_mark)
            for mark, _ in marks:
                if mark is not None:
                    await mark
        finally:  # on an error: queued work is dropped, and errors of work already done are retrieved
            unfinished: list[asyncio.Future[Any]] = [*loads, *(m for m, _ in marks if m is not None)]
            for future in unfinished:
                if not future.done():
                    future.cancel()
                elif not future.cancelled():
                    future.exception()
        if marks:  # the last group's mark is done: the watermark reaches its last UID
            await self._ledger.set_marked(folder, uidvalidity, marks[-1][1])
        if warned[0] > _LOG_LIMIT:
            log.warning("%d more untrusted, malformed or conflicting notifications not logged", warned[0] - _LOG_LIMIT)
        duration = time.monotonic() - started
        applied_count = outcomes["applied"] + outcomes["claimed"]
        stats = PassStats(
            fetched, notifications, applied_count, marked, duration, uidvalidity,
            uids[-1] if uids else last, rescan, dict(outcomes), held,
        )  # fmt: skip
        now = self._clock()
        await self._ledger.set_fact(
            "mailbox_pass",
            {
                "at": iso(now), "duration_s": round(duration, 3), "fetched": fetched,
                "notifications": notifications, "applied": applied_count, "marked": marked,
                "uidvalidity": uidvalidity, "last_uid": stats.last_uid, "outcomes": dict(outcomes),
            },
            now,
        )  # fmt: skip
        if fetched:
            log.info(
                "mailbox pass: %d fetched, %d notifications, %d applied, %d marked in %.2fs",
                fetched, notifications, applied_count, marked, duration,
            )  # fmt: skip
        if self._on_pass is not None:
            self._on_pass(stats)
        return stats

    def _report(self, seen: Sequence[SeenMessage], applied: Sequence[Any], warned: list[int]) -> None:
        by_uid = {m.uid: m for m in seen}
        for a in applied:
            if a.outcome not in ("untrusted", "malformed", "conflict", "orphan"):
                continue
            warned[0] += 1
            if warned[0] > _LOG_LIMIT:
                continue
            m = by_uid.get(a.uid)
            reason = f": {m.reason:.200}" if m and m.reason else ""
            log.warning(
                "%s notification uid %d for %s from %.80r%s", a.outcome, a.uid, a.uuid or "?", m and m.sender, reason
            )

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
        return _select_info(client.select_folder(self._mb.folder))

    def _uids_above(self, last: int) -> list[int]:
        found = self._need().search(["UID", f"{last + 1}:*"])
        return sorted(u for u in found if u > last)  # "n:*" always includes the highest UID, even below n

    async def _load(self, uids: list[int]) -> _Batch:
        """Fetch one batch's headers on the IMAP thread, then judge them on the parser thread."""
        headers = await self._submit(self._fetch_headers, uids[0], uids[-1])
        loop = asyncio.get_running_loop()
        seen, candidates = await loop.run_in_executor(self._parser(), self._classify, headers)
        held: list[int] = []
        for i in range(0, len(candidates), _FULL_FETCH_CHUNK):  # verify_dkim: whole messages, a few at a time
            chunk = candidates[i : i + _FULL_FETCH_CHUNK]
            bodies = await self._submit(self._fetch_whole, [uid for uid, _ in chunk])
            seen.extend(await loop.run_in_executor(self._parser(), self._verify, chunk, bodies, held))
        seen.sort(key=lambda m: m.uid)
        return _Batch(uids[-1], len(headers), seen, held)

    def _fetch_headers(self, first: int, last: int) -> dict[int, bytes]:
        client = self._need()
        typ, data = client._imap.uid("FETCH", f"{first}:{last}", self._fetch_items)
        if typ != "OK":
            raise MailboxError(f"mailbox {self._mb.host}: UID FETCH {first}:{last} refused: {describe(data)}")
        headers = split_fetch(data)
        if headers is None:  # a layout the fast path does not know: imapclient's full parser
            response = parse_fetch_response([d for d in data if d is not None], False, True)
            headers = {uid: body for uid, item in response.items() if (body := _body(item)) is not None}
        return {uid: body for uid, body in headers.items() if first <= uid <= last}  # drop unsolicited FETCHes

    def _fetch_whole(self, uids: list[int]) -> dict[int, bytes]:
        found = self._need().fetch(uids, ["BODY.PEEK[]"])
        return {uid: raw for uid in uids if isinstance(raw := found.get(uid, {}).get(b"BODY[]"), bytes)}

    def _classify(self, headers: Mapping[int, bytes]) -> tuple[list[SeenMessage], list[tuple[int, Notification]]]:
        """Parse and judge header blocks: the verdicts, and the trusted ones still owing a DKIM check."""
        seen: list[SeenMessage] = []
        candidates: list[tuple[int, Notification]] = []
        for uid, header in headers.items():
            parsed = parse(header)
            if isinstance(parsed, NotNotification):
                continue
            if isinstance(parsed, Malformed):
                date = iso(parsed.date) if parsed.date else None
                seen.append(
                    SeenMessage(
                        uid, parsed.message_id, "malformed", parsed.uuid, None, parsed.sender, parsed.reason, date
                    )
                )
                continue
            verdict = assess(parsed, self._trust_headers)
            if verdict.trusted and self._trust.verify_dkim:
                candidates.append((uid, parsed))
            else:
                seen.append(_seen(uid, parsed, verdict.trusted, verdict.reason))
        return seen, candidates

    def _verify(
        self, chunk: Sequence[tuple[int, Notification]], bodies: Mapping[int, bytes], held: list[int]
    ) -> list[SeenMessage]:
        """The DKIM verdicts; a message put off for now (DKIM unavailable) goes into ``held`` instead."""
        out: list[SeenMessage] = []
        for uid, notification in chunk:
            verdict = self._postponed.judge(uid, notification, self._trust, bodies.get(uid), self._dnsfunc)
            if verdict is None:
                held.append(uid)
            else:
                out.append(_seen(uid, notification, verdict.trusted, verdict.reason))
        return out

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


_UID = re.compile(rb"\bUID (\d+)")


def split_fetch(data: Sequence[Any]) -> dict[int, bytes] | None:
    """UID -> header literal from imaplib's raw ``UID FETCH`` answer, or None if its shape is unusual.

    imaplib hands each literal over as ``(b'n (UID u BODY[...] {len}', literal)``; the UID may
    also follow the literal (``b' UID u)'``).  Splitting that directly is about forty times
    cheaper than imapclient's general response parser, which stays the fallback.
    """
    out: dict[int, bytes] = {}
    pending: bytes | None = None
    for item in data:
        if isinstance(item, tuple):
            if pending is not None or len(item) != 2:
                return None
            prefix, literal = item
            found = _UID.search(prefix)
            if found is None:
                pending = literal
            else:
                out[int(found.group(1))] = literal
        elif pending is not None:
            found = _UID.search(item) if isinstance(item, bytes) else None
            if found is None:
                return None
            out[int(found.group(1))] = pending
            pending = None
    return None if pending is not None else out


def _select_info(info: Mapping[bytes, Any]) -> tuple[int, int | None]:
    uidnext = info.get(b"UIDNEXT")
    return int(info[b"UIDVALIDITY"]), int(uidnext) if uidnext is not None else None


def _body(item: Mapping[bytes, Any]) -> bytes | None:
    for key, value in item.items():
        if key.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return None


def _seen(uid: int, n: Notification, trusted: bool, reason: str) -> SeenMessage:
    return SeenMessage(
        uid,
        n.message_id,
        "notification" if trusted else "untrusted",
        n.uuid,
        n.status,
        n.sender or (n.from_addresses[0] if n.from_addresses else None),
        None if trusted else reason,
        iso(n.date) if n.date else None,
    )


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)


async def _relay(stop: asyncio.Event, flag: threading.Event) -> None:
    await stop.wait()
    flag.set()

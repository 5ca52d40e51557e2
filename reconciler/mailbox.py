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
   exceeds Dovecot's 64 KB command line), parses and judges them on the worker
   thread, and commits the batch with one ``Ledger.apply_messages`` while the
   worker already fetches the next one;
4. marks what the ledger says to mark, only after the commit: ``\\Seen``, or a
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
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from imapclient import IMAPClient
from imapclient.response_parser import parse_fetch_response

from reconciler.clock import iso, utc_now
from reconciler.config import Settings
from reconciler.errors import MailboxError
from reconciler.imap import IMAP_ERRORS, close_quietly, describe, open_imap, uid_set
from reconciler.ledger import Ledger, SeenMessage
from reconciler.notification import AUTH_RESULTS, HEADER_FIELDS, Malformed, Notification, NotNotification, parse
from reconciler.trust import DnsFunc, assess

log = logging.getLogger(__name__)
T = TypeVar("T")

IDLE_RENEW_S = 290.0  # re-issue IDLE well within 5 minutes: some servers drop longer ones silently
IDLE_CHECK_S = 0.5  # how often a thread in IDLE looks at the stop flag
BACKOFF_BASE_S = 1.0
BACKOFF_MAX_S = 300.0
_FULL_FETCH_CHUNK = 25  # whole messages fetched at once for DKIM: bounds memory with attachments
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


@dataclass(slots=True)
class _Batch:
    last_uid: int
    fetched: int
    seen: list[SeenMessage]


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
        self._trust = self._mb.trust
        self._trust_headers = self._trust.model_copy(update={"verify_dkim": False})
        fields = [*HEADER_FIELDS, *([AUTH_RESULTS] if self._trust.authserv_id else [])]
        self._fetch_items = f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(fields).upper()})])"
        self._client: IMAPClient | None = None
        self._io: ThreadPoolExecutor | None = None
        self._caps: frozenset[bytes] = frozenset()
        self._stop_flag = threading.Event()

    # -- connection ------------------------------------------------------------

    async def connect(self) -> None:
        """Log in and select the folder (creating processed_folder if configured); MailboxError on failure."""
        if self._client is not None:
            return
        await self._run(self._connect_sync)

    def _connect_sync(self) -> None:
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
            client.select_folder(self._mb.folder)
        except BaseException:
            close_quietly(client)
            raise
        self._client = client

    async def close(self) -> None:
        """Log out (best effort) and stop the worker thread."""
        io, self._io = self._io, None
        if io is None:
            return
        try:
            await asyncio.get_running_loop().run_in_executor(io, self._drop_sync, True)
        finally:
            io.shutdown(wait=False)

    def _drop_sync(self, logout: bool = False) -> None:
        client, self._client = self._client, None
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
            self._drop_sync()
            raise
        except IMAP_ERRORS as e:
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
            await self._ledger.set_marked(folder, uidvalidity, pending)
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

        outcomes: Counter[str] = Counter()
        fetched = notifications = marked = 0
        warned = [0]
        next_fetch = self._submit(self._fetch_batch, batches[0]) if batches else None
        mark_job: asyncio.Future[None] | None = None
        done_marks: list[int] = []  # recorded in the ledger once per pass; a crash leaves them to pending_marks
        try:
            for i in range(len(batches)):
                assert next_fetch is not None
                batch = await next_fetch
                next_fetch = self._submit(self._fetch_batch, batches[i + 1]) if i + 1 < len(batches) else None
                if mark_job is not None:  # queued before the fetch above, so it has already run
                    await mark_job
                    mark_job = None
                fetched += batch.fetched
                notifications += len(batch.seen)
                applied = await self._ledger.apply_messages(
                    folder, uidvalidity, batch.seen, batch.last_uid, self._clock(), self._trust.confirm_with_status
                )
                outcomes.update(a.outcome for a in applied)
                self._report(batch.seen, applied, warned)
                to_mark = [a.uid for a in applied if a.mark]
                if to_mark:
                    mark_job = self._submit(self._mark, to_mark)
                    done_marks.extend(to_mark)
            if mark_job is not None:
                await mark_job
                mark_job = None
        finally:
            for future in (next_fetch, mark_job):
                if future is not None and not future.done():
                    future.cancel()
        if done_marks:
            await self._ledger.set_marked(folder, uidvalidity, done_marks)
        marked = len(done_marks)
        if warned[0] > _LOG_LIMIT:
            log.warning("%d more untrusted, malformed or conflicting notifications not logged", warned[0] - _LOG_LIMIT)
        duration = time.monotonic() - started
        applied_count = outcomes["applied"] + outcomes["claimed"]
        stats = PassStats(
            fetched, notifications, applied_count, marked, duration, uidvalidity,
            uids[-1] if uids else last, rescan, dict(outcomes),
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
        info = self._need().select_folder(self._mb.folder)
        uidnext = info.get(b"UIDNEXT")
        return int(info[b"UIDVALIDITY"]), int(uidnext) if uidnext is not None else None

    def _uids_above(self, last: int) -> list[int]:
        found = self._need().search(["UID", f"{last + 1}:*"])
        return sorted(u for u in found if u > last)  # "n:*" always includes the highest UID, even below n

    def _fetch_batch(self, uids: list[int]) -> _Batch:
        client = self._need()
        first, last = uids[0], uids[-1]
        typ, data = client._imap.uid("FETCH", f"{first}:{last}", self._fetch_items)
        if typ != "OK":
            raise MailboxError(f"mailbox {self._mb.host}: UID FETCH {first}:{last} refused: {describe(data)}")
        headers = split_fetch(data)
        if headers is None:  # a layout the fast path does not know: imapclient's full parser
            response = parse_fetch_response([d for d in data if d is not None], False, True)
            headers = {uid: body for uid, item in response.items() if (body := _body(item)) is not None}
        seen: list[SeenMessage] = []
        candidates: list[tuple[int, Notification]] = []
        count = 0
        for uid in sorted(headers):
            if not first <= uid <= last:
                continue  # an unsolicited FETCH for another message
            header = headers[uid]
            count += 1
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
        for i in range(0, len(candidates), _FULL_FETCH_CHUNK):
            chunk = candidates[i : i + _FULL_FETCH_CHUNK]
            bodies = client.fetch([uid for uid, _ in chunk], ["BODY.PEEK[]"])
            for uid, notification in chunk:
                raw = bodies.get(uid, {}).get(b"BODY[]")
                verdict = assess(notification, self._trust, raw, dnsfunc=self._dnsfunc)
                seen.append(_seen(uid, notification, verdict.trusted, verdict.reason))
        seen.sort(key=lambda m: m.uid)
        return _Batch(last, count, seen)

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
                    if stats.fetched:
                        continue  # drain: mail may have arrived during a long pass
                    if self._mb.idle and b"IDLE" in self._caps:
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
                    delay = min(BACKOFF_MAX_S, BACKOFF_BASE_S * 2**attempt) * random.uniform(0.5, 1.0)
                    attempt += 1
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

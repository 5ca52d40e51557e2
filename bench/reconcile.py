"""How fast the mailbox poller reconciles a big mailbox, against the imapclient limit and a naive loop.

A Dovecot mailbox with 50,000 notifications plus 10% unrelated mail and a ledger of 50,000 awaiting
jobs. Measures, in ``--rounds`` alternated rounds (medians reported), each on its own cold copy of
the mailbox and the ledger:

* the poller: one pass of the real ``Watcher.run_pass`` (first access to the fresh mailbox included)
  in a child process, until every job is resolved; its peak RSS;
* the limit: imapclient's fastest bulk header fetch (UID ranges, only the needed header fields,
  imaplib's debug trace off as in the poller) with the jobs resolved by one ``executemany`` in one
  transaction, on a copy of the same ledger;

then, on the last round's limit server, the naive loop: ``RFC822`` per message, parsed whole,
committed per message (a sample, extrapolated);

then the time from a notification's APPEND to its job reaching ``ok`` while the watcher IDLEs.
Targets: poller >= 80% of the limit, >= 50x the naive loop, peak RSS < 100 MB, latency < 2 s.

Run: .venv/bin/python bench/reconcile.py [--notifications 50000] [--chunk 1000] [--rounds 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import email.utils
import json
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from imapclient import IMAPClient  # noqa: E402
from imapclient.response_parser import parse_fetch_response  # noqa: E402

from reconciler.config import Settings  # noqa: E402
from reconciler.jobs.validation import job_spec  # noqa: E402
from reconciler.ledger.store import Ledger  # noqa: E402
from reconciler.mailbox.imap import quiet_protocol_trace  # noqa: E402
from reconciler.mailbox.notification import HEADER_FIELDS  # noqa: E402
from reconciler.mailbox.watcher import Watcher  # noqa: E402
from reconciler.sandbox.imapserver import ImapServer, start_dovecot  # noqa: E402

USER, PASSWORD, RFC = "facturas", "bench-pass", "AAA010101AAA"
BODY = "Estimado cliente:\r\n" + "La solicitud de cancelación del CFDI fue procesada por el SAT. " * 25 + "\r\n"


SENT = datetime(2025, 11, 24, 1, 2, 3, tzinfo=timezone(timedelta(hours=-6)))


def notification(uuid: str, i: int, status: str = "OK") -> bytes:
    date = email.utils.format_datetime(SENT + timedelta(seconds=7 * i))  # every message its own Date, as in life
    return (
        "Return-Path: <notificaciones@solucionfactible.com>\r\n"
        f"Received: from mx.solucionfactible.com by mx.example.com; {date}\r\n"
        "From: Solucion Factible <notificaciones@solucionfactible.com>\r\nTo: facturas@example.com\r\n"
        f"Subject: Cancelacion {uuid}\r\nDate: {date}\r\n"
        f"Message-ID: <{i}.{uuid[:8]}@solucionfactible.com>\r\nMIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        f"X-SFService: Cancelar\r\nX-StatusCancelacion: {status}\r\nX-UUIDCancelacion: {uuid}\r\n\r\n{BODY}"
    ).encode()


def other(i: int) -> bytes:
    return (
        f"From: Ana <ana{i}@example.com>\r\nTo: facturas@example.com\r\nSubject: Pedido {i}\r\n"
        f"Date: Mon, 24 Nov 2025 01:02:03 -0600\r\nMessage-ID: <{i}@example.com>\r\n\r\n{BODY}"
    ).encode()


def fill(server: ImapServer, uuids: list[str]) -> None:
    """Write Maildir files directly while the server is stopped: much faster than 55,000 APPENDs."""
    server.stop()
    for i, u in enumerate(uuids):
        server.deliver(notification(u, i))
        if i % 10 == 9:
            server.deliver(other(i))
    server.start()


async def make_ledger(path: Path, uuids: list[str]) -> None:
    ledger = await Ledger.open(path)
    try:
        await ledger.add_jobs([job_spec(u, RFC) for u in uuids], datetime.now(UTC), "bench")
    finally:
        await ledger.close()
    with sqlite3.connect(path) as db:  # as the submitter leaves them: accepted, awaiting the notification
        db.execute("UPDATE jobs SET state = 'awaiting', submitted_at = created_at")
    db.close()


def settings(server: ImapServer, ledger: Path, batch_size: int = 500) -> Settings:
    return Settings(
        ledger={"path": ledger},
        mailbox={
            "host": server.host, "port": server.port, "security": "none", "username": USER,
            "password": PASSWORD, "batch_size": batch_size, "trust": {"confirm_with_status": False},
        },
    )  # fmt: skip


def cold_copy(root: Path, template: ImapServer, name: str) -> tuple[ImapServer, Path]:
    """A fresh Dovecot over a copy of the template's mail (no index yet: a first access), and its ledger."""
    subprocess.run(["cp", "-a", str(template.root), str(root / name)], check=True)
    for leftover in (root / name).rglob("dovecot.index*"):
        leftover.unlink()
    server, ledger = start_dovecot(root / name, USER, PASSWORD), cold_copy_ledger(root, name)
    os.sync()  # the copy's 55,000 files written back now, not by the kernel during the timed run
    return server, ledger


def cold_copy_ledger(root: Path, name: str) -> Path:
    ledger = root / f"{name}.sqlite3"
    shutil.copy(root / "template.sqlite3", ledger)
    return ledger


# -- the poller, in a child process so its peak RSS is its own ---------------------------------


def poller_child(port: int, ledger: str, batch_size: int) -> None:
    server = ImapServer("dovecot", Path("/nonexistent"), USER, PASSWORD, port)

    async def run() -> dict[str, float]:
        opened = await Ledger.open(ledger)
        watcher = Watcher(settings(server, Path(ledger), batch_size), opened)
        try:
            started = time.perf_counter()
            await watcher.connect()
            stats = await watcher.run_pass()
            elapsed = time.perf_counter() - started
            counts = await opened.counts()
        finally:
            await watcher.close()
            await opened.close()
        return {"seconds": elapsed, "applied": stats.applied, "fetched": stats.fetched, "ok": counts["ok"]}

    result = asyncio.run(run())
    result["rss_mb"] = peak_rss_mb()
    print(json.dumps(result))


def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM). Not ru_maxrss: Linux carries that across exec from the
    forked parent, so a child started by a 100 MB parent would report 100 MB whatever it used."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux: the best there is


def poller(server: ImapServer, ledger: Path, batch_size: int) -> dict[str, float]:
    done = subprocess.run(
        [sys.executable, __file__, "--poller-child", str(server.port), str(ledger), str(batch_size)],
        capture_output=True, text=True, check=True, timeout=1800,
    )  # fmt: skip
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# -- the limit and the naive loop ----------------------------------------------------------------


def limit(server: ImapServer, chunk: int, ledger: Path) -> tuple[float, int]:
    """Bulk header fetch in UID ranges, the UUID and status taken straight from the bytes, and the
    jobs resolved with one ``executemany`` in one transaction on a copy of the same ledger."""
    items = f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(HEADER_FIELDS).upper()})])"
    started = time.perf_counter()
    db = sqlite3.connect(ledger, isolation_level=None)
    db.execute("PRAGMA synchronous = FULL")  # as the ledger runs
    client = IMAPClient(server.host, server.port, ssl=False)
    quiet_protocol_trace(client)  # as the poller does: imaplib's debug trace would cost the limit ~0.4 s
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    uids = client.search(["UID", "1:*"])
    rows = []
    at = datetime.now(UTC).isoformat()
    for i in range(0, len(uids), chunk):
        _, data = client._imap.uid("FETCH", f"{uids[i]}:{uids[min(i + chunk, len(uids)) - 1]}", items)
        for item in parse_fetch_response(data, False, True).values():
            header = next(v for k, v in item.items() if k.startswith(b"BODY["))
            found = {}
            for line in header.split(b"\r\n"):
                name, _, value = line.partition(b":")
                found[name.lower()] = value.strip()
            if b"x-uuidcancelacion" in found:
                rows.append((found[b"x-statuscancelacion"].decode(), at, at, found[b"x-uuidcancelacion"].decode()))
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "UPDATE jobs SET state = CASE ? WHEN 'OK' THEN 'ok' ELSE 'error' END, resolved_at = ?, updated_at = ?"
        " WHERE uuid = ?",
        rows,
    )
    db.execute("COMMIT")
    elapsed = time.perf_counter() - started
    resolved = db.execute("SELECT count(*) FROM jobs WHERE state IN ('ok', 'error')").fetchone()[0]
    client.logout()
    db.close()
    return elapsed, resolved


def naive(server: ImapServer, ledger: Path, sample: int) -> tuple[float, int]:
    """What a first draft does: every whole message with RFC822, parsed, one commit per message."""
    db = sqlite3.connect(ledger)
    client = IMAPClient(server.host, server.port, ssl=False)
    quiet_protocol_trace(client)  # the loop itself is naive, not its client
    client.login(USER, PASSWORD)
    client.select_folder("INBOX")
    uids = client.search(["UID", "1:*"])[:sample]
    started = time.perf_counter()
    done = 0
    for uid in uids:
        raw = client.fetch([uid], ["RFC822"])[uid][b"RFC822"]
        message = email.message_from_bytes(raw, policy=email.policy.default)
        if message["X-SFService"] is None:
            continue
        db.execute("UPDATE jobs SET state = 'ok' WHERE uuid = ?", (str(message["X-UUIDCancelacion"]).strip(),))
        db.commit()
        done += 1
    elapsed = time.perf_counter() - started
    client.logout()
    db.close()
    return elapsed, done


# -- latency while IDLE ----------------------------------------------------------------------------


async def latency(root: Path, samples: int) -> list[float]:
    server = start_dovecot(root / "idle", USER, PASSWORD)
    uuids = [str(uuidlib.uuid4()).upper() for _ in range(samples)]
    path = root / "idle.sqlite3"
    await make_ledger(path, uuids)
    ledger = await Ledger.open(path)
    watcher = Watcher(settings(server, path), ledger)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.watch(stop))
    feeder = IMAPClient(server.host, server.port, ssl=False)
    feeder.login(USER, PASSWORD)
    out: list[float] = []
    try:
        deadline = time.monotonic() + 60
        while "mailbox_pass" not in await ledger.facts():  # the first pass is done: the watcher idles
            if time.monotonic() > deadline:
                raise RuntimeError("the watcher did not finish its first pass within 60 s")
            await asyncio.sleep(0.01)
        for i, u in enumerate(uuids):
            await asyncio.sleep(0.2)  # let the watcher settle back into IDLE
            sent = time.perf_counter()
            await asyncio.to_thread(feeder.append, "INBOX", notification(u, i))
            while (await ledger.get_job(u)).state != "ok":
                if time.perf_counter() - sent > 30:
                    raise RuntimeError(f"job {u} not ok 30 s after its notification")
                await asyncio.sleep(0.005)
            out.append(time.perf_counter() - sent)
    finally:
        feeder.logout()
        stop.set()
        await task
        await watcher.close()
        await ledger.close()
        server.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--notifications", type=int, default=50_000)
    parser.add_argument("--naive", type=int, default=2_000, help="messages in the naive loop's sample")
    parser.add_argument(
        "--chunk", type=int, default=1000, help="UID range size for the limit, and the poller's mailbox.batch_size"
    )
    parser.add_argument("--latency-samples", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3, help="poller and limit runs, alternated; medians reported")
    parser.add_argument("--keep", type=Path, help="work in this directory and keep it")
    parser.add_argument("--poller-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.poller_child:
        poller_child(int(args.poller_child[0]), args.poller_child[1], int(args.poller_child[2]))
        return

    root = args.keep or Path(tempfile.mkdtemp(prefix="reconcile-bench-"))
    root.mkdir(parents=True, exist_ok=True)
    n = args.notifications
    uuids = [str(uuidlib.uuid4()).upper() for _ in range(n)]
    print(f"mailbox: {n:,} notifications + {n // 10:,} other messages; ledger: {n:,} awaiting jobs")
    t = time.perf_counter()
    template = start_dovecot(root / "template", USER, PASSWORD)
    fill(template, uuids)
    template.stop()
    asyncio.run(make_ledger(root / "template.sqlite3", uuids))
    print(f"setup: {time.perf_counter() - t:.1f}s; {args.rounds} rounds of poller and limit, each on a cold copy")

    polls: list[dict[str, float]] = []
    limits: list[float] = []
    for r in range(args.rounds):  # alternated, so a noisy neighbour hurts both alike
        server, ledger = cold_copy(root, template, f"poller{r}")
        try:
            result = poller(server, ledger, args.chunk)
        finally:
            server.stop()
        assert result["ok"] == n, f"only {result['ok']} of {n} jobs resolved"
        polls.append(result)
        server, ledger = cold_copy(root, template, f"limit{r}")
        try:
            limit_s, limit_n = limit(server, args.chunk, ledger)
            assert limit_n == n, f"the limit resolved {limit_n} of {n}"
            limits.append(limit_s)
            if r == args.rounds - 1:
                naive_s, naive_n = naive(server, cold_copy_ledger(root, "naive"), args.naive)
        finally:
            server.stop()
        print(f"  round {r + 1}: poller {result['seconds']:.2f}s ({result['rss_mb']:.0f} MB), limit {limit_s:.2f}s")
    poll_s = statistics.median(p["seconds"] for p in polls)
    limit_s = statistics.median(limits)
    rss = max(p["rss_mb"] for p in polls)
    poller_rate, limit_rate, naive_rate = n / poll_s, n / limit_s, naive_n / naive_s
    lat = asyncio.run(latency(root, args.latency_samples))

    print(
        f"poller (cold, real Watcher.run_pass, batch_size {args.chunk}): {n:,} in {poll_s:.2f}s (median)"
        f" = {poller_rate:,.0f} notifications/s"
    )
    print(
        f"limit  (imapclient bulk, {args.chunk}-UID ranges, one executemany): {n:,} in {limit_s:.2f}s (median)"
        f" = {limit_rate:,.0f} notifications/s"
    )
    print(f"naive  (RFC822 per message, commit per message): {naive_n:,} in {naive_s:.2f}s = {naive_rate:,.0f} notifications/s"
          f" (extrapolated to {n:,}: {n / naive_rate:,.0f}s)")  # fmt: skip
    ratio_limit, ratio_naive = poller_rate / limit_rate, poller_rate / naive_rate
    print(f"poller / limit = {ratio_limit:.0%} (target >= 80%)   {'ok' if ratio_limit >= 0.8 else 'MISSED'}")
    print(f"poller / naive = {ratio_naive:,.0f}x (target >= 50x)   {'ok' if ratio_naive >= 50 else 'MISSED'}")
    print(f"poller peak RSS = {rss:.0f} MB (target < 100 MB)   {'ok' if rss < 100 else 'MISSED'}")
    median = statistics.median(lat)
    print(
        f"APPEND -> ok while IDLE: median {median * 1000:.0f} ms, max {max(lat) * 1000:.0f} ms over {len(lat)}"
        f" (target < 2 s)   {'ok' if median < 2 else 'MISSED'}"
    )
    if not args.keep:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()

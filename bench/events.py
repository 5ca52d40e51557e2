"""Outbox delivery: events per second from a ledger's outbox to a local webhook receiver.

A ledger with N jobs (each queued job is one ``job.queued`` outbox event) is delivered by the
daemon's own dispatcher, in this process, to ``bench/webhook_receiver.py`` in another process
(HTTP/1.1 keep-alive, 204, signatures verified with ``standardwebhooks`` when ``--verify``).
It prints the delivery rate and the dispatcher's CPU per event.

Run: .venv/bin/python bench/events.py [--events 20000] [--concurrency 16] [--verify]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import subprocess
import sys
import tempfile
import time
import uuid as uuidlib
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.config import Settings  # noqa: E402
from reconciler.events.dispatcher import Dispatcher, endpoints  # noqa: E402
from reconciler.jobs.validation import JobSpec  # noqa: E402
from reconciler.ledger.store import Ledger  # noqa: E402

SECRET = "whsec_" + base64.b64encode(b"bench-webhook-secret-key").decode()


def received(count_file: Path) -> tuple[int, int, int]:
    try:
        ok, bad, distinct = (int(x) for x in count_file.read_text().split())
    except (OSError, ValueError):
        return 0, 0, 0
    return ok, bad, distinct


async def run(args: argparse.Namespace, root: Path, url: str, count_file: Path) -> None:
    ledger = await Ledger.open(root / "ledger.sqlite3")
    now = datetime.now(UTC)
    specs = [
        JobSpec(str(uuidlib.UUID(int=i + 1, version=4)).upper(), "AAA010101AAA", "02", None) for i in range(args.events)
    ]
    for i in range(0, len(specs), 10_000):
        await ledger.add_jobs(specs[i : i + 10_000], now, "bench")
    settings = Settings(
        webhooks=[{"url": url, "secret": SECRET, "concurrency": args.concurrency, "timeout_s": 30}],  # type: ignore[list-item]
        events={"poll_interval_s": 0.05},  # type: ignore[arg-type]
    )
    dispatcher = Dispatcher(settings, ledger, endpoints(settings))
    stop = asyncio.Event()
    cpu0, t0 = time.process_time(), time.perf_counter()
    task = asyncio.create_task(dispatcher.run(stop))
    while received(count_file)[2] < args.events:
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
    elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    stop.set()
    await task
    await dispatcher.aclose()
    rows = await ledger.fetch("SELECT count(*) FROM deliveries WHERE state = 'delivered'")
    errors = await ledger.fetch(
        "SELECT last_error, count(*), sum(attempts) FROM deliveries GROUP BY last_error ORDER BY 2 DESC LIMIT 5"
    )
    for error, n, attempts in errors:
        print(f"  deliveries last {error or 'ok'}: {n} (attempts {attempts})")
    await ledger.close()
    ok, bad, distinct = received(count_file)
    print(f"events: {args.events}, concurrency {args.concurrency}, verify {'on' if args.verify else 'off'}")
    print(f"delivered: {distinct} distinct ids ({ok} requests verified ok, {bad} failed verification)")
    print(f"time: {elapsed:.2f} s -> {args.events / elapsed:,.0f} events/s")
    print(f"dispatcher CPU: {cpu:.2f} s -> {cpu / args.events * 1e3:.3f} ms per event")
    print(f"ledger: {rows[0][0]} deliveries recorded delivered (the last batch may still be in flight)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--verify", action="store_true", help="the receiver verifies every signature")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="reconciler-bench-events-") as tmp:
        root = Path(tmp)
        count_file = root / "count"
        cmd = [sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), str(count_file)]
        if args.verify:
            cmd += ["--verify", SECRET]
        with subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, env=os.environ.copy()) as receiver:
            assert receiver.stdout is not None
            url = receiver.stdout.readline().strip()
            try:
                asyncio.run(run(args, root, url, count_file))
            finally:
                receiver.terminate()


if __name__ == "__main__":
    main()

"""The daemon's memory while the provider answers huge replies (issue 11: 300 MB took it to 928 MB RSS).

Starts the simulator in this process, an IMAP server and the real daemon (``reconciler run``,
a subprocess), and makes the simulator answer ``--jobs`` UUIDs with a ``--reply-mb`` MB reply
each (streamed, chunked: the client learns the size only by reading).  Samples the daemon's
RSS until every job has been retried ``--rounds`` times, then prints the peak, the RSS after
start-up, and how long the rounds took.  ``provider.max_reply_bytes`` stops each read at 2 MiB.

Run: .venv/bin/python bench/reply_size.py [--jobs 16] [--reply-mb 300] [--rounds 3]
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
import time
import uuid as uuidlib
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.harness import start_stack  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=16)
    parser.add_argument("--reply-mb", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--timeout-s", type=float, default=300)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reconciler-bench-reply-"))
    stack = start_stack(root / "stack", kind="dovecot")
    try:
        uuids = [str(uuidlib.uuid4()).upper()[:-1] + "1" for _ in range(args.jobs)]
        for u in uuids:
            stack.sandbox.hostile.set(u, size=args.reply_mb * 2**20, chunked=True)
        stack.queue(uuids)
        daemon = stack.start_daemon()
        proc = psutil.Process(daemon.pid)
        started = time.perf_counter()
        peak = last = 0.0
        while True:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}; see {stack.logs[-1]}")
            rss = proc.memory_info().rss / 2**20
            peak, last = max(peak, rss), rss
            rows = stack.query(
                "SELECT count(*) FROM events WHERE kind = 'reply' AND json_extract(detail, '$.message') LIKE "
                "'reply larger than%'"
            )
            cut = int(rows[0][0]) if rows else 0
            if cut >= args.jobs * args.rounds:
                break
            if time.perf_counter() - started > args.timeout_s:
                raise SystemExit(f"only {cut} capped replies after {args.timeout_s:.0f}s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        code = stack.stop_daemon(signal.SIGTERM)
        served = sum(1 for e in stack.sandbox.record.entries() if e.fault == "hostile")
        print(
            f"{args.jobs} jobs x {args.rounds} rounds of {args.reply_mb} MB replies: {cut} capped replies "
            f"({served} served) in {elapsed:.1f}s; daemon RSS peak {peak:.0f} MB, at the end {last:.0f} MB; "
            f"exit {code}; states {sorted(set(stack.states().values()))}"
        )
    finally:
        stack.close()


if __name__ == "__main__":
    main()

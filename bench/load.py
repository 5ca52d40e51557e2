"""Load: N jobs (default 100,000) through submit, notification and confirmation, with the daemon's RSS sampled.

The whole installation on loopback, as in production but offline:

* the simulator in its own process (``python -m reconciler.sandbox``) with ``--latency-ms`` on every
  SOAP call, delivering each notification by IMAP APPEND to
* a real Dovecot, watched (IDLE) by
* the daemon, ``python -m reconciler run`` as a subprocess, ``confirm_with_status = true``: every
  job is one ``cancelarAsincrono``, one email and one ``getStatusCancelacionAsincrona``.

The jobs are queued with ``reconciler import`` before the daemon starts; the clock runs from the
daemon's start to the last job resolved. psutil samples the daemon's RSS every ``--sample-s``
together with the number of jobs resolved, so growth with ledger size shows as a slope.

Run: .venv/bin/python bench/load.py [--jobs 100000] [--latency-ms 50] [--concurrency 16] [--json out.json]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid as uuidlib
from collections import Counter
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.sandbox import intended_outcome  # noqa: E402
from reconciler.sandbox.config import write_config  # noqa: E402
from reconciler.sandbox.imapserver import ImapServer, dovecot_available, start_dovecot, start_pymap  # noqa: E402

RFC = "AAA010101AAA"
MAIL_USER, MAIL_PASSWORD = "facturas", "bench-mailbox-pass"
LIMIT_MB = 150.0
FLAT_MB = 10.0  # RSS growth from the first to the last quarter of the run that still counts as flat
SCHEDULE = {
    "retry_base_s": 1,
    "retry_max_s": 30,
    "status_check_after_s": 600,
    "submit_interval_s": 1,
    "chase_interval_s": 30,
}


def cpu_by_process(
    daemon: subprocess.Popen[bytes],
    sim: subprocess.Popen[str],
    imap: ImapServer,
    receiver: subprocess.Popen[str] | None,
) -> dict[str, float]:
    """User+system CPU seconds of each part so far, children included (the daemon's outbox worker, Dovecot's
    processes): where a cost lands on the shared cores."""

    def total(pid: int | None, *, children_only: bool = False) -> float:
        if pid is None:
            return 0.0
        try:
            proc = psutil.Process(pid)
            procs = proc.children(recursive=True) if children_only else [proc, *proc.children(recursive=True)]
            return sum(sum(p.cpu_times()[:2]) for p in procs)
        except psutil.Error:
            return 0.0

    worker = total(daemon.pid, children_only=True)
    out = {"daemon": total(daemon.pid) - worker}
    if worker:
        out["outbox worker"] = worker
    out["simulator"] = total(sim.pid)
    out["imap server"] = total(imap.pid)
    if receiver is not None:
        out["receiver"] = total(receiver.pid)
    return out


def uuids(n: int, seed: int = 1) -> list[str]:
    import random

    rng = random.Random(seed)
    return [str(uuidlib.UUID(int=rng.getrandbits(128), version=4)).upper() for _ in range(n)]


def start_simulator(args: argparse.Namespace, imap_port: int) -> tuple[subprocess.Popen[str], str]:
    cmd = [
        sys.executable, "-m", "reconciler.sandbox", "--port", "0",
        "--latency-ms", str(args.latency_ms), "--notify-delay-s", str(args.notify_delay_s),
        "--imap-host", "127.0.0.1", "--imap-port", str(imap_port), "--imap-user", MAIL_USER,
    ]  # fmt: skip
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=ROOT,
        env={**os.environ, "SANDBOX_IMAP_PASSWORD": MAIL_PASSWORD},
    )
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("http"):
        proc.kill()
        raise SystemExit(f"the simulator did not start: {line!r}")
    return proc, line


def reconciler(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "reconciler", "--config", str(config), *args],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def progress(ledger: Path) -> Counter[str]:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True, timeout=30)
    try:
        return Counter(dict(db.execute("SELECT state, count(*) FROM jobs GROUP BY state").fetchall()))
    finally:
        db.close()


def _undelivered(ledger: Path) -> int:
    db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
    try:
        row = db.execute(
            "SELECT (SELECT count(*) FROM deliveries WHERE state != 'delivered')"
            " + (SELECT count(*) FROM outbox WHERE seq > (SELECT coalesce(min(cursor), 0) FROM endpoints))"
        ).fetchone()
    finally:
        db.close()
    return int(row[0])


def slope_mb_per_10k(samples: list[tuple[float, int, float]]) -> float:
    """Least-squares slope of RSS (MB) against jobs resolved, per 10,000 jobs."""
    xs = [s[1] for s in samples]
    ys = [s[2] for s in samples]
    if len(set(xs)) < 2:
        return 0.0
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    num = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    den = sum((x - mx) ** 2 for x in xs)
    return num / den * 10_000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--latency-ms", type=float, default=50.0)
    parser.add_argument("--concurrency", type=int, default=16, help="provider.max_concurrency")
    parser.add_argument("--notify-delay-s", type=float, default=1.0)
    parser.add_argument(
        "--processed-folder",
        default="Procesadas",
        help="mailbox.processed_folder ('' keeps processed mail in INBOX: Dovecot's Maildir then slows with its size)",
    )
    parser.add_argument("--sample-s", type=float, default=1.0)
    parser.add_argument("--timeout-s", type=float, default=3 * 3600)
    parser.add_argument("--json", type=Path, help="Also write the figures here.")
    parser.add_argument("--dir", type=Path, help="Work here instead of a temporary directory (kept).")
    parser.add_argument(
        "--webhook",
        action="store_true",
        help="Also deliver every outbox event to bench/webhook_receiver.py (signatures verified) and count them.",
    )
    args = parser.parse_args()

    tmp = None if args.dir else tempfile.TemporaryDirectory(prefix="reconciler-load-")
    root = args.dir or Path(tmp.name)  # type: ignore[union-attr]
    root.mkdir(parents=True, exist_ok=True)
    start = start_dovecot if dovecot_available() else start_pymap
    imap = start(root / "imap", MAIL_USER, MAIL_PASSWORD)
    sim, wsdl = start_simulator(args, imap.port)
    daemon: subprocess.Popen[bytes] | None = None
    receiver: subprocess.Popen[str] | None = None
    extra = ""
    if args.webhook:
        secret = "whsec_" + base64.b64encode(b"bench-load-webhook-secret").decode()
        receiver = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "webhook_receiver.py"), str(root / "received"), "--verify", secret],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert receiver.stdout is not None
        extra = f'[[webhooks]]\nurl = "{receiver.stdout.readline().strip()}"\nsecret = "{secret}"\nconcurrency = 8\n'
    try:
        config = write_config(
            root,
            wsdl=wsdl,
            imap=imap,
            provider={"timeout_s": 30, "max_concurrency": args.concurrency},
            mailbox={"processed_folder": args.processed_folder or None},
            schedule=SCHEDULE,
            extra=extra,
        )
        jobs = uuids(args.jobs)
        csv = root / "jobs.csv"
        csv.write_text("uuid,rfc\n" + "".join(f"{u},{RFC}\n" for u in jobs))
        t0 = time.perf_counter()
        done = reconciler(config, "import", str(csv))
        if done.returncode != 0:
            raise SystemExit(f"import failed: {done.stderr.strip()}")
        print(f"queued {args.jobs} jobs in {time.perf_counter() - t0:.1f}s ({imap.kind}, simulator {wsdl})", flush=True)
        ledger = root / "state" / "ledger.sqlite3"
        log = (root / "daemon.log").open("wb")
        started = time.perf_counter()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "reconciler", "--config", str(config), "run"],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
        )
        log.close()
        proc = psutil.Process(daemon.pid)
        samples: list[tuple[float, int, float]] = []  # (seconds, resolved, RSS MB)
        resolved = 0
        ready = False
        last_print = 0.0
        while True:
            if daemon.poll() is not None:
                raise SystemExit(f"the daemon exited with {daemon.returncode}; see {root / 'daemon.log'}")
            now = time.perf_counter() - started
            rss = proc.memory_info().rss / 2**20
            states = progress(ledger)
            resolved = states["ok"] + states["error"] + states["rejected"]
            ready = ready or b"reconciler started" in (root / "daemon.log").read_bytes()
            if ready:  # RSS from the end of start-up (imports, WSDL, login) on
                samples.append((now, resolved, rss))
            if now - last_print >= 30:
                last_print = now
                print(
                    f"  {now:7.0f}s  resolved {resolved:>7}  awaiting {states['awaiting']:>7}  "
                    f"queued {states['queued']:>7}  RSS {rss:6.1f} MB",
                    flush=True,
                )
            if resolved == args.jobs:
                break
            if now > args.timeout_s:
                raise SystemExit(f"not done after {args.timeout_s:.0f}s: {dict(states)}")
            time.sleep(args.sample_s)  # the sampling period
        elapsed = time.perf_counter() - started
        cpu_at_end = cpu_by_process(daemon, sim, imap, receiver)
        worker_rss = [c.memory_info().rss / 2**20 for c in proc.children()]
        if receiver is not None:  # the last events are still on their way: give them a moment
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and _undelivered(ledger):
                time.sleep(0.2)
        daemon.send_signal(signal.SIGTERM)
        code = daemon.wait(120)
        daemon = None

        # Correctness of the run: intended outcomes, each UUID accepted once.
        db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
        try:
            states_by_uuid = dict(db.execute("SELECT uuid, state FROM jobs").fetchall())
            integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            db.close()
        mismatches = sum(1 for u, s in states_by_uuid.items() if s != intended_outcome(u))
        with urllib.request.urlopen(wsdl.split("/ws/")[0] + "/_sandbox/record", timeout=120) as r:  # noqa: S310
            record = json.load(r)
        accepted = Counter(record["accepted"].values())
        calls = Counter(e["operation"] for e in record["requests"])

        rss_all = [s[2] for s in samples]
        quarter = max(1, len(samples) // 4)
        first_q = statistics.median(rss_all[:quarter])
        last_q = statistics.median(rss_all[-quarter:])
        figures: dict[str, Any] = {
            "jobs": args.jobs,
            "latency_ms": args.latency_ms,
            "max_concurrency": args.concurrency,
            "elapsed_s": round(elapsed, 1),
            "jobs_per_s": round(args.jobs / elapsed, 1),
            "rss_start_mb": round(rss_all[0], 1),
            "rss_median_mb": round(statistics.median(rss_all), 1),
            "rss_peak_mb": round(max(rss_all), 1),
            "rss_first_quarter_mb": round(first_q, 1),
            "rss_last_quarter_mb": round(last_q, 1),
            "rss_slope_mb_per_10k_jobs": round(slope_mb_per_10k(samples), 2),
            "flat": last_q - first_q < FLAT_MB,
            "under_150mb": max(rss_all) < LIMIT_MB,
            "mismatches": mismatches,
            "accepted_once": accepted
            == Counter({1: args.jobs - sum(1 for u in jobs if intended_outcome(u) == "rejected")}),
            "soap_calls": dict(calls),
            "daemon_exit": code,
            "integrity": integrity,
            "samples": len(samples),
        }
        print(f"{args.jobs} jobs end to end in {elapsed:.0f}s: {figures['jobs_per_s']} jobs/s (latency {args.latency_ms:g} ms, max_concurrency {args.concurrency})")  # fmt: skip
        print(f"SOAP calls: {dict(calls)}; mismatches {mismatches}; accepted once each: {figures['accepted_once']}; integrity {integrity}; daemon exit {code}")  # fmt: skip
        cpu_line = ", ".join(f"{k} {v:.1f}s" for k, v in cpu_at_end.items())
        print(f"CPU seconds until the last job resolved: {cpu_line} (wall {elapsed:.0f}s on {os.cpu_count()} cores)")
        figures["cpu_s"] = {k: round(v, 1) for k, v in cpu_at_end.items()}
        if worker_rss:
            figures["worker_rss_mb"] = round(worker_rss[0], 1)
            print(f"outbox worker RSS at the end: {worker_rss[0]:.1f} MB")
        print(f"daemon RSS: start {figures['rss_start_mb']} MB, median {figures['rss_median_mb']} MB, peak {figures['rss_peak_mb']} MB")  # fmt: skip
        print(f"RSS first quarter {first_q:.1f} MB, last quarter {last_q:.1f} MB, slope {figures['rss_slope_mb_per_10k_jobs']} MB per 10k jobs: {'flat' if figures['flat'] else 'GROWING'}, {'under' if figures['under_150mb'] else 'OVER'} {LIMIT_MB:.0f} MB")  # fmt: skip
        if receiver is not None:
            db = sqlite3.connect(f"file:{ledger}?mode=ro", uri=True)
            outbox = db.execute("SELECT count(*) FROM outbox").fetchone()[0]
            db.close()
            ok_n, bad_n, distinct = (int(x) for x in (root / "received").read_text().split())
            figures["webhook"] = {"outbox": outbox, "distinct_received": distinct, "verified": ok_n, "refused": bad_n}
            print(f"webhook: {outbox} outbox events, {distinct} distinct ids received ({ok_n} requests verified, {bad_n} refused)")  # fmt: skip
        if args.json:
            args.json.write_text(json.dumps(figures, indent=2) + "\n")
        ok = figures["flat"] and figures["under_150mb"] and mismatches == 0 and figures["accepted_once"] and code == 0
        print("PASS" if ok else "FAIL")
        sys.exit(0 if ok else 1)
    finally:
        if daemon is not None and daemon.poll() is None:
            daemon.kill()
            daemon.wait(30)
        sim.send_signal(signal.SIGTERM)
        try:
            sim.wait(30)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(30)
        if sim.stdout is not None:
            sim.stdout.close()
        imap.stop()
        if receiver is not None:
            receiver.terminate()
            receiver.wait(10)
            if receiver.stdout is not None:
                receiver.stdout.close()
        if tmp is not None:
            tmp.cleanup()


if __name__ == "__main__":
    main()

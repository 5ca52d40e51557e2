"""How fast `reconciler status <uuid> --json` answers on a ledger of 1,000,000 jobs (target < 0.3 s),
and how fast `reconciler import` queues 100,000 CSV rows.

Run: .venv/bin/python bench/status.py [--jobs 1000000] [--keep DIR]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RFC = "AAA010101AAA"


def build(path: Path, jobs: int) -> str:
    """A migrated ledger filled by SQL directly (the CLI would take minutes for 1M), events included."""
    subprocess.run(
        [sys.executable, "-m", "reconciler", "submit", str(uuid.uuid4()), "--rfc", RFC],
        env={**os.environ, "RECONCILER_LEDGER__PATH": str(path)},
        check=True,
        capture_output=True,
    )
    db = sqlite3.connect(path)
    at = "2026-01-01T00:00:00.000Z"
    states = ["ok", "ok", "ok", "error", "awaiting", "queued", "rejected"]
    probe = ""
    with db:
        for start in range(0, jobs, 50_000):
            rows = []
            for i in range(start, min(jobs, start + 50_000)):
                u = str(uuid.uuid4()).upper()
                rows.append((u, RFC, "02", states[i % len(states)], at, at))
            probe = rows[len(rows) // 2][0]
            db.executemany(
                "INSERT INTO jobs (uuid, rfc_emisor, motivo, state, created_at, updated_at) VALUES (?,?,?,?,?,?)", rows
            )
            db.executemany(
                "INSERT INTO events (uuid, at, kind, source, detail) VALUES (?, ?, 'created', 'bench', '{}')",
                [(r[0], at) for r in rows],
            )
    db.close()
    return probe


def time_cmd(args: list[str], env: dict[str, str], runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run(args, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t0)
    return times


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--jobs", type=int, default=1_000_000)
    parser.add_argument("--import-rows", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    exe = str(Path(sys.executable).with_name("reconciler"))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "ledger.db"
        t0 = time.perf_counter()
        probe = build(path, args.jobs)
        print(
            f"built a ledger of {args.jobs:,} jobs in {time.perf_counter() - t0:.1f}s ({path.stat().st_size / 1e6:.0f} MB)"
        )
        env = {**os.environ, "RECONCILER_LEDGER__PATH": str(path)}
        time_cmd([exe, "status", probe, "--json"], env, 2)  # warm the page cache
        times = time_cmd([exe, "status", probe, "--json"], env, args.runs)
        baseline = time_cmd([sys.executable, "-c", "pass"], env, args.runs)
        med = statistics.median(times)
        print(
            f"status <uuid> --json on {args.jobs:,} jobs: median {med * 1000:.0f} ms, "
            f"min {min(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms over {args.runs} runs "
            f"(bare interpreter start {statistics.median(baseline) * 1000:.0f} ms); target < 300 ms: "
            f"{'MET' if med < 0.3 else 'MISSED'}"
        )
        csv_path = Path(tmp) / "jobs.csv"
        with csv_path.open("w") as f:
            f.write("uuid,rfc,motivo,folio_sustitucion\n")
            for _ in range(args.import_rows):
                f.write(f"{uuid.uuid4()},{RFC},02,\n")
        env2 = {**os.environ, "RECONCILER_LEDGER__PATH": str(Path(tmp) / "import.db")}
        [elapsed] = time_cmd([exe, "import", str(csv_path)], env2, 1)
        print(
            f"import of {args.import_rows:,} CSV rows into a new ledger: {elapsed:.2f}s "
            f"({args.import_rows / elapsed:,.0f} rows/s)"
        )


if __name__ == "__main__":
    main()

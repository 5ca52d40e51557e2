"""The SAT's side: 10,000 CFDI XML imports, and SAT calls per job over a full simulated lifecycle.

1. ``--files`` real-shaped CFDI 4.0 files (half with an Addenda) in a directory are read and
   validated (:func:`reconciler.cli.importing.gather`), then imported by the real CLI
   (``reconciler import DIR`` as a subprocess, on a new ledger): wall-clock seconds for each.
2. A mix of jobs, ``--per-kind`` of each of the SAT simulator's kinds, goes through the real
   daemon passes (``run --once`` order: SAT follower, submitter, confirmer, chaser) against the
   simulator over real HTTP, with the **default** ``[sat]`` schedule, one clock moved in
   ``--step-s`` steps until every follow-up has ended: the SAT calls each job cost, per kind,
   and how long after the receiver's rejection the ledger knew it.

Run: .venv/bin/python bench/sat.py [--files 10000] [--per-kind 10] [--receiver-h 5] [--step-s 300]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.cli.importing import gather  # noqa: E402
from reconciler.config import ScheduleSettings, Settings  # noqa: E402
from reconciler.daemon.loops import Daemon  # noqa: E402
from reconciler.daemon.sat_loop import SatFollower  # noqa: E402
from reconciler.jobs.validation import job_spec  # noqa: E402
from reconciler.ledger.store import Ledger  # noqa: E402
from reconciler.provider.soap import ProviderClient  # noqa: E402
from reconciler.sandbox import Sandbox, SandboxConfig  # noqa: E402
from reconciler.sandbox.cfdis import render, sello_for  # noqa: E402
from reconciler.sat.client import SatClient  # noqa: E402

H = 3600.0
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
KINDS = {"sin": "3", "con": "8", "rechazo": "A", "vencido": "B", "no cancelable": "C", "lag": "D"}


def bench_import(n: int, directory: Path) -> None:
    rng = random.Random(14)
    files = directory / "cfdi"
    files.mkdir()
    for i in range(n):
        u = f"{rng.getrandbits(128):032X}"
        u = f"{u[:8]}-{u[8:12]}-4{u[13:16]}-A{u[17:20]}-{u[20:]}"
        (files / f"{i:05d}.xml").write_bytes(render(u, total=f"{rng.randint(1, 10**6) / 100:.2f}", addenda=i % 2 == 0))
    size = sum(f.stat().st_size for f in files.iterdir())
    started = time.perf_counter()
    specs = gather([str(files)], None, None)
    parsed = time.perf_counter() - started
    config = directory / "c.toml"
    config.write_text(f'[ledger]\npath = "{directory / "ledger.sqlite3"}"\n')
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "reconciler", "--config", str(config), "import", str(files)],
        capture_output=True,
        text=True,
        check=False,
    )
    whole = time.perf_counter() - started
    assert done.returncode == 0, done.stderr
    print(
        f"import: {n} CFDI files ({size / 2**20:.1f} MiB): read+validated in {parsed:.2f}s "
        f"({n / parsed:,.0f}/s); `reconciler import DIR` end to end {whole:.2f}s ({done.stdout.strip()})"
    )
    assert len(specs) == n


class Clock:
    def __init__(self) -> None:
        self.s = 0.0

    def mono(self) -> float:
        return self.s

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.s)


async def bench_lifecycle(per_kind: int, receiver_h: float, step_s: float, directory: Path) -> None:
    clock = Clock()
    config = SandboxConfig(
        clock=clock.mono,
        notify_delay_s=60,
        sat_receiver_s=receiver_h * H,
        sat_lag_s=1800,
        maildir=directory / "Maildir",
    )
    rng = random.Random(3)
    jobs: dict[str, str] = {}
    for kind, digit in KINDS.items():
        for _ in range(per_kind):
            u = f"{rng.getrandbits(128):032X}"
            u = f"{u[:8]}-{u[8:12]}-4{u[13:16]}-A{u[17:20]}-{u[20:30]}{digit}0"
            jobs[u] = kind
    for _ in range(per_kind):  # the provider's ERROR: the receiver denied (the SAT says Solicitud rechazada)
        u = f"{rng.getrandbits(128):032X}"
        jobs[f"{u[:8]}-{u[8:12]}-4{u[13:16]}-A{u[17:20]}-{u[20:30]}1E"] = "provider error"
    with Sandbox(config) as sb:
        settings = Settings(
            ledger={"path": directory / "life.sqlite3"},
            provider={
                "wsdl": sb.wsdl_url,
                "usuario": sb.config.credentials.usuario,
                "password": sb.config.credentials.password,
                "notify_email": "n@example.com",
                "timeout_s": 5,
            },
            schedule=ScheduleSettings(status_check_after_s=1800, stale_after_s=30 * 86400),
            sat={"enabled": True, "url": sb.sat_url},  # the default schedule and rate limit
        )
        ledger = await Ledger.open(settings.ledger.path)
        provider = await ProviderClient.create(settings)
        client = SatClient(sb.sat_url, max_rps=1000)  # the simulated hours must not wait on the real limit
        daemon = Daemon(settings, ledger, provider, None, clock=clock.now, rng=random.Random(1))
        SatFollower(settings, ledger, client, clock=clock.now, rng=random.Random(2)).attach(daemon)
        specs = [job_spec(u, "EKU9003173C9", None, None, "XAXX010101000", "1160.00", sello_for(u)) for u in jobs]
        await ledger.add_jobs(specs, clock.now(), "bench")
        started = time.perf_counter()
        while True:
            await daemon.run_once()
            rows = await ledger._all(
                "SELECT count(*) FROM jobs WHERE sat_due_at IS NOT NULL OR state IN ('queued', 'submitting')"
            )
            if rows[0][0] == 0 or clock.s > 35 * 24 * H:
                break
            clock.s += step_s
        elapsed = time.perf_counter() - started
        calls: dict[str, list[int]] = defaultdict(list)
        seen_after: list[float] = []
        for u, kind in jobs.items():
            calls[kind].append(sb.sat.calls_for(u))
            if kind in ("rechazo", "provider error"):
                events = await ledger.events(u)
                rejected = [
                    e
                    for e in events
                    if e.kind == "sat" and e.detail.get("estatus_cancelacion") == "Solicitud rechazada"
                ]
                landed = sb.service.landed(u)
                if rejected and landed is not None:
                    when = (datetime.fromisoformat(rejected[0].at.replace("Z", "+00:00")) - T0).total_seconds()
                    happened = landed[0] + (receiver_h * H if kind == "rechazo" else 0)
                    seen_after.append((when - happened) / 60)
        await client.aclose()
        await provider.aclose()
        await ledger.close()
    print(
        f"lifecycle: {len(jobs)} jobs, default [sat] schedule, receivers answer after {receiver_h:g} h, "
        f"{clock.s / H:.0f} simulated hours in {elapsed:.1f}s; SAT calls per job (preflight included):"
    )
    for kind, values in calls.items():
        print(f"  {kind:<15} min {min(values):>3}  mean {statistics.mean(values):6.1f}  max {max(values):>3}")
    if seen_after:
        print(
            f"  a receiver's rejection was in the ledger {min(seen_after):.0f}-{max(seen_after):.0f} minutes after it "
            f"happened (step {step_s / 60:.0f} min)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=10_000)
    parser.add_argument("--per-kind", type=int, default=10)
    parser.add_argument("--receiver-h", type=float, default=5.0)
    parser.add_argument("--step-s", type=float, default=300.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sat-") as tmp:
        bench_import(args.files, Path(tmp))
        asyncio.run(bench_lifecycle(args.per_kind, args.receiver_h, args.step_s, Path(tmp)))


if __name__ == "__main__":
    main()

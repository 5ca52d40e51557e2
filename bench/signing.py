"""What local signing costs: signatures per second, and the CPU it adds to each submitted job.

1. Signing alone: build, canonicalise and RSA-SHA1-sign one ``Cancelacion`` per job with a
   2048-bit CSD (the SAT's size), in this process; prints signatures/s and CPU ms per signature.
2. Whole submissions against the simulator running as a separate process (so its CPU is not
   counted): the same jobs through ``ProviderClient.cancel`` with ``signing = "provider"``
   (``cancelarAsincrono``) and with ``signing = "local"`` (``enviarSolicitudCancelacionAsincrono``);
   the difference in this process's CPU time per job is what local signing adds.

Run: .venv/bin/python bench/signing.py [--jobs 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from reconciler.config import Settings  # noqa: E402
from reconciler.jobs.validation import JobSpec, job_spec  # noqa: E402
from reconciler.provider import certificate, signing  # noqa: E402
from reconciler.provider.soap import ProviderClient  # noqa: E402
from reconciler.sandbox import certs  # noqa: E402

RFC = "EKU9003173C9"


def jobs(n: int) -> list[JobSpec]:
    return [job_spec(str(uuid.uuid4())[:-1] + "1", RFC, "02") for _ in range(n)]


def sign_only(material: certificate.Checked, n: int) -> None:
    batch = jobs(n)
    now = datetime.now(UTC)
    wall, cpu = time.perf_counter(), time.process_time()
    for job in batch:
        signing.signed_request(job, material, now)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    print(
        f"signing alone: {n} requests in {wall:.2f}s wall: {n / wall:,.0f} signatures/s "
        f"({n / cpu:,.0f} per CPU-second, one core), {cpu / n * 1000:.2f} ms CPU each"
    )


async def submit(settings: Settings, n: int) -> tuple[float, float, int]:
    client = await ProviderClient.create(settings)
    try:
        batch = jobs(n)
        await client.cancel(jobs(1)[0])  # warm: connections, zeep's first serialisation
        wall, cpu = time.perf_counter(), time.process_time()
        sem = asyncio.Semaphore(16)

        async def one(job: JobSpec) -> int | None:
            async with sem:
                return (await client.cancel(job)).code

        codes = await asyncio.gather(*(one(j) for j in batch))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        return wall, cpu, sum(1 for c in codes if c == 200)
    finally:
        await client.aclose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2000)
    args = parser.parse_args()
    n = args.jobs
    files = certs.issue(certs.authority(), RFC)
    material = certificate.check(RFC, files.cer, files.key, files.password, datetime.now(UTC))
    sign_only(material, n)

    with tempfile.TemporaryDirectory(prefix="bench-signing-") as tmp:
        directory = Path(tmp)
        cer, key, password = files.write(directory / "csd")
        sandbox = subprocess.Popen(
            [sys.executable, "-m", "reconciler.sandbox", "--port", "0", "--notify-delay-s", "3600"],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        try:
            assert sandbox.stdout is not None
            wsdl = sandbox.stdout.readline().strip()
            provider = {
                "wsdl": wsdl,
                "usuario": "testing@solucionfactible.com",
                "password": "timbrado.SF.16672",
                "notify_email": "bench@example.com",
            }
            results = {}
            for mode in ("provider", "local"):
                issuer = {"rfc": RFC, "signing": mode}
                if mode == "local":
                    issuer.update(csd_cer=str(cer), csd_key=str(key), csd_password_file=str(password))
                settings = Settings(
                    ledger={"path": directory / mode / "ledger.sqlite3"}, provider=provider, issuers=[issuer]
                )
                wall, cpu, accepted = asyncio.run(submit(settings, n))
                results[mode] = cpu / n
                print(
                    f"{mode:8} submissions: {n} in {wall:.2f}s wall ({n / wall:,.0f}/s), "
                    f"{cpu / n * 1000:.2f} ms CPU per job in the daemon's process, {accepted} accepted"
                )
            added = (results["local"] - results["provider"]) * 1000
            print(f"local signing adds {added:.2f} ms CPU per job in the daemon ({added:.2f} s per 1,000 jobs)")
        finally:
            sandbox.terminate()
            sandbox.wait(10)


if __name__ == "__main__":
    main()

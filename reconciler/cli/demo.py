"""``reconciler demo``: the whole product on embedded defaults, offline, in under a minute.

It starts the provider simulator and a pymap IMAP server on loopback, writes a
temporary config and ledger, queues the provider's ten testing UUIDs plus
generated ones, drops one forged notification into the mailbox, and runs the
real daemon (the same submitter, watcher, confirmer and chaser as production)
until every job is resolved.  It exits 0 only if every job reached the state
the simulator intended and the forgery changed nothing.
"""

from __future__ import annotations

import asyncio
import logging
import random
import secrets
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from pathlib import Path

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from reconciler.clock import utc_now
from reconciler.config import Settings, load_settings
from reconciler.daemon.loops import Daemon
from reconciler.jobs.states import TERMINAL, State
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.logs import OneLineFilter
from reconciler.mailbox.watcher import Watcher
from reconciler.provider.soap import ProviderClient
from reconciler.sandbox import UUIDS_204, UUIDS_211, ImapConfig, Sandbox, SandboxConfig, intended_outcome
from reconciler.sandbox.imapserver import ImapServer, start_pymap

log = logging.getLogger(__name__)

RFC = "EKU9003173C9"
USER = "testing@solucionfactible.com"
PASSWORD = "timbrado.SF.16672"  # noqa: S105 the provider's published testing password
NOTIFY = "demo@reconciler.invalid"
FORGER = "Solución Factible <notificaciones@solucionfactib1e.com>"  # a look-alike domain
DEADLINE_S = 55.0


@dataclass
class DemoResult:
    ok: bool
    directory: Path
    config: Path
    mismatches: list[str]
    forged_uuid: str
    untrusted_reason: str | None


def _uuids(generated: int, rng: random.Random) -> list[str]:
    """The page's testing UUIDs and ``generated`` random ones, a quarter of them ending in E (ERROR)."""
    out = sorted(UUIDS_204) + sorted(UUIDS_211)
    for i in range(generated):
        u = f"{rng.getrandbits(128):032X}"
        u = f"{u[:8]}-{u[8:12]}-4{u[13:16]}-A{u[17:20]}-{u[20:]}"
        last = "E" if i % 4 == 0 else rng.choice("0123456789ABCDF")
        out.append(u[:-1] + last)
    return out


def _write_config(directory: Path, sandbox: Sandbox, imap: ImapServer) -> Path:
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir(mode=0o700)
    (secrets_dir / "provider_password").write_text(PASSWORD)
    (secrets_dir / "mailbox_password").write_text(imap.password)
    config = directory / "config.toml"
    config.write_text(
        f"""# Written by `reconciler demo`: the simulator and pymap on loopback.
[ledger]
path = "{directory / "ledger.sqlite3"}"

[provider]
wsdl = "{sandbox.wsdl_url}"
usuario = "{USER}"
password_file = "{secrets_dir / "provider_password"}"
notify_email = "{NOTIFY}"
timeout_s = 5
max_concurrency = 16

[mailbox]
host = "{imap.host}"
port = {imap.port}
security = "none"
username = "{imap.user}"
password_file = "{secrets_dir / "mailbox_password"}"
idle = true
poll_interval_s = 1

[mailbox.trust]
allowed_senders = ["*@solucionfactible.com"]
confirm_with_status = true

[schedule]
retry_base_s = 0.5
retry_max_s = 4
status_check_after_s = 4
stale_after_s = 3600
submit_interval_s = 0.5
chase_interval_s = 1
"""
    )
    return config


def _forgery(uuid: str) -> bytes:
    msg = EmailMessage()
    msg["From"] = FORGER
    msg["To"] = NOTIFY
    msg["Subject"] = f"Cancelación exitosa {uuid}"
    msg["Date"] = format_datetime(utc_now())
    msg["Message-ID"] = make_msgid(domain="solucionfactib1e.com")
    msg["X-SFService"] = "Cancelar"
    msg["X-UUIDCancelacion"] = uuid
    msg["X-StatusCancelacion"] = "OK"
    msg.set_content("La cancelación fue exitosa.")
    return msg.as_bytes()


def _view(counts: dict[str, int], progress: Progress) -> Group:
    table = Table(title="reconciler demo: jobs per state", header_style="bold")
    for state in State:
        table.add_column(str(state), justify="right")
    table.add_row(*(str(counts.get(str(s), 0)) for s in State))
    return Group(table, progress)


async def _drive(settings: Settings, uuids: list[str], forged: str, console: Console) -> tuple[list[str], str | None]:
    ledger = await Ledger.open(settings.ledger.path)
    provider: ProviderClient | None = None
    watcher: Watcher | None = None
    try:
        provider = await ProviderClient.create(settings)
        watcher = Watcher(settings, ledger)
        await ledger.add_jobs([job_spec(u, RFC) for u in uuids], utc_now(), source="demo")
        await watcher.connect()
        daemon = Daemon(settings, ledger, provider, watcher)
        task = asyncio.create_task(daemon.run_forever())
        progress = Progress(
            TextColumn("resolved"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
        )
        bar = progress.add_task("resolved", total=len(uuids))
        deadline = time.monotonic() + DEADLINE_S
        with Live(_view({}, progress), console=console, refresh_per_second=8) as live:
            while time.monotonic() < deadline and not task.done():
                counts = await ledger.counts()
                done = sum(counts[str(s)] for s in TERMINAL)
                progress.update(bar, completed=done)
                live.update(_view(counts, progress))
                if done == len(uuids) and await ledger.event_count("untrusted"):
                    break
                await asyncio.sleep(0.2)
        console.line()  # end the progress line before anything else is printed
        daemon.stop.set()
        await task
        mismatches = []
        for u in uuids:
            job = await ledger.get_job(u)
            if str(job.state) != intended_outcome(u):
                mismatches.append(f"{u}: {job.state}, intended {intended_outcome(u)}")
        reasons = [str(e.detail.get("reason")) for e in await ledger.events(forged) if e.kind == "untrusted"]
        return mismatches, (reasons[0] if reasons else None)
    finally:
        if watcher is not None:
            await watcher.close()
        if provider is not None:
            await provider.aclose()
        await ledger.close()


def invocation(argv0: str | None = None, executable: str | None = None) -> str:
    """How to run reconciler again from the shell the user is in, quoted for it.

    ``reconciler`` when that name on PATH is this program; else this interpreter with ``-m`` (a venv
    not activated, ``python -m reconciler``); else the script's absolute path.
    """
    argv0 = argv0 if argv0 is not None else sys.argv[0]
    executable = executable or sys.executable
    found = shutil.which("reconciler")
    if found and Path(argv0).name == "reconciler" and Path(found).resolve() == Path(argv0).resolve():
        return "reconciler"
    if Path(argv0).name in ("__main__.py", "-m", "-c", "") or not Path(argv0).exists():
        return f"{shlex.quote(executable)} -m reconciler"
    return shlex.quote(str(Path(argv0).resolve()))


def remove(directory: Path) -> None:
    """The demo's temporary directory, gone (its ledger, config, secrets and mailbox)."""
    shutil.rmtree(directory, ignore_errors=True)


def run_demo(*, keep: bool, generated: int, console: Console) -> DemoResult:
    """Run the demo; servers are stopped at the end unless ``keep`` (then they run until Ctrl-C)."""
    directory = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    logging.basicConfig(
        filename=directory / "demo.log", level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLineFilter())
    rng = random.Random(2022)
    uuids = _uuids(generated, rng)
    forged = next(u for u in uuids[10:] if intended_outcome(u) == "error")
    imap = start_pymap(directory / "imap", "demo", secrets.token_urlsafe(12))
    sandbox = Sandbox(
        SandboxConfig(
            notify_delay_s=2.0,
            latency_ms=20,
            imap=ImapConfig(imap.host, imap.port, imap.user, imap.password),
            seed=7,
        )
    ).start()
    try:
        config = _write_config(directory, sandbox, imap)
        settings = load_settings(config)
        console.print(
            f"simulator at {sandbox.url}, IMAP (pymap) at {imap.host}:{imap.port}; {len(uuids)} jobs", markup=False
        )
        imap.deliver(_forgery(forged))
        console.print(f"dropped a forged OK for {forged} from {FORGER}", markup=False)
        mismatches, reason = asyncio.run(_drive(settings, uuids, forged, console))
        result = DemoResult(not mismatches and reason is not None, directory, config, mismatches, forged, reason)
        if keep:
            console.print(
                f"servers kept running: WSDL {sandbox.wsdl_url}, IMAP {imap.host}:{imap.port} user {imap.user}",
                markup=False,
            )
            console.print(
                f"their config (with the mailbox password in {directory / 'secrets'}): {config}", markup=False
            )
            console.print("press Ctrl-C to stop them")
            try:
                while True:
                    time.sleep(3600)
            except KeyboardInterrupt:
                pass
        return result
    finally:
        sandbox.stop()
        imap.stop()

"""``reconciler demo``: the whole product on embedded defaults, offline, in under a minute.

It starts the provider simulator and a pymap IMAP server on loopback, writes a
temporary config and ledger, queues the provider's ten testing UUIDs plus
generated ones, drops one forged notification into the mailbox, and runs the
real daemon (the same submitter, watcher, confirmer and chaser as production)
until every job is resolved and the SAT's word on it is final (the SAT simulator's
receivers answer in seconds, not hours).  It exits 0 only if every job reached the
state and the SAT view the simulator intended and the forgery changed nothing.
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
from reconciler.daemon.sat_loop import SatFollower
from reconciler.events.dispatcher import Dispatcher, endpoints
from reconciler.jobs.states import TERMINAL, State
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.logs import OneLineFilter
from reconciler.mailbox.watcher import Watcher
from reconciler.provider.soap import ProviderClient
from reconciler.sandbox import (
    UUIDS_204,
    UUIDS_211,
    ImapConfig,
    Sandbox,
    SandboxConfig,
    certs,
    intended_outcome,
    satworld,
)
from reconciler.sandbox.cfdis import sello_for
from reconciler.sandbox.config import TomlValue, table, write_config
from reconciler.sandbox.imapserver import ImapServer, start_pymap
from reconciler.sandbox.receiver import WebhookReceiver
from reconciler.sat.client import SatClient
from reconciler.sat.verdict import View, facts_of, judge

log = logging.getLogger(__name__)

RFC = "EKU9003173C9"
NOTIFY = "demo@reconciler.invalid"
FORGER = "Solución Factible <notificaciones@solucionfactib1e.com>"  # a look-alike domain
DEADLINE_S = 55.0
SAT_WINDOW_S = 8  # the demo's receivers have 8 seconds, not 72 hours, and answer after 3


@dataclass
class DemoResult:
    ok: bool
    directory: Path
    config: Path
    mismatches: list[str]
    forged_uuid: str
    untrusted_reason: str | None


def _uuids(generated: int, rng: random.Random) -> list[str]:
    """The page's testing UUIDs and ``generated`` random ones, a quarter of them ending in E (ERROR).

    The first three generated ones are, at the SAT, No cancelable (refused by the preflight), rejected
    by the receiver though the provider says OK, and waiting for the receiver's acceptance.
    """
    out = sorted(UUIDS_204) + sorted(UUIDS_211)
    for i in range(generated):
        u = f"{rng.getrandbits(128):032X}"
        u = f"{u[:8]}-{u[8:12]}-4{u[13:16]}-A{u[17:20]}-{u[20:]}"
        last = "E" if i % 4 == 0 and i >= 4 else rng.choice("0123456789ABCDF")
        sat = {0: "C", 1: "A", 2: "8"}.get(i, u[-2])
        out.append(u[:-2] + sat + last)
    return out


def _issuer(secrets_dir: Path) -> str:
    """A throwaway SAT-shaped CSD for the demo's RFC, signed by a throwaway CA: ``[[issuers]]`` signing locally."""
    files = certs.issue(certs.authority(), RFC, name="ESCUELA KEMPER URGATE SA DE CV")
    cer, key, password = files.write(secrets_dir, f"{RFC}-csd")
    return table(
        "issuers",
        {"rfc": RFC, "signing": "local", "csd_cer": cer, "csd_key": key, "csd_password_file": password},
        array=True,
    )


def _still_valid_either_way(uuid: str, view: str) -> bool:
    """A provider ERROR leaves the invoice valid: the SAT says Vigente, with "Solicitud rechazada" only
    when it was asked after the refusal reached it (the follow-up ends with the job), so both views
    are the truth for such a job, depending on when the SAT was last asked."""
    return intended_outcome(uuid) == "error" and view in (str(View.VALID), str(View.RECEIVER_REJECTED))


def intended_view(uuid: str) -> str:
    """The SAT view the demo should end with for ``uuid`` (the simulator's rules, both sides)."""
    provider = intended_outcome(uuid)
    kind = satworld.kind(uuid)
    if kind == "no":
        return str(View.NOT_CANCELLABLE)
    if provider == "rejected":
        return str(View.VALID)
    if provider == "error" or kind == "rechazo":
        return str(View.RECEIVER_REJECTED)
    return str(View.CANCELLED)


def intended_state(uuid: str) -> str:
    return "rejected" if satworld.kind(uuid) == "no" else intended_outcome(uuid)


def _write_config(
    directory: Path, sandbox: Sandbox, imap: ImapServer, receiver: WebhookReceiver, signing: str = "provider"
) -> Path:
    secrets_dir = directory / "secrets"
    secrets_dir.mkdir(mode=0o700)
    issuers = _issuer(secrets_dir) if signing == "local" else ""
    sat: dict[str, TomlValue] = {
        "enabled": True,
        "url": sandbox.sat_url,
        "max_rps": 20,
        "interval_s": 0.5,
        "retry_base_s": 0.5,
        "retry_max_s": 2,
        "early_s": [0.5, 1, 2],
        "window_interval_s": 1,
        "window_s": SAT_WINDOW_S,
        "margin_interval_s": 2,
        "margin_s": 4,
        "daily_s": 10,
        "horizon_s": 60,
        "not_found_retry_s": 0.5,
        "not_found_submit_after_s": 5,
    }
    webhook = {"url": receiver.url, "name": "demo-receiver", "secret": receiver.secret}
    return write_config(
        directory,
        wsdl=sandbox.wsdl_url,
        imap=imap,
        ledger=directory / "ledger.sqlite3",
        notify_email=NOTIFY,
        provider={"timeout_s": 5, "max_concurrency": 16},
        mailbox={"idle": True, "poll_interval_s": 1},
        schedule={
            "retry_base_s": 0.5,
            "retry_max_s": 4,
            "status_check_after_s": 4,
            "stale_after_s": 3600,
            "submit_interval_s": 0.5,
            "chase_interval_s": 1,
        },
        extra="\n".join(
            [
                table("sat", sat),
                table("events", {"poll_interval_s": 0.2}),
                table("webhooks", webhook, array=True),
                issuers,
            ]
        ),
        comment="Written by `reconciler demo`: the simulator and pymap on loopback.",
    )


async def _sat_settled(ledger: Ledger) -> bool:
    """Every job's SAT view is final (no follow-up ask planned)."""
    now = utc_now()
    open_views = {View.TO_SEND, View.NOT_ASKED, View.ACCEPTED, View.RECEIVER, View.NOT_FOUND}
    return not any(judge(facts_of(j), now).view in open_views for j in await ledger.list_jobs())


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
        specs = [job_spec(u, RFC, None, None, "XAXX010101000", "1160.00", sello_for(u)) for u in uuids]
        await ledger.add_jobs(specs, utc_now(), source="demo")
        await watcher.connect()
        daemon = Daemon(settings, ledger, provider, watcher)
        sat = SatClient(settings.sat.url, timeout_s=settings.sat.timeout_s, max_rps=settings.sat.max_rps)
        SatFollower(settings, ledger, sat, clock=utc_now).attach(daemon)
        task = asyncio.create_task(daemon.run_forever())
        dispatcher = Dispatcher(settings, ledger, endpoints(settings))
        delivering = asyncio.create_task(dispatcher.run(daemon.stop))
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
                if done == len(uuids) and await ledger.event_count("untrusted") and await _sat_settled(ledger):
                    break
                await asyncio.sleep(0.2)
        console.line()  # end the progress line before anything else is printed
        undelivered = await _drain(ledger)
        daemon.stop.set()
        await task
        await delivering
        await dispatcher.aclose()
        await sat.aclose()
        mismatches = []
        for u in uuids:
            job = await ledger.get_job(u)
            if str(job.state) != intended_state(u):
                mismatches.append(f"{u}: {job.state}, intended {intended_state(u)}")
            view = str(judge(facts_of(job), utc_now()).view)
            if view != intended_view(u) and not _still_valid_either_way(u, view):
                mismatches.append(f"{u}: SAT view {view}, intended {intended_view(u)}")
        if undelivered:
            mismatches.append(f"{undelivered} outbox events were not delivered to the demo's webhook receiver")
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


async def _drain(ledger: Ledger) -> int:
    """Give the webhook a moment to take the last events (the receiver is on loopback); returns those left."""
    left = -1
    for _ in range(50):
        rows = await ledger.fetch(
            "SELECT (SELECT count(*) FROM deliveries WHERE state != 'delivered')"
            " + (SELECT count(*) FROM outbox WHERE seq > (SELECT coalesce(min(cursor), 0) FROM endpoints))"
        )
        left = int(rows[0][0])
        if not left:
            break
        await asyncio.sleep(0.1)
    return left


def run_demo(*, keep: bool, generated: int, console: Console, signing: str = "provider") -> DemoResult:
    """Run the demo; servers are stopped at the end unless ``keep`` (then they run until Ctrl-C).

    ``signing="local"``: the issuer signs each request itself with a throwaway CSD generated here.
    """
    directory = Path(tempfile.mkdtemp(prefix="reconciler-demo-"))
    logging.basicConfig(
        filename=directory / "demo.log", level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for handler in logging.getLogger().handlers:
        handler.addFilter(OneLineFilter())
    rng = random.Random(2022)
    uuids = _uuids(generated, rng)
    forged = next(u for u in uuids[10:] if intended_state(u) == "error")
    imap = start_pymap(directory / "imap", "demo", secrets.token_urlsafe(12))
    sandbox = Sandbox(
        SandboxConfig(
            notify_delay_s=2.0,
            latency_ms=20,
            sat_receiver_s=3.0,
            sat_window_s=SAT_WINDOW_S,
            sat_lag_s=1.0,
            imap=ImapConfig(imap.host, imap.port, imap.user, imap.password),
            seed=7,
        )
    ).start()
    receiver = WebhookReceiver().start()
    try:
        config = _write_config(directory, sandbox, imap, receiver, signing)
        settings = load_settings(config)
        if signing == "local":
            console.print(
                f"signing locally for {RFC} with a throwaway CSD in {directory / 'secrets'}: the key never leaves",
                markup=False,
            )
        console.print(
            f"simulator at {sandbox.url} (SAT at {sandbox.sat_url}), IMAP (pymap) at {imap.host}:{imap.port}; "
            f"{len(uuids)} jobs",
            markup=False,
        )
        imap.deliver(_forgery(forged))
        console.print(f"dropped a forged OK for {forged} from {FORGER}", markup=False)
        mismatches, reason = asyncio.run(_drive(settings, uuids, forged, console))
        wanted = "enviarSolicitudCancelacionAsincrono" if signing == "local" else "cancelarAsincrono"
        mismatches += [
            f"{e.uuid}: sent with {e.operation}, expected {wanted}"
            for e in sandbox.record.entries()
            if e.operation in ("cancelarAsincrono", "enviarSolicitudCancelacionAsincrono") and e.operation != wanted
        ]
        console.print(f"webhook receiver at {receiver.url}: {receiver.summary()}", markup=False, soft_wrap=True)
        if receiver.forged:
            mismatches.append(f"the demo's webhook receiver refused {receiver.forged} signatures")
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
        receiver.stop()
        sandbox.stop()
        imap.stop()

"""The SAT follower in the daemon, over real HTTP against the simulator's provider and SAT, on a real ledger.

One clock drives the simulator, the daemon and the follower, so 72 simulated hours take no time.
"""

from __future__ import annotations

import json
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from reconciler.config import ScheduleSettings, Settings
from reconciler.daemon.loops import Daemon
from reconciler.daemon.sat_loop import SatFollower
from reconciler.jobs.states import State
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.provider.soap import ProviderClient
from reconciler.sandbox import Sandbox, SandboxConfig
from reconciler.sandbox.cfdis import sello_for
from reconciler.sat.client import SatClient
from reconciler.sat.verdict import View, facts_of, judge

from ..conftest import run_cli
from ..fixtures_sandbox import RFC, provider_settings

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
H = 3600.0
SCHEDULE = ScheduleSettings(retry_base_s=1, retry_max_s=5, status_check_after_s=30, stale_after_s=30 * 86400)


def uid(second_last: str, last: str = "0", n: int = 0) -> str:
    return f"71452784-AFC7-4BE5-8623-3BA1436D{n}{n}{second_last}{last}"


class Clock:
    def __init__(self) -> None:
        self.s = 0.0

    def mono(self) -> float:
        return self.s

    def now(self) -> datetime:
        return T0 + timedelta(seconds=self.s)


class Rig:
    def __init__(self, sb: Sandbox, settings: Settings, ledger: Ledger, provider: ProviderClient, clock: Clock) -> None:
        self.sb, self.settings, self.ledger, self.provider, self.clock = sb, settings, ledger, provider, clock
        self.daemon = Daemon(settings, ledger, provider, None, clock=clock.now, rng=random.Random(1))
        self.client = SatClient(sb.sat_url, timeout_s=2.0, max_rps=100)
        self.follower = SatFollower(settings, ledger, self.client, clock=clock.now, rng=random.Random(2))
        self.follower.attach(self.daemon)

    async def add(self, *uuids: str, receptor: bool = True) -> None:
        specs = [
            job_spec(u, RFC, None, None, "XAXX010101000", "1160.00", sello_for(u)) if receptor else job_spec(u, RFC)
            for u in uuids
        ]
        await self.ledger.add_jobs(specs, self.clock.now(), "test")

    async def cycle(self, advance_s: float = 0.0) -> None:
        """Move the clock, then one pass of every loop in --once order (the SAT first, then the provider)."""
        self.clock.s += advance_s
        await self.daemon.run_once()

    async def view(self, u: str) -> View:
        return judge(facts_of(await self.ledger.get_job(u)), self.clock.now()).view

    async def counts_match(self) -> dict[str, int]:
        """The ledger's SQL counts (check, summary) equal the per-job views (status, export)."""
        counts = await self.ledger.sat_counts(self.clock.now())
        views = [judge(facts_of(j), self.clock.now()).view for j in await self.ledger.list_jobs()]
        names = {
            "cancelled": View.CANCELLED,
            "receiver_rejected": View.RECEIVER_REJECTED,
            "not_cancellable": View.NOT_CANCELLABLE,
            "contradiction": View.CONTRADICTION,
            "late": View.LATE,
            "receiver": View.RECEIVER,
        }
        assert {k: counts[k] for k in names} == {k: views.count(v) for k, v in names.items()}
        return counts

    async def job(self, u: str) -> Any:
        return await self.ledger.get_job(u)


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    clock = Clock()
    config = SandboxConfig(
        clock=clock.mono,
        notify_delay_s=60,
        sat_receiver_s=5 * H,
        sat_window_s=72 * H,
        sat_lag_s=1800,
        maildir=tmp_path / "Maildir",
    )
    with Sandbox(config) as sb:
        base = provider_settings(sb, tmp_path)
        settings = base.model_copy(
            update={
                "schedule": SCHEDULE,
                "sat": base.sat.model_copy(
                    update={"enabled": True, "url": sb.sat_url, "preflight": True, "not_found_submit_after_s": 3 * H}
                ),
            }
        )
        ledger = await Ledger.open(settings.ledger.path)
        provider = await ProviderClient.create(settings)
        r = Rig(sb, settings, ledger, provider, clock)
        try:
            yield r
        finally:
            await r.client.aclose()
            await provider.aclose()
            await ledger.close()


async def test_every_invoice_follows_the_sat_to_its_end(rig: Rig) -> None:
    sin, con, rechazo, vencido, nocancel, lag, denied, already = (
        uid("3"),
        uid("8"),
        uid("A"),
        uid("B"),
        uid("C"),
        uid("D"),
        uid("1", "E"),
        uid("4", n=1),
    )
    # Cancelled before we ever ask (another tool, the portal): the provider holds it already.
    rig.sb.service.cancel(
        {
            "usuario": rig.sb.config.credentials.usuario,
            "password": rig.sb.config.credentials.password,
            "uuid": f"{already}|02|",
            "rfcEmisor": RFC,
        }
    )
    rig.clock.s += 120
    await rig.add(sin, con, rechazo, vencido, nocancel, lag, denied, already)
    await rig.cycle()
    # Preflight: already Cancelado -> ok, no provider call; No cancelable -> rejected, not sent; lag -> waits.
    assert (await rig.job(already)).state == State.OK
    assert not [e for e in rig.sb.record.entries() if e.uuid == already]  # the daemon never called the provider
    assert "already cancelled at the SAT" in (await rig.job(already)).message
    nc = await rig.job(nocancel)
    assert nc.state == State.REJECTED and "No cancelable" in nc.message and rig.sb.record.accepted()[nocancel] == 0
    assert await rig.view(nocancel) == View.NOT_CANCELLABLE
    assert (await rig.job(lag)).state == State.QUEUED and rig.sb.record.accepted()[lag] == 0
    for u in (sin, con, rechazo, vencido, denied):
        assert (await rig.job(u)).state == State.AWAITING, u
        assert await rig.view(u) in (View.ACCEPTED, View.NOT_ASKED)
    # The cancellations land after 60 s; the first follow-up ask is 2 minutes after acceptance.
    await rig.cycle(130)
    assert await rig.view(sin) == View.CANCELLED and (await rig.job(sin)).state == State.OK
    for u in (con, rechazo, vencido):
        assert await rig.view(u) == View.RECEIVER, u
    assert (await rig.job(con)).sat_until == "2026-01-08T09:02:00.000Z"
    assert await rig.view(denied) == View.RECEIVER_REJECTED
    # The lagging CFDI becomes known after 30 minutes and is sent then.
    for _ in range(4):
        await rig.cycle(600)
    assert (await rig.job(lag)).state != State.QUEUED and rig.sb.record.accepted()[lag] == 1
    await rig.counts_match()
    # The receivers answer after 5 hours: seen within the hour.
    await rig.cycle(5 * H - 4 * 600 - 130 + 60)
    await rig.cycle(H)
    assert await rig.view(con) == View.CANCELLED and (await rig.job(con)).state == State.OK
    assert await rig.view(rechazo) == View.RECEIVER_REJECTED
    assert (await rig.job(rechazo)).sat_due_at is None  # the SAT's word is final: no more asks
    # Plazo vencido after 72 hours.
    while rig.clock.s < 73 * H:
        await rig.cycle(H)
    assert await rig.view(vencido) == View.CANCELLED
    assert (await rig.job(vencido)).sat_estatus_cancelacion == "Plazo vencido"
    counts = await rig.counts_match()
    assert counts["receiver_rejected"] == 2 and counts["not_cancellable"] == 1 and counts["contradiction"] == 0
    assert counts["cancelled"] == 5  # sin, con, vencido, already, lag
    # Calls per job: few for what ends early; hourly inside the window for what waits on the receiver.
    assert rig.sb.sat.calls_for(sin) <= 3 and rig.sb.sat.calls_for(con) <= 12
    events = [e for e in await rig.ledger.events(con) if e.kind == "sat"]
    assert events and all(e.source == "sat" for e in events) and len(events) == (await rig.job(con)).sat_calls + 1
    # The command line shows the same: check warns about the receivers' rejections, status has the SAT column.
    config = rig.ledger.path.parent / "c.toml"
    config.write_text(f'[ledger]\npath = "{rig.ledger.path}"\n')
    env = {"RECONCILER_CONFIG": str(config)}
    check = run_cli("check", env=env)
    assert check.returncode >= 1 and "2 receiver rejections: invoice still valid" in check.stdout
    status = run_cli("status", "--json", "--limit", "0", env=env)
    shown = {j["uuid"]: j for j in json.loads(status.stdout)}
    assert (
        shown[rechazo]["sat_estatus_cancelacion"] == "Solicitud rechazada" and shown[con]["sat_estado"] == "Cancelado"
    )
    table = run_cli("status", env=env)
    assert "receiver rejected" in table.stdout and "not cancellable" in table.stdout
    exported = {
        j["uuid"]: j for j in map(json.loads, run_cli("export", "--format", "jsonl", env=env).stdout.splitlines())
    }
    assert (exported[rechazo]["sat"], exported[nocancel]["sat"], exported[sin]["sat"]) == (
        "receiver rejected",
        "not cancellable",
        "cancelled",
    )
    summary = json.loads(run_cli("summary", "--json", env=env).stdout)
    assert summary["sat"]["receiver_rejected"] == 2 and summary["sat"]["cancelled"] == 5


async def test_the_sat_down_never_stops_the_provider_loops(rig: Rig) -> None:
    rig.sb.sat_faults(1.0, ("http500", "garbage", "drop"))
    u = uid("3")
    await rig.add(u)
    await rig.cycle()
    assert (await rig.job(u)).state == State.QUEUED  # preflight waits for the SAT a while...
    problems = [e.detail for e in await rig.ledger.events(u) if e.kind == "sat"]
    assert problems and all("problem" in d for d in problems)
    while (await rig.job(u)).state == State.QUEUED:
        assert rig.clock.s < 4 * H, "the job was never sent while the SAT was down"
        await rig.cycle(600)
    # ...then it is sent anyway, and the provider's side resolves it while the SAT is still down.
    for _ in range(10):
        await rig.cycle(60)
    job = await rig.job(u)
    assert job.state == State.OK and job.sat_estado is None
    assert job.sat_failures > 0 and job.sat_due_at is not None  # still asking, with backoff
    rig.sb.sat_faults(0.0)
    for _ in range(8):
        await rig.cycle(600)
    assert await rig.view(u) == View.CANCELLED


async def test_a_job_without_the_sats_fields_is_sent_and_not_followed(rig: Rig) -> None:
    u = uid("3", n=2)
    await rig.add(u, receptor=False)
    await rig.cycle()
    await rig.cycle(130)
    job = await rig.job(u)
    assert job.state in (State.AWAITING, State.OK) and rig.sb.record.accepted()[u] == 1
    assert job.sat_due_at is None and rig.sb.sat.calls_for(u) == 0
    assert await rig.view(u) == View.NOT_ASKED


async def test_a_contradiction_provider_ok_sat_vigente_after_the_window(rig: Rig) -> None:
    u = uid("8", n=3)
    rig.sb.service.override(u, 200, u)  # accepted, but the SAT world never sees it land
    await rig.add(u)
    await rig.cycle()
    await rig.ledger._db.execute("UPDATE jobs SET state = 'ok' WHERE uuid = ?", (u,))
    while rig.clock.s + 6 * H < 119 * H:
        await rig.cycle(6 * H)
    assert await rig.view(u) == View.ACCEPTED  # past the window but within its margin: not yet a contradiction
    assert (await rig.counts_match())["contradiction"] == 0
    await rig.cycle(120 * H + 60 - rig.clock.s)
    assert await rig.view(u) == View.CONTRADICTION
    assert (await rig.counts_match())["contradiction"] == 1

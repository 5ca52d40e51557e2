"""A status 200 is evidence only when its acuse says so: every acuse shape, over real HTTP through the daemon.

The simulator answers each shape on request (``Service.acuse_for``); the daemon's chaser asks,
and the ledger, the events and ``reconciler check`` (a real subprocess) show what came of it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest

from reconciler.clock import parse_iso, utc_now
from reconciler.jobs.states import State
from reconciler.provider.acuse import sha256
from reconciler.sandbox.acuses import AcuseControl

from .conftest import run_cli
from .daemon.test_loops import Rig, ok_uuid, rig_factory  # noqa: F401 (rig_factory is a fixture)
from .harness import eventually

OTHER = "5B4B180D-5B6C-4392-B204-252215A1AB84"
RigFactory = Callable[..., Awaitable[Rig]]


async def answered_200(rig: Rig, u: str) -> bool:
    return any(e.kind == "status" and e.detail["code"] == 200 for e in await rig.ledger.events(u))


async def chase_until_200(rig: Rig, u: str) -> None:
    async def seen() -> bool:
        return await answered_200(rig, u)

    async def one_instant_pass() -> None:
        # Each pass on a stopped clock: on the wall clock a slow reply (a loaded machine) outlasts the
        # backoff and the same pass asks about the job again, so a test would see two 200s, not one.
        now = utc_now()
        rig.daemon.clock = lambda: now
        try:
            await rig.daemon.chase_pass()
        finally:
            rig.daemon.clock = utc_now

    await eventually(seen, 15, "the chaser to see the job", step=one_instant_pass)


async def submitted(factory: RigFactory, control: AcuseControl) -> tuple[Rig, str]:
    """A fresh rig with one job the simulator accepted, whose status call will answer ``control``."""
    rig = await factory()
    u = ok_uuid()
    rig.sandbox.service.acuse_for(u, control)
    await rig.add(u)
    await rig.daemon.submit_pass()
    return rig, u


async def healthy(rig: Rig, tmp_path: Path) -> dict[str, str]:
    """A heartbeat and a mailbox pass, so that ``check`` is OK but for what the test adds."""
    await rig.daemon.heartbeat()
    await rig.ledger.set_fact("mailbox_pass", {"messages": 0}, datetime.now(UTC))
    config = tmp_path / "check.toml"
    config.write_text(f'[ledger]\npath = "{rig.settings.ledger.path}"\n')
    return {"RECONCILER_CONFIG": str(config)}


def check(env: dict[str, str]) -> tuple[int, str]:
    result = run_cli("check", env=env)
    return result.returncode, result.stdout.strip()


@pytest.mark.parametrize(
    "control",
    [
        AcuseControl("real", 201),
        AcuseControl("real", 202),
        AcuseControl("namespaced", 201),
        AcuseControl("wrapped", 201),
        AcuseControl("result", 202),
        AcuseControl("real", 201, in_mensaje=True),
    ],
    ids=["real-201", "real-202", "namespaced", "wrapped", "result", "in-mensaje"],
)
async def test_an_acuse_naming_this_uuid_as_accepted_is_ok_and_kept_byte_exact(
    rig_factory: RigFactory,  # noqa: F811
    control: AcuseControl,
) -> None:
    rig, u = await submitted(rig_factory, control)
    await chase_until_200(rig, u)
    job = await rig.ledger.get_job(u)
    assert job.state == State.OK
    stored = await rig.ledger.acuse(u)
    assert stored is not None and job.acuse_sha256 == sha256(stored)
    [sent] = [e.acuse_sha256 for e in rig.sandbox.record.entries() if e.code == 200 and e.acuse_sha256]
    assert job.acuse_sha256 == sent  # the bytes the simulator answered, not a re-serialization
    [event] = [e.detail for e in await rig.ledger.events(u) if e.kind == "status" and e.detail["code"] == 200]
    assert (event["verdict"], event["estatus_uuid"]) == ("accepted", control.estatus)
    assert event["acuse_from"] == ("mensaje" if control.in_mensaje else "acuseSat")
    assert not [e for e in await rig.ledger.events(u) if e.kind == "conflict"]


@pytest.mark.parametrize("estatus", [203, 205, 310])
async def test_any_other_estatus_ends_error_with_the_sats_code_and_meaning(
    rig_factory: RigFactory,  # noqa: F811
    estatus: int,
) -> None:
    rig, u = await submitted(rig_factory, AcuseControl("real", estatus))
    await chase_until_200(rig, u)
    job = await rig.ledger.get_job(u)
    assert job.state == State.ERROR and job.message is not None
    assert job.message.startswith(f"the SAT refused: EstatusUUID {estatus}: ")
    [event] = [e.detail for e in await rig.ledger.events(u) if e.kind == "status" and e.detail["code"] == 200]
    assert (event["verdict"], event["estatus_uuid"]) == ("refused", estatus)
    if estatus == 205:
        assert event["meaning"] == "the UUID does not exist at the SAT"
    assert job.acuse_sha256 == sha256(await rig.ledger.acuse(u) or b"")


@pytest.mark.parametrize(
    ("control", "reason"),
    [
        (AcuseControl("garbage"), "the acuse is not XML"),
        (AcuseControl("html"), "not an acuse: root element 'html'"),
        (AcuseControl("null"), "the acuse is not XML"),
        (AcuseControl("empty"), "acuse"),  # zeep reads an empty base64Binary as none
        (AcuseControl("absent"), "not evidence: no acuse"),
        (AcuseControl("real", 201, names=OTHER), f"the acuse names another UUID: {OTHER!r}"),
        (AcuseControl("wrapped", 201, names=OTHER.lower()), "the acuse names another UUID"),
        (AcuseControl("html", in_mensaje=True), "not an acuse: root element 'html'"),
        (AcuseControl("null", in_mensaje=True), "not evidence: no acuse"),
    ],
    ids=["garbage", "html", "null", "empty", "absent", "other-uuid", "wrapped-other", "html-mensaje", "null-mensaje"],
)
async def test_a_200_that_is_not_evidence_stays_awaiting_with_a_conflict_and_check_warns(
    rig_factory: RigFactory,  # noqa: F811
    tmp_path: Path,
    control: AcuseControl,
    reason: str,
) -> None:
    rig, u = await submitted(rig_factory, control)
    env = await healthy(rig, tmp_path)
    assert check(env)[0] == 0, check(env)
    await chase_until_200(rig, u)
    job = await rig.ledger.get_job(u)
    assert (job.state, job.has_acuse, job.acuse_sha256) == (State.AWAITING, False, None)
    [conflict] = [e.detail for e in await rig.ledger.events(u) if e.kind == "conflict"]
    assert conflict["reason"].startswith("status 200 is not evidence: ") and reason in conflict["reason"]
    # The chaser asks again later, with backoff: not at once, and it counts the checks.
    assert job.check_at is not None and parse_iso(job.check_at) > parse_iso(job.updated_at)
    assert job.checks >= 1
    code, line = check(env)
    assert code == 1 and line.startswith("RECONCILER WARNING - 1 conflict in the last 72h"), line
    # It keeps asking, and an acuse that is evidence then resolves the job.
    rig.sandbox.service.acuse_for(u, AcuseControl())

    async def resolved() -> bool:
        return (await rig.ledger.get_job(u)).state == State.OK

    await eventually(resolved, 15, "the jobs to be resolved", step=rig.daemon.chase_pass)


@pytest.mark.parametrize("mensaje", [OTHER, f"{OTHER}|02|", OTHER.lower()])
async def test_a_cancel_200_naming_another_uuid_is_not_an_acceptance(
    rig_factory: RigFactory,  # noqa: F811
    tmp_path: Path,
    mensaje: str,
) -> None:
    rig = await rig_factory()
    u = ok_uuid()
    rig.sandbox.service.cancel_mensaje(u, mensaje)
    await rig.add(u)
    env = await healthy(rig, tmp_path)
    # The pass runs on a stopped clock: on the wall clock a slow reply (a loaded machine) outlasts the
    # 0.05 s backoff and the same pass sends the job a second time, which is right but not this test.
    stopped = utc_now()
    rig.daemon.clock = lambda: stopped
    assert await rig.daemon.submit_pass() == 1
    job = await rig.ledger.get_job(u)
    assert (job.state, job.submitted_at, job.check_at) == (State.QUEUED, None, None)
    assert job.next_attempt_at is not None and parse_iso(job.next_attempt_at) > parse_iso(job.updated_at)
    [conflict] = [e.detail for e in await rig.ledger.events(u) if e.kind == "conflict"]
    assert conflict["reason"].startswith("cancelarAsincrono answered 200 naming another UUID: ")
    [reply] = [e.detail for e in await rig.ledger.events(u) if e.kind == "reply"]
    assert (reply["code"], reply["outcome"]) == (200, "transient")
    code, line = check(env)
    assert code == 1 and "1 conflict" in line, line

    # The retry: the provider holds the transaction (701), which is an acceptance of this UUID.
    rig.daemon.clock = utc_now

    async def awaiting() -> bool:
        return (await rig.ledger.get_job(u)).state == State.AWAITING

    await eventually(awaiting, 15, "the jobs to be awaiting", step=rig.daemon.submit_pass)
    assert (await rig.ledger.get_job(u)).code == 701


@pytest.mark.parametrize("suffix", ["", "|02|"])
async def test_a_cancel_200_naming_this_uuid_in_any_case_is_an_acceptance(
    rig_factory: RigFactory,  # noqa: F811
    suffix: str,
) -> None:
    rig = await rig_factory()
    u = ok_uuid()
    rig.sandbox.service.cancel_mensaje(u, u.lower() + suffix)
    await rig.add(u)
    await rig.daemon.submit_pass()
    assert (await rig.ledger.get_job(u)).state == State.AWAITING
    assert not [e for e in await rig.ledger.events(u) if e.kind == "conflict"]

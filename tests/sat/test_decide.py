"""What one SAT observation does to a job: the preflight and follow-up decisions, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from reconciler.clock import iso
from reconciler.jobs.records import Job
from reconciler.jobs.states import State, Trigger
from reconciler.sat.answer import Answer
from reconciler.sat.decide import Retry, follow, preflight, question, start
from reconciler.sat.schedule import Cadence

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
C = Cadence(not_found_retry_s=600, not_found_submit_after_s=3600, max_calls=3)
R = Retry(60, 600)


def job(state: State = State.QUEUED, **kw: object) -> Job:
    base: dict[str, object] = dict(
        uuid=U,
        rfc_emisor="EKU9003173C9",
        motivo="02",
        folio_sustitucion=None,
        state=state,
        code=None,
        message=None,
        attempts=0,
        next_attempt_at=None,
        created_at=iso(NOW),
        submitted_at=None,
        resolved_at=None,
        updated_at=iso(NOW),
        claim=None,
        check_at=None,
        checks=0,
        overdue_at=None,
        has_acuse=False,
        rfc_receptor="XAXX010101000",
        total="10.00",
        sello="abcdefgh",
    )
    base.update(kw)
    return Job(**base)  # type: ignore[arg-type]


def ans(estado: str | None, cancelable: str | None = None, estatus: str | None = None) -> Answer:
    return Answer("S - ok", estado, cancelable, estatus, "200")


def test_the_question_needs_the_receiver_and_the_total() -> None:
    assert (
        question(job()) is not None and question(job(total=None)) is None and question(job(rfc_receptor=None)) is None
    )
    assert "&fe=abcdefgh" in (question(job()) or "") and question(job(sello=None)).startswith("?re=")  # type: ignore[union-attr]


def test_preflight_outcomes() -> None:
    rng = random.Random(1)
    done = preflight(job(), ans("Cancelado", "Cancelable sin aceptación", "Cancelado sin aceptación"), NOW, C, R, rng)
    assert done.trigger == Trigger.CONFIRMED_OK and "already cancelled at the SAT" in done.set["message"]
    refused = preflight(job(), ans("Vigente", "No cancelable"), NOW, C, R, rng)
    assert refused.trigger == Trigger.NOT_CANCELLABLE and "No cancelable" in refused.set["message"]
    cleared = preflight(job(), ans("Vigente", "Cancelable con aceptación"), NOW, C, R, rng)
    assert cleared.trigger is None and cleared.set["sat_cleared"] == 1 and cleared.require == State.QUEUED
    wait = preflight(job(), ans("No Encontrado"), NOW, C, R, rng)
    assert wait.set["sat_due_at"] == iso(NOW + timedelta(seconds=600)) and "sat_cleared" not in wait.set
    late = job(sat_first_at=iso(NOW - timedelta(seconds=3600)))
    assert preflight(late, ans("No Encontrado"), NOW, C, R, rng).set["sat_cleared"] == 1
    down = preflight(job(), Answer(problem="HTTP 503"), NOW, C, R, rng)
    assert "sat_cleared" not in down.set and down.set["sat_failures"] == 1 and "sat_estado" not in down.set
    assert preflight(late, Answer(problem="HTTP 503"), NOW, C, R, rng).set["sat_cleared"] == 1  # down too long: send
    assert preflight(job(), None, NOW, C, R, rng).set["sat_cleared"] == 1


def test_follow_up_plans_stops_and_confirms() -> None:
    rng = random.Random(1)
    accepted = job(State.AWAITING, submitted_at=iso(NOW), sat_since=iso(NOW), sat_calls=0)
    started = start(accepted, NOW + timedelta(hours=5), Cadence())
    assert started.set["sat_due_at"] == iso(NOW + timedelta(seconds=120))  # a late start asks at once
    pending = follow(accepted, ans("Vigente", "Cancelable con aceptación", "En proceso"), NOW, C, R, rng)
    assert pending.trigger is None and pending.set["sat_due_at"] == iso(NOW + timedelta(seconds=120))
    spent = follow(job(State.AWAITING, sat_since=iso(NOW), sat_calls=2), ans("Vigente"), NOW, C, R, rng)
    assert spent.set["sat_due_at"] is None  # the budget of 3 is spent
    ok = follow(accepted, ans("Cancelado", "Cancelable con aceptación", "Cancelado con aceptación"), NOW, C, R, rng)
    assert ok.trigger == Trigger.CONFIRMED_OK and ok.set["sat_due_at"] is None
    rejected = follow(accepted, ans("Vigente", "Cancelable con aceptación", "Solicitud rechazada"), NOW, C, R, rng)
    assert rejected.trigger is None and rejected.set["sat_due_at"] is None
    garbled = follow(accepted, Answer(problem="no ConsultaResult"), NOW, C, R, rng)
    assert "sat_estado" not in garbled.set and garbled.set["sat_failures"] == 1
    invalid = follow(accepted, Answer("N - 601: La expresión impresa proporcionada no es válida."), NOW, C, R, rng)
    assert invalid.set["sat_estado"].startswith("N - 601") and invalid.set["sat_due_at"] is None

"""What one SAT observation does to a job: the preflight and follow-up decisions, pure."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import backoff
from reconciler.clock import iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.sat.answer import (
    CANCELADO,
    CANCELADO_CON,
    CANCELADO_SIN,
    CON_ACEPTACION,
    EN_PROCESO,
    NO_CANCELABLE,
    NO_ENCONTRADO,
    PLAZO_VENCIDO,
    RECHAZADA,
    SIN_ACEPTACION,
    VIGENTE,
    Answer,
)
from reconciler.sat.decide import Retry, follow, preflight, question, start
from reconciler.sat.schedule import Cadence

NOW = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
C = Cadence(not_found_retry_s=600, not_found_submit_after_s=3600, max_calls=3)
R = Retry(60, 600)
Q = State.QUEUED


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


# -- the whole Change of every branch: the columns the ledger sets and the event an operator reads --

S_OK = "S - Comprobante obtenido satisfactoriamente."
EARLIER = NOW - timedelta(seconds=3600)  # the first ask, not_found_submit_after_s ago


def retry_at(failures: int) -> str:
    return iso(backoff.next_attempt(NOW, failures, R.base_s, R.max_s, random.Random(1)))


def seen(a: Answer, *, calls: int, first: datetime = NOW, estado: str | None = None) -> dict[str, object]:
    return {
        "sat_estado": estado or a.estado,
        "sat_es_cancelable": a.es_cancelable,
        "sat_estatus_cancelacion": a.estatus_cancelacion,
        "sat_checked_at": iso(NOW),
        "sat_failures": 0,
        "sat_first_at": iso(first),
        "sat_calls": calls,
    }


def said(a: Answer, **extra: object) -> tuple[str, dict[str, object]]:
    return ("sat", {k: v for k, v in a.as_dict().items() if v is not None} | extra)


def test_preflight_without_the_question_sends_at_once_and_says_why() -> None:
    reason = "no rfc_receptor or total on the job: sent without asking the SAT"
    assert preflight(job(), None, NOW, C, R, random.Random(1)) == Change(
        U, None, "sat", {"sat_cleared": 1, "sat_due_at": None}, [("sat", {"preflight": "skipped", "reason": reason})], Q
    )


@pytest.mark.parametrize("failures", [0, 2])
def test_preflight_retries_a_sat_that_does_not_answer_with_backoff(failures: int) -> None:
    down = Answer(problem="HTTP 503")
    change = preflight(job(sat_failures=failures), down, NOW, C, R, random.Random(1))
    columns = {"sat_failures": failures + 1, "sat_due_at": retry_at(failures + 1), "sat_first_at": iso(NOW)}
    assert change == Change(
        U, None, "sat", columns, [said(down, preflight="retry", retry_at=retry_at(failures + 1))], Q
    )


def test_preflight_stops_waiting_for_a_silent_sat_and_names_since_when() -> None:
    down = Answer(problem="HTTP 503")
    change = preflight(job(sat_first_at=iso(EARLIER)), down, NOW, C, R, random.Random(1))
    why = f"the SAT has not answered since {iso(EARLIER)}"
    note = said(down, preflight="skipped", reason=why)
    assert change == Change(U, None, "sat", {"sat_cleared": 1, "sat_due_at": None}, [note], Q)


def test_preflight_already_cancelled_ends_the_job_ok_with_the_sats_words() -> None:
    a = Answer(S_OK, CANCELADO, SIN_ACEPTACION, CANCELADO_SIN)
    change = preflight(job(sat_calls=1), a, NOW, C, R, random.Random(1))
    message = (
        "already cancelled at the SAT: the SAT says Estado Cancelado, EsCancelable Cancelable sin aceptación, "
        f"EstatusCancelacion Cancelado sin aceptación ({S_OK}); not sent to the provider"
    )
    columns = {**seen(a, calls=2), "sat_due_at": None, "sat_cleared": 1, "message": message, "next_attempt_at": None}
    assert change == Change(U, Trigger.CONFIRMED_OK, "sat", columns, [said(a, preflight="cancelled")])


def test_preflight_not_cancellable_rejects_the_job_without_clearing_it() -> None:
    a = Answer(S_OK, VIGENTE, NO_CANCELABLE)
    change = preflight(job(), a, NOW, C, R, random.Random(1))
    message = (
        f"not cancellable: the SAT says Estado Vigente, EsCancelable No cancelable ({S_OK}); not sent to the provider"
    )
    columns = {**seen(a, calls=1), "sat_due_at": None, "message": message, "next_attempt_at": None}
    assert change == Change(U, Trigger.NOT_CANCELLABLE, "sat", columns, [said(a, preflight="refused")])


def test_preflight_not_found_asks_again_then_sends_after_the_limit() -> None:
    a = Answer("N - 602: Comprobante no encontrado.", NO_ENCONTRADO)
    again = preflight(job(), a, NOW, C, R, random.Random(1))
    due = iso(NOW + timedelta(seconds=600))
    assert again == Change(
        U, None, "sat", {**seen(a, calls=1), "sat_due_at": due}, [said(a, preflight="wait", ask_again_at=due)], Q
    )
    late = preflight(job(sat_first_at=iso(EARLIER), sat_calls=6), a, NOW, C, R, random.Random(1))
    why = f"the SAT has not known it since {iso(EARLIER)}; sending"
    columns = {**seen(a, calls=7, first=EARLIER), "sat_due_at": None, "sat_cleared": 1}
    assert late == Change(U, None, "sat", columns, [said(a, preflight="cleared", reason=why)], Q)


@pytest.mark.parametrize(
    ("a", "estado", "unknown"),
    [
        (Answer(S_OK, VIGENTE, CON_ACEPTACION, EN_PROCESO), VIGENTE, []),
        # no estatus yet, and values this program does not know (kept, shown)
        (Answer(S_OK, VIGENTE, "Cancelable quizá"), VIGENTE, ["Cancelable quizá"]),
        (Answer(S_OK, "Suspendido", CON_ACEPTACION, "Otro"), "Suspendido", ["Suspendido", "Otro"]),
        # a 601 has no Estado: its CodigoEstatus is shown as the Estado
        (Answer("N - 601: La expresión impresa proporcionada no es válida."), "N - 601: La expresión", []),
    ],
)
def test_preflight_clears_any_other_answer_keeping_what_it_said(a: Answer, estado: str, unknown: list[str]) -> None:
    change = preflight(job(), a, NOW, C, R, random.Random(1))
    assert change.set["sat_estado"].startswith(estado)
    columns = {**seen(a, calls=1, estado=change.set["sat_estado"]), "sat_due_at": None, "sat_cleared": 1}
    note = said(a, **({"unknown": unknown} if unknown else {}), preflight="cleared")
    assert change == Change(U, None, "sat", columns, [note], Q)


def test_start_plans_the_window_from_the_acceptance_and_asks_a_late_start_at_once() -> None:
    accepted = job(State.AWAITING, submitted_at=iso(NOW))
    columns = {
        "sat_since": iso(NOW),
        "sat_until": iso(NOW + timedelta(hours=72)),
        "sat_late_after": iso(NOW + timedelta(hours=72 + 48)),
        "sat_calls": 0,
        "sat_failures": 0,
        "sat_cleared": 1,
        "sat_due_at": iso(NOW + timedelta(seconds=120)),
    }
    for now in (NOW - timedelta(hours=1), NOW, NOW + timedelta(hours=5)):
        assert start(accepted, now, Cadence()) == Change(U, None, "sat", columns, [], require=State.AWAITING)
    assert start(accepted, NOW, Cadence(max_calls=0)).set["sat_due_at"] is None  # no ask left in the plan
    short = Cadence(early_s=(30.0,), window_s=3600, margin_s=1800, max_calls=1)  # the job's own cadence counts
    assert {k: start(accepted, NOW, short).set[k] for k in ("sat_until", "sat_late_after", "sat_due_at")} == {
        "sat_until": iso(NOW + timedelta(seconds=3600)),
        "sat_late_after": iso(NOW + timedelta(seconds=5400)),
        "sat_due_at": iso(NOW + timedelta(seconds=30)),
    }


def test_start_without_the_question_plans_nothing_and_says_why() -> None:
    change = start(job(State.OK, submitted_at=iso(NOW), total=None), NOW, Cadence())
    assert (change.set["sat_due_at"], change.set["sat_cleared"], change.require) == (None, 1, State.OK)
    assert change.events == [("sat", {"skipped": "no rfc_receptor or total on the job: the SAT cannot be asked"})]


@pytest.mark.parametrize("failures", [0, 3])
def test_follow_retries_an_unusable_answer_with_backoff(failures: int) -> None:
    garbled = Answer(problem="no ConsultaResult")
    accepted = job(State.AWAITING, sat_since=iso(NOW), sat_failures=failures, sat_calls=1)
    columns = {"sat_failures": failures + 1, "sat_due_at": retry_at(failures + 1)}
    note = said(garbled, retry_at=retry_at(failures + 1))
    assert follow(accepted, garbled, NOW, C, R, random.Random(1)) == Change(
        U, None, "sat", columns, [note], require=State.AWAITING
    )


def observed(a: Answer, calls: int, estado: str | None = None) -> dict[str, object]:
    out = seen(a, calls=calls, estado=estado)
    del out["sat_first_at"]
    return out


@pytest.mark.parametrize(
    ("a", "final"),
    [
        (Answer(S_OK, VIGENTE, CON_ACEPTACION, EN_PROCESO), False),
        (Answer(S_OK, VIGENTE, CON_ACEPTACION, RECHAZADA), True),
        (Answer(S_OK, VIGENTE, NO_CANCELABLE), True),
        (Answer(S_OK, VIGENTE, NO_CANCELABLE, EN_PROCESO), True),
        (Answer(S_OK, VIGENTE, CON_ACEPTACION, PLAZO_VENCIDO), False),
        (Answer(S_OK, CANCELADO, CON_ACEPTACION, CANCELADO_CON), True),
        (Answer("N - 602: Comprobante no encontrado.", NO_ENCONTRADO, None, RECHAZADA), False),
        (Answer("N - 602: Comprobante no encontrado.", NO_ENCONTRADO, NO_CANCELABLE), False),
        (Answer("N - 601: La expresión impresa proporcionada no es válida."), True),
    ],
)
def test_follow_plans_the_next_ask_until_the_sats_word_is_final(a: Answer, final: bool) -> None:
    ok_job = job(State.OK, submitted_at=iso(NOW), sat_since=iso(NOW), sat_calls=1)
    change = follow(ok_job, a, NOW + timedelta(seconds=130), C, R, random.Random(1))
    due = None if final else iso(NOW + timedelta(seconds=600))  # the next point after 130 s
    assert change.set["sat_due_at"] == due and change.set["sat_calls"] == 2
    assert change.events == [said(a, next_at=due, calls=2)] and (change.trigger, change.require) == (None, State.OK)


def test_follow_records_the_answer_and_without_a_start_plans_nothing() -> None:
    a = Answer(S_OK, VIGENTE, CON_ACEPTACION, EN_PROCESO)
    change = follow(job(State.AWAITING, sat_since=None, sat_calls=4), a, NOW, C, R, random.Random(1))
    columns = {**observed(a, 5), "sat_due_at": None}
    assert change == Change(U, None, "sat", columns, [said(a, next_at=None, calls=5)], require=State.AWAITING)


def test_follow_cancelled_confirms_an_awaiting_job_with_the_sats_words() -> None:
    a = Answer(S_OK, CANCELADO, SIN_ACEPTACION, CANCELADO_SIN)
    change = follow(job(State.AWAITING, sat_since=iso(NOW), sat_calls=0), a, NOW, C, R, random.Random(1))
    message = (
        "cancelled at the SAT: the SAT says Estado Cancelado, EsCancelable Cancelable sin aceptación, "
        f"EstatusCancelacion Cancelado sin aceptación ({S_OK})"
    )
    columns = {**observed(a, 1), "sat_due_at": None, "message": message}
    assert change == Change(U, Trigger.CONFIRMED_OK, "sat", columns, [said(a, next_at=None, calls=1)])

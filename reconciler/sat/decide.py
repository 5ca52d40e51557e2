"""What one SAT observation does to a job: pure, time passed in, the ledger's Change out.

* :func:`start` begins the follow-up of a job the provider accepted (due times from
  :mod:`reconciler.sat.schedule`, counted from ``submitted_at``);
* :func:`preflight` judges the answer about a queued job before its first submission:
  already Cancelado ends it ``ok`` with that evidence and no provider call; No cancelable
  ends it ``rejected`` with the SAT's answer as the reason; No Encontrado right after
  stamping asks again, then lets it go after ``not_found_submit_after_s`` (so does a SAT
  that does not answer: the SAT being down never stops submissions for long);
* :func:`follow` records an answer during the follow-up and plans the next ask.

Every observation is a ``sat`` event; the latest is on the job.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from reconciler import backoff
from reconciler.clock import iso, parse_iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.sat.answer import CANCELADO, NO_CANCELABLE, NO_ENCONTRADO, RECHAZADA, VIGENTE, Answer
from reconciler.sat.expression import expression
from reconciler.sat.schedule import Cadence, next_due, preflight_due, settled_after, window_end

SOURCE = "sat"


@dataclass(frozen=True, slots=True)
class Retry:
    """Backoff after a transient failure (timeout, 5xx, garbage)."""

    base_s: float = 60.0
    max_s: float = 3600.0


def question(job: Job) -> str | None:
    """The expression to ask about ``job``; None when the job lacks the receiver's RFC or the total."""
    if not job.rfc_receptor or not job.total:
        return None
    return expression(job.uuid, job.rfc_emisor, job.rfc_receptor, job.total, job.sello)


def _observed(answer: Answer, now: datetime) -> dict[str, Any]:
    """The columns an answer sets (a 601 keeps its CodigoEstatus as the Estado, so it is shown)."""
    estado = answer.estado
    if estado is None and answer.codigo_estatus:
        estado = answer.codigo_estatus
    return {
        "sat_estado": estado,
        "sat_es_cancelable": answer.es_cancelable,
        "sat_estatus_cancelacion": answer.estatus_cancelacion,
        "sat_checked_at": iso(now),
        "sat_failures": 0,
    }


def _event(answer: Answer, **extra: Any) -> tuple[str, dict[str, Any]]:
    detail = {k: v for k, v in answer.as_dict().items() if v is not None}
    if answer.unknown_values:
        detail["unknown"] = answer.unknown_values
    detail.update(extra)
    return ("sat", detail)


def _failure(job: Job, now: datetime, retry: Retry, rng: random.Random) -> tuple[int, str]:
    failures = job.sat_failures + 1
    return failures, iso(backoff.next_attempt(now, failures, retry.base_s, retry.max_s, rng))


def _reason(answer: Answer) -> str:
    parts = [f"Estado {answer.estado}", f"EsCancelable {answer.es_cancelable}"]
    if answer.estatus_cancelacion:
        parts.append(f"EstatusCancelacion {answer.estatus_cancelacion}")
    return "the SAT says " + ", ".join(parts) + f" ({answer.codigo_estatus})"


def start(job: Job, now: datetime, cadence: Cadence) -> Change:
    """Begin following a job the provider accepted (or start again after a requeue)."""
    assert job.submitted_at is not None
    since = parse_iso(job.submitted_at)
    columns: dict[str, Any] = {
        "sat_since": job.submitted_at,
        "sat_until": iso(window_end(since, cadence)),
        "sat_late_after": iso(settled_after(since, cadence)),
        "sat_calls": 0,
        "sat_failures": 0,
        "sat_cleared": 1,
    }
    events: list[tuple[str, dict[str, Any]]] = []
    if question(job) is None:
        columns["sat_due_at"] = None
        events.append(("sat", {"skipped": "no rfc_receptor or total on the job: the SAT cannot be asked"}))
    else:
        # The plan's first point, even when it has passed (a late start asks at once, then keeps the plan).
        due = next_due(since, min(since, now), 0, cadence)
        columns["sat_due_at"] = iso(due) if due is not None else None
    return Change(job.uuid, None, SOURCE, columns, events, require=job.state)


def preflight(
    job: Job, answer: Answer | None, now: datetime, cadence: Cadence, retry: Retry, rng: random.Random
) -> Change:
    """The preflight's verdict on a queued job (``answer`` None: the job lacks what the SAT needs)."""
    if answer is None:
        skipped = {"preflight": "skipped", "reason": "no rfc_receptor or total on the job: sent without asking the SAT"}
        return Change(job.uuid, None, SOURCE, {"sat_cleared": 1, "sat_due_at": None}, [("sat", skipped)], State.QUEUED)
    first = parse_iso(job.sat_first_at) if job.sat_first_at else now
    if not answer.usable:
        failures, retry_at = _failure(job, now, retry, rng)
        if preflight_due(first, now, cadence) is None:
            note = _event(answer, preflight="skipped", reason=f"the SAT has not answered since {iso(first)}")
            return Change(job.uuid, None, SOURCE, {"sat_cleared": 1, "sat_due_at": None}, [note], State.QUEUED)
        columns = {"sat_failures": failures, "sat_due_at": retry_at, "sat_first_at": iso(first)}
        note = _event(answer, preflight="retry", retry_at=retry_at)
        return Change(job.uuid, None, SOURCE, columns, [note], State.QUEUED)
    seen: dict[str, Any] = {**_observed(answer, now), "sat_first_at": iso(first), "sat_calls": job.sat_calls + 1}
    if answer.estado == CANCELADO:
        message = f"already cancelled at the SAT: {_reason(answer)}; not sent to the provider"
        columns = {**seen, "sat_due_at": None, "sat_cleared": 1, "message": message, "next_attempt_at": None}
        return Change(job.uuid, Trigger.CONFIRMED_OK, SOURCE, columns, [_event(answer, preflight="cancelled")])
    if answer.estado == VIGENTE and answer.es_cancelable == NO_CANCELABLE:
        message = f"not cancellable: {_reason(answer)}; not sent to the provider"
        columns = {**seen, "sat_due_at": None, "message": message, "next_attempt_at": None}
        return Change(job.uuid, Trigger.NOT_CANCELLABLE, SOURCE, columns, [_event(answer, preflight="refused")])
    if answer.estado == NO_ENCONTRADO:
        again = preflight_due(first, now, cadence)
        if again is not None:
            note = _event(answer, preflight="wait", ask_again_at=iso(again))
            return Change(job.uuid, None, SOURCE, {**seen, "sat_due_at": iso(again)}, [note], State.QUEUED)
        note = _event(answer, preflight="cleared", reason=f"the SAT has not known it since {iso(first)}; sending")
        return Change(job.uuid, None, SOURCE, {**seen, "sat_due_at": None, "sat_cleared": 1}, [note], State.QUEUED)
    return Change(
        job.uuid,
        None,
        SOURCE,
        {**seen, "sat_due_at": None, "sat_cleared": 1},
        [_event(answer, preflight="cleared")],
        State.QUEUED,
    )


def follow(job: Job, answer: Answer, now: datetime, cadence: Cadence, retry: Retry, rng: random.Random) -> Change:
    """Record one follow-up answer and plan the next ask (None: the SAT's word is final or the budget is spent)."""
    if not answer.usable:
        failures, retry_at = _failure(job, now, retry, rng)
        failed = {"sat_failures": failures, "sat_due_at": retry_at}
        return Change(job.uuid, None, SOURCE, failed, [_event(answer, retry_at=retry_at)], require=job.state)
    calls = job.sat_calls + 1
    columns: dict[str, Any] = {**_observed(answer, now), "sat_calls": calls}
    final = (
        answer.estado == CANCELADO
        or answer.invalid_expression
        or (
            answer.estado == VIGENTE
            and (answer.estatus_cancelacion == RECHAZADA or answer.es_cancelable == NO_CANCELABLE)
        )
    )
    due: datetime | None = None
    if not final and job.sat_since is not None:
        due = next_due(parse_iso(job.sat_since), now, calls, cadence)
    columns["sat_due_at"] = iso(due) if due is not None else None
    event = _event(answer, next_at=columns["sat_due_at"], calls=calls)
    if answer.estado == CANCELADO and job.state == State.AWAITING:
        columns["message"] = f"cancelled at the SAT: {_reason(answer)}"
        return Change(job.uuid, Trigger.CONFIRMED_OK, SOURCE, columns, [event])
    return Change(job.uuid, None, SOURCE, columns, [event], require=job.state)

"""The SAT dimension: one view per invoice, the order of precedence, the check levels."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from reconciler.jobs.states import State
from reconciler.sat.answer import (
    CANCELADO_SIN,
    CON_ACEPTACION,
    EN_PROCESO,
    NO_CANCELABLE,
    PLAZO_VENCIDO,
    RECHAZADA,
    SIN_ACEPTACION,
)
from reconciler.sat.verdict import CRITICAL, WARN, SatFacts, View, facts_of, judge
from tests.sat.test_decide import job

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
PAST = "2026-01-09T00:00:00.000Z"
FUTURE = "2026-01-11T00:00:00.000Z"
AT = "2026-01-08T00:00:00.000Z"


def f(
    state: str,
    estado: str | None = None,
    cancelable: str | None = None,
    estatus: str | None = None,
    until: str | None = FUTURE,
    late: str | None = FUTURE,
    checked: str | None = AT,
) -> SatFacts:
    return SatFacts(state, estado, cancelable, estatus, checked if estado or checked != AT else None, until, late)


@pytest.mark.parametrize(
    ("facts", "view"),
    [
        (SatFacts("queued"), View.TO_SEND),
        (SatFacts("awaiting"), View.NOT_ASKED),
        (SatFacts("ok"), View.NOT_ASKED),
        (f("queued", "Vigente", SIN_ACEPTACION), View.TO_SEND),
        (f("awaiting", "Vigente", SIN_ACEPTACION), View.ACCEPTED),
        (f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO), View.RECEIVER),
        (f("ok", "Cancelado", SIN_ACEPTACION, CANCELADO_SIN), View.CANCELLED),
        (f("error", "Cancelado"), View.CANCELLED),
        (f("awaiting", "Vigente", CON_ACEPTACION, RECHAZADA), View.RECEIVER_REJECTED),
        (f("ok", "Vigente", CON_ACEPTACION, RECHAZADA, until=PAST, late=PAST), View.RECEIVER_REJECTED),
        (f("queued", "Vigente", NO_CANCELABLE), View.NOT_CANCELLABLE),
        (f("rejected", "Vigente", NO_CANCELABLE), View.NOT_CANCELLABLE),
        (f("ok", "Vigente", CON_ACEPTACION, EN_PROCESO, until=PAST, late=PAST), View.CONTRADICTION),
        (f("ok", "Vigente", SIN_ACEPTACION, until=PAST, late=PAST), View.CONTRADICTION),
        (f("ok", "Vigente", SIN_ACEPTACION, until=PAST, late=FUTURE), View.ACCEPTED),
        (f("ok", "Vigente", CON_ACEPTACION, EN_PROCESO, until=PAST, late=FUTURE), View.RECEIVER),
        (f("awaiting", "No Encontrado"), View.NOT_FOUND),
        (f("awaiting", "Suspendido"), View.UNKNOWN),
        (f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO, until=PAST, late=PAST), View.LATE),
        (f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO, until=PAST, late=FUTURE), View.RECEIVER),
        (f("error", "Vigente", SIN_ACEPTACION, until=PAST, late=PAST), View.VALID),
        (f("rejected", "Vigente", SIN_ACEPTACION), View.VALID),
    ],
)
def test_each_invoice_has_one_view(facts: SatFacts, view: View) -> None:
    assert judge(facts, NOW).view is view


def test_the_receiver_view_says_until_when_and_the_levels() -> None:
    j = judge(f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO), NOW)
    assert j.cell() == f"receiver (until {FUTURE})"
    assert {View.RECEIVER_REJECTED, View.LATE} == WARN and {View.CONTRADICTION} == CRITICAL


def test_an_unparsable_time_is_never_past() -> None:
    assert judge(f("ok", "Vigente", SIN_ACEPTACION, until="garbage", late="garbage"), NOW).view is View.ACCEPTED


def test_the_facts_are_what_the_ledger_stores_on_the_job() -> None:
    stored = job(
        State.AWAITING,
        sat_estado="Vigente",
        sat_es_cancelable=CON_ACEPTACION,
        sat_estatus_cancelacion=EN_PROCESO,
        sat_checked_at="2026-01-05T10:00:00.000Z",
        sat_until="2026-01-08T09:00:00.000Z",
        sat_late_after="2026-01-10T09:00:00.000Z",
    )
    assert facts_of(stored) == SatFacts(
        "awaiting",
        "Vigente",
        CON_ACEPTACION,
        EN_PROCESO,
        "2026-01-05T10:00:00.000Z",
        "2026-01-08T09:00:00.000Z",
        "2026-01-10T09:00:00.000Z",
    )


EXACTLY = "2026-01-10T12:00:00.000Z"  # NOW itself: the margin has just run out


@pytest.mark.parametrize(
    ("facts", "cell"),
    [
        (SatFacts("submitting"), "to send"),
        (SatFacts("queued", None, None, None, AT), "to send"),  # asked, no Estado yet
        (SatFacts("error"), "not asked"),
        (f("queued", "Vigente", SIN_ACEPTACION), "to send (Vigente)"),
        (f("submitting", checked=AT), "to send"),
        (f("awaiting", "Vigente", SIN_ACEPTACION), "accepted"),
        (f("ok", "Vigente", CON_ACEPTACION, PLAZO_VENCIDO), f"accepted ({PLAZO_VENCIDO})"),
        (f("ok", "Cancelado", SIN_ACEPTACION, CANCELADO_SIN), f"cancelled ({CANCELADO_SIN})"),
        (f("error", "Cancelado"), "cancelled"),
        (
            f("awaiting", "Vigente", CON_ACEPTACION, RECHAZADA),
            "receiver rejected (invoice still valid; requeue after agreeing with the receiver)",
        ),
        (f("queued", "Vigente", NO_CANCELABLE), "not cancellable (the SAT says No cancelable)"),
        (f("ok", "Vigente", SIN_ACEPTACION, late=PAST), f"contradiction (provider OK, SAT Vigente after {PAST})"),
        (f("ok", "Vigente", SIN_ACEPTACION, late=EXACTLY), f"contradiction (provider OK, SAT Vigente after {EXACTLY})"),
        (f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO, late=PAST), f"late (still Vigente after {PAST})"),
        (f("awaiting", "No Encontrado", late=PAST), f"late (still No Encontrado after {PAST})"),
        (f("awaiting", "Suspendido", late=PAST), "unknown (Estado 'Suspendido')"),
        (f("ok", "No Encontrado", late=PAST), "not found"),
        (f("ok", "Vigente", CON_ACEPTACION, EN_PROCESO, late=None), f"receiver (until {FUTURE})"),
        (f("awaiting", "Vigente", CON_ACEPTACION, EN_PROCESO, until=None), "receiver"),
        (f("error", "Vigente", SIN_ACEPTACION), "valid (provider error)"),
        (f("rejected", "Vigente", CON_ACEPTACION, EN_PROCESO), f"receiver (until {FUTURE})"),
        (f("rejected", "Vigente", SIN_ACEPTACION, late=PAST), "valid (provider rejected)"),
    ],
)
def test_each_view_with_its_detail_word_for_word(facts: SatFacts, cell: str) -> None:
    assert judge(facts, NOW).cell() == cell

"""The SAT view (:func:`reconciler.sat.verdict.judge`'s ``view``) as an SQL expression over a job's columns.  Pure.

Bulk readers (``export``) hand this expression to the ledger's row shapes
(:mod:`reconciler.ledger.reading`) instead of judging each job in Python.  The CASE below is
:func:`judge` test for test, in its order (its precedence); tests/sat/test_sqlview.py holds
the two together over every combination of the inputs.

Whether ``sat_late_after`` is past is the one test that needs ``now``: a time in the ledger's own
form (``YYYY-MM-DDTHH:MM:SS.mmmZ``) after ``now`` is not past, decided in SQL; any other value (a
past time, which only a late or contradicting job reaches, or text in another form) asks the
pure function itself through :data:`PAST`, which the caller registers on the connection as
:func:`past_at` bound to ``now``.
"""

from __future__ import annotations

from datetime import datetime

from reconciler.clock import iso
from reconciler.sat.answer import CANCELADO, EN_PROCESO, ESTADOS, NO_CANCELABLE, NO_ENCONTRADO, RECHAZADA, VIGENTE
from reconciler.sat.verdict import View, _past

PAST = "reconciler_sat_past"  # the SQL function: is this sat_late_after past at the reading's `now`?
_ISO = "[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]T[0-9][0-9]:[0-9][0-9]:[0-9][0-9].[0-9][0-9][0-9]Z"


def _text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def _among(values: tuple[str, ...]) -> str:
    return "(" + ", ".join(_text(v) for v in values) + ")"


def _is_past(column: str, now: datetime) -> str:
    """SQL for ``_past(column, now)``: NULL and '' are not past, nor a ledger-form time after ``now``."""
    return (
        f"(coalesce({column}, '') != '' AND CASE WHEN {column} GLOB '{_ISO}' AND {column} > '{iso(now)}' THEN 0"
        f" ELSE {PAST}({column}) END)"
    )


def view_sql(now: datetime) -> str:
    """An SQL expression over the jobs table equal to ``str(judge(facts_of(job), now).view)``."""
    unsent = _among(("queued", "submitting"))
    estado, cancelable, estatus = "sat_estado", "sat_es_cancelable", "sat_estatus_cancelacion"
    past = _is_past("sat_late_after", now)
    cases = (
        (f"sat_checked_at IS NULL AND state IN {unsent}", View.TO_SEND),
        ("sat_checked_at IS NULL", View.NOT_ASKED),
        (f"{estado} = {_text(CANCELADO)}", View.CANCELLED),
        (f"{estado} = {_text(VIGENTE)} AND {estatus} = {_text(RECHAZADA)}", View.RECEIVER_REJECTED),
        (f"{estado} = {_text(VIGENTE)} AND {cancelable} = {_text(NO_CANCELABLE)}", View.NOT_CANCELLABLE),
        (f"state = 'ok' AND {estado} = {_text(VIGENTE)} AND {past}", View.CONTRADICTION),
        (f"state IN {unsent}", View.TO_SEND),
        (f"state = 'awaiting' AND {estado} IN {_among((VIGENTE, NO_ENCONTRADO))} AND {past}", View.LATE),
        (f"{estado} = {_text(NO_ENCONTRADO)}", View.NOT_FOUND),
        (f"{estado} IS NULL OR {estado} NOT IN {_among(ESTADOS)}", View.UNKNOWN),
        (f"{estatus} = {_text(EN_PROCESO)}", View.RECEIVER),
        ("state IN ('error', 'rejected')", View.VALID),
    )
    whens = " ".join(f"WHEN {test} THEN {_text(str(view))}" for test, view in cases)
    return f"CASE {whens} ELSE {_text(str(View.ACCEPTED))} END"


def past_at(now: datetime, when: str | None) -> bool:
    """The function :data:`PAST` names: whether ``when`` is past at ``now`` (the pure function's test)."""
    return _past(when, now)

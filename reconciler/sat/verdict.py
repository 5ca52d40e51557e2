"""The SAT's word as a second dimension beside the job's state: what an operator sees per invoice.  Pure.

The six job states say how our dealing with the provider went; :func:`judge` says where
the invoice stands at the SAT, from the latest answer stored on the job and ``now``:

=================  ==============================================================  ========
view               meaning                                                         check
=================  ==============================================================  ========
to send            not sent yet (queued, or being sent)                            -
not asked          sent, the SAT not asked yet (or ``[sat]`` is off)               -
accepted           the SAT says Vigente and nothing pending yet: request received  -
receiver           En proceso: waiting for the receiver's answer until ``until``   -
cancelled          the SAT says Cancelado: the invoice is cancelled                -
receiver rejected  the receiver rejected: the invoice is still valid               WARNING
not cancellable    the SAT says No cancelable (related documents, say)             -
not found          the SAT does not know the CFDI (yet, or the data is wrong)      -
late               past the window with margin, still not Cancelado                WARNING
contradiction      the provider said OK, the SAT says Vigente past the window      CRITICAL
                   (with margin: the window opens when the SAT receives the request,
                   which may be well after the provider accepted it)
valid              the provider refused or failed; the invoice stays valid         -
unknown            the SAT answered a value this program does not know             -
=================  ==============================================================  ========
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING

from reconciler.clock import parse_iso
from reconciler.sat.answer import CANCELADO, EN_PROCESO, ESTADOS, NO_CANCELABLE, NO_ENCONTRADO, RECHAZADA, VIGENTE

if TYPE_CHECKING:
    from reconciler.jobs.records import Job

_UNSENT = ("queued", "submitting")


class View(StrEnum):
    TO_SEND = "to send"
    NOT_ASKED = "not asked"
    ACCEPTED = "accepted"
    RECEIVER = "receiver"
    CANCELLED = "cancelled"
    RECEIVER_REJECTED = "receiver rejected"
    NOT_CANCELLABLE = "not cancellable"
    NOT_FOUND = "not found"
    LATE = "late"
    CONTRADICTION = "contradiction"
    VALID = "valid"
    UNKNOWN = "unknown"


WARN = frozenset({View.RECEIVER_REJECTED, View.LATE})
CRITICAL = frozenset({View.CONTRADICTION})


@dataclass(frozen=True, slots=True)
class SatFacts:
    """What the ledger stores about a job's SAT dimension (``until``/``late_after``: UTC ISO text)."""

    state: str
    estado: str | None = None
    es_cancelable: str | None = None
    estatus_cancelacion: str | None = None
    checked_at: str | None = None
    until: str | None = None
    late_after: str | None = None


@dataclass(frozen=True, slots=True)
class Judgement:
    view: View
    detail: str = ""

    def cell(self) -> str:
        """The SAT column's text: the view and its detail."""
        return f"{self.view} ({self.detail})" if self.detail else str(self.view)


def _past(when: str | None, now: datetime) -> bool:
    if not when:
        return False
    try:
        return now >= parse_iso(when)
    except ValueError:
        return False


def judge(f: SatFacts, now: datetime) -> Judgement:
    """Where the invoice stands at the SAT; the order of the tests is the precedence."""
    if f.checked_at is None:
        return Judgement(View.TO_SEND if f.state in _UNSENT else View.NOT_ASKED)
    if f.estado == CANCELADO:
        return Judgement(View.CANCELLED, f.estatus_cancelacion or "")
    if f.estado == VIGENTE and f.estatus_cancelacion == RECHAZADA:
        return Judgement(View.RECEIVER_REJECTED, "invoice still valid; requeue after agreeing with the receiver")
    if f.estado == VIGENTE and f.es_cancelable == NO_CANCELABLE:
        return Judgement(View.NOT_CANCELLABLE, f"the SAT says {NO_CANCELABLE}")
    if f.state == "ok" and f.estado == VIGENTE and _past(f.late_after, now):
        return Judgement(View.CONTRADICTION, f"provider OK, SAT Vigente after {f.late_after}")
    if f.state in _UNSENT:
        return Judgement(View.TO_SEND, f.estado or "")
    if f.state == "awaiting" and f.estado in (VIGENTE, NO_ENCONTRADO) and _past(f.late_after, now):
        return Judgement(View.LATE, f"still {f.estado} after {f.late_after}")
    if f.estado == NO_ENCONTRADO:
        return Judgement(View.NOT_FOUND)
    if f.estado not in ESTADOS:
        return Judgement(View.UNKNOWN, f"Estado {f.estado!r}")
    if f.estatus_cancelacion == EN_PROCESO:
        return Judgement(View.RECEIVER, f"until {f.until}" if f.until else "")
    if f.state in ("error", "rejected"):
        return Judgement(View.VALID, f"provider {f.state}")
    return Judgement(View.ACCEPTED, f.estatus_cancelacion or "")


def facts_of(job: Job) -> SatFacts:
    """The SAT dimension's inputs as the ledger stores them on a job."""
    return SatFacts(
        str(job.state),
        job.sat_estado,
        job.sat_es_cancelable,
        job.sat_estatus_cancelacion,
        job.sat_checked_at,
        job.sat_until,
        job.sat_late_after,
    )

"""The ledger's records as frozen dataclasses: what reads return and what writes take."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from reconciler.jobs.states import TERMINAL, State, Trigger
from reconciler.jobs.validation import JobSpec

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)  # one, not one per call


def dumps(value: Any) -> str:
    """Compact JSON, as event details are stored (and as batches travel to SQLite)."""
    return _ENCODER.encode(value)


@dataclass(frozen=True, slots=True)
class Job:
    """One cancellation job as stored."""

    uuid: str
    rfc_emisor: str
    motivo: str
    folio_sustitucion: str | None
    state: State
    code: int | None
    message: str | None
    attempts: int
    next_attempt_at: str | None
    created_at: str
    submitted_at: str | None
    resolved_at: str | None
    updated_at: str
    claim: str | None
    check_at: str | None
    checks: int
    overdue_at: str | None
    has_acuse: bool
    acuse_sha256: str | None = None
    rfc_receptor: str | None = None
    total: str | None = None
    sello: str | None = None
    sat_estado: str | None = None
    sat_es_cancelable: str | None = None
    sat_estatus_cancelacion: str | None = None
    sat_checked_at: str | None = None
    sat_due_at: str | None = None
    sat_calls: int = 0
    sat_failures: int = 0
    sat_first_at: str | None = None
    sat_since: str | None = None
    sat_until: str | None = None
    sat_late_after: str | None = None
    sat_cleared: bool = False

    @classmethod
    def from_row(cls, row: Sequence[Any]) -> Job:
        values = list(row)
        values[4] = State(values[4])
        values[17] = bool(values[17])
        if len(values) > 33:
            values[33] = bool(values[33])
        return cls(*values)

    @property
    def overdue(self) -> bool:
        return self.overdue_at is not None and self.state not in TERMINAL

    @property
    def spec(self) -> JobSpec:
        return JobSpec(
            self.uuid, self.rfc_emisor, self.motivo, self.folio_sustitucion, self.rfc_receptor, self.total, self.sello
        )

    def as_dict(self) -> dict[str, Any]:
        """The public JSON shape of a job (``status --json``, exports)."""
        return {
            "uuid": self.uuid,
            "rfc_emisor": self.rfc_emisor,
            "motivo": self.motivo,
            "folio_sustitucion": self.folio_sustitucion,
            "state": str(self.state),
            "code": self.code,
            "message": self.message,
            "attempts": self.attempts,
            "created_at": self.created_at,
            "submitted_at": self.submitted_at,
            "resolved_at": self.resolved_at,
            "overdue": self.overdue,
            "next_attempt_at": self.next_attempt_at,
            "has_acuse": self.has_acuse,
            "acuse_sha256": self.acuse_sha256,
            "rfc_receptor": self.rfc_receptor,
            "total": self.total,
            "sat_estado": self.sat_estado,
            "sat_es_cancelable": self.sat_es_cancelable,
            "sat_estatus_cancelacion": self.sat_estatus_cancelacion,
            "sat_checked_at": self.sat_checked_at,
            "sat_due_at": self.sat_due_at,
            "sat_until": self.sat_until,
            "sat_calls": self.sat_calls,
        }


@dataclass(frozen=True, slots=True)
class Event:
    at: str
    kind: str
    source: str
    detail: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        return {"at": self.at, "kind": self.kind, "source": self.source, "detail": self.detail}


@dataclass(frozen=True, slots=True)
class Change:
    """A change to one job: fire ``trigger`` (or none), set columns if it applies, record events regardless.

    With ``trigger=None`` the columns are set only while the job is in ``require``.
    """

    uuid: str
    trigger: Trigger | None
    source: str
    set: Mapping[str, Any] = field(default_factory=dict)
    events: Sequence[tuple[str, Mapping[str, Any]]] = ()
    require: State | None = None


@dataclass(frozen=True, slots=True)
class AddResult:
    added: int
    existing: list[str]

"""The ledger's records as frozen dataclasses: what reads return and what writes take."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, Protocol

from reconciler.jobs.states import TERMINAL, State, Trigger
from reconciler.jobs.validation import JobSpec

_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=str)  # one, not one per call


class Row(Protocol):
    """A row whose columns have names: ``sqlite3.Row``."""

    def keys(self) -> list[str]: ...

    def __getitem__(self, key: int, /) -> Any: ...


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
    sat_cleared: int = 0  # 1: the SAT preflight let the job go (or it was skipped)

    #: The column names a row must carry (:meth:`from_rows`): the fields' names, in order.
    COLUMNS: ClassVar[tuple[str, ...]]

    @classmethod
    def from_rows(cls, rows: Iterable[Row]) -> list[Job]:
        """The jobs in rows of one query, read by column name, whatever the columns' order.

        Where each field is is looked up by name once, in the first row's columns, not per
        row: ``sqlite3.Row`` finds a name by a linear scan, which would triple the cost of
        reading a job (``export`` reads them all).
        """
        jobs: list[Job] = []
        take: Callable[[Row], Any] | None = None
        for row in rows:
            if take is None:
                take = _by_name(row.keys(), cls.COLUMNS)
            values = list(take(row))
            values[_STATE] = State(values[_STATE])
            values[_HAS_ACUSE] = bool(values[_HAS_ACUSE])
            jobs.append(cls(*values))
        return jobs

    @classmethod
    def from_row(cls, row: Row) -> Job:
        """The job in one row read by column name."""
        return cls.from_rows([row])[0]

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


Job.COLUMNS = tuple(f.name for f in fields(Job))
_STATE, _HAS_ACUSE = Job.COLUMNS.index("state"), Job.COLUMNS.index("has_acuse")


def _by_name(names: Sequence[str], wanted: Sequence[str]) -> Callable[[Row], Any]:
    """A getter of the ``wanted`` columns, in that order, from rows whose columns are ``names``."""
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"a job row lacks the columns {', '.join(missing)}")
    return operator.itemgetter(*(list(names).index(name) for name in wanted))


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

"""Records: the public JSON shape of a job and an event (``status --json``, exports), compact JSON."""

from __future__ import annotations

import sqlite3
from dataclasses import asdict, replace

import pytest

from reconciler.jobs.records import Event, Job, dumps
from reconciler.jobs.states import State
from reconciler.jobs.validation import JobSpec

U, F = "71452784-AFC7-4BE5-8623-3BA1436D573B", "0D62B12C-BC6C-4626-E211-FC8FE727A5BC"
AT = "2026-01-01T00:00:00.000Z"
JOB = Job(U, "EKU9003173C9", "01", F, State.OK, 200, "m", 2, "n", AT, "s", "r", "u", "OK", "c", 3, "o", True, "ab")


def test_the_public_shape_of_a_job() -> None:
    """The cancellation's fields (the SAT's fields are checked with the SAT's tests)."""
    shape = JOB.as_dict()
    assert {k: v for k, v in shape.items() if not k.startswith("sat_") and k not in ("rfc_receptor", "total")} == {
        "uuid": U,
        "rfc_emisor": "EKU9003173C9",
        "motivo": "01",
        "folio_sustitucion": F,
        "state": "ok",
        "code": 200,
        "message": "m",
        "attempts": 2,
        "created_at": AT,
        "submitted_at": "s",
        "resolved_at": "r",
        "overdue": False,
        "next_attempt_at": "n",
        "has_acuse": True,
        "acuse_sha256": "ab",
    }


@pytest.mark.parametrize(
    ("state", "overdue_at", "overdue"),
    [
        (State.AWAITING, "o", True),
        (State.QUEUED, "o", True),
        (State.OK, "o", False),
        (State.REJECTED, "o", False),
        (State.AWAITING, None, False),
    ],
)
def test_overdue_only_while_unresolved(state: State, overdue_at: str | None, overdue: bool) -> None:
    job = replace(JOB, state=state, overdue_at=overdue_at)
    assert job.overdue is overdue and job.as_dict()["overdue"] is overdue


def test_the_spec_of_a_job() -> None:
    assert JOB.spec == JobSpec(U, "EKU9003173C9", "01", F)


def test_the_public_shape_of_an_event() -> None:
    assert Event(AT, "status", "chaser", {"code": 200}).as_dict() == {
        "at": AT,
        "kind": "status",
        "source": "chaser",
        "detail": {"code": 200},
    }


def test_dumps_is_compact_utf8_and_never_fails_on_odd_values() -> None:
    assert dumps({"a": [1, "ñ"], "b": None}) == '{"a":[1,"ñ"],"b":null}'
    assert dumps({"when": State.OK}) == '{"when":"ok"}'
    assert dumps({"x": object.__new__(type("Odd", (), {"__str__": lambda self: "odd"}))}) == '{"x":"odd"}'


def _rows(columns: list[str], jobs: list[Job], extra: str = "") -> list[sqlite3.Row]:
    """The jobs as rows of a real SQLite query whose columns come in ``columns`` order (plus ``extra``)."""
    db = sqlite3.connect(":memory:")
    db.row_factory = sqlite3.Row
    names = [*columns, *([extra] if extra else [])]
    db.execute(f"CREATE TABLE t ({', '.join(names)})")
    for job in jobs:
        values = {**asdict(job), "state": str(job.state), "has_acuse": int(job.has_acuse)}
        marks = ", ".join("?" * len(names))
        db.execute(f"INSERT INTO t VALUES ({marks})", [values.get(n, "x") for n in names])  # noqa: S608
    return list(db.execute("SELECT * FROM t"))


def test_jobs_are_read_by_column_name_whatever_the_order() -> None:
    other = replace(JOB, uuid=F, state=State.AWAITING, has_acuse=False, code=None, sat_calls=4)
    for columns in (list(Job.COLUMNS), list(reversed(Job.COLUMNS))):
        jobs = Job.from_rows(_rows(columns, [JOB, other], extra="unrelated"))
        assert jobs == [JOB, other]
        assert [type(j.state) for j in jobs] == [State, State] and [j.has_acuse for j in jobs] == [True, False]
    assert Job.from_row(_rows(list(reversed(Job.COLUMNS)), [other])[0]) == other
    assert Job.from_rows([]) == []


def test_a_row_without_a_jobs_columns_is_refused_naming_them() -> None:
    columns = [c for c in Job.COLUMNS if c not in ("state", "sello")]
    with pytest.raises(ValueError) as caught:
        Job.from_rows(_rows(columns, [JOB]))
    assert str(caught.value) == "a job row lacks the columns state, sello"

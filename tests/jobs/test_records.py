"""Records: the public JSON shape of a job and an event (``status --json``, exports), compact JSON."""

from __future__ import annotations

from dataclasses import replace

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

"""The pure outbox decisions: what an attempt means, who wants what, what a hook sees."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta

import pytest

from reconciler import backoff
from reconciler.clock import iso
from reconciler.events.outbox import TYPES, Attempt, Next, OutboxEvent, Verdict, after_attempt, wants

NOW = datetime(2026, 12, 3, 12, 0, tzinfo=UTC)


def _next(attempt: Attempt, attempts: int = 1, age_s: float = 0.0, horizon_s: float = 3600.0) -> object:
    return after_attempt(
        attempt,
        attempts,
        iso(NOW - timedelta(seconds=age_s)),
        NOW,
        base_s=10,
        cap_s=100,
        horizon_s=horizon_s,
        rng=random.Random(7),
    )


@pytest.mark.parametrize(
    ("attempt", "verdict"),
    [
        (Attempt(ok=True, status=204), Verdict.DELIVERED),
        (Attempt(ok=False, status=410, gone=True), Verdict.GONE),
        (Attempt(ok=False, status=500), Verdict.RETRY),
        (Attempt(ok=False, error="timed out"), Verdict.RETRY),
        (Attempt(ok=False, status=302, error="redirect"), Verdict.RETRY),
    ],
)
def test_an_attempt_decides_the_delivery(attempt: Attempt, verdict: Verdict) -> None:
    assert _next(attempt).verdict is verdict  # type: ignore[attr-defined]


@pytest.mark.parametrize("attempts", [1, 2, 3, 5, 8, 30])
def test_retries_back_off_within_base_and_cap(attempts: int) -> None:
    nxt = _next(Attempt(ok=False, status=503), attempts, horizon_s=10 * 86400)
    delay = (nxt.next_at - NOW).total_seconds()  # type: ignore[attr-defined]
    nominal = min(100, 10 * 2 ** (attempts - 1))
    assert nominal / 2 <= delay <= nominal


def test_past_the_horizon_a_delivery_fails_for_good() -> None:
    assert _next(Attempt(ok=False, status=503), 3, age_s=3590, horizon_s=3600).verdict is Verdict.FAILED  # type: ignore[attr-defined]
    assert _next(Attempt(ok=False, status=503), 1, age_s=0, horizon_s=3600).verdict is Verdict.RETRY  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("filters", "event_type", "wanted"),
    [
        ((), "job.ok", True),
        (("job.ok",), "job.ok", True),
        (("job.ok",), "job.error", False),
        (("job.*",), "job.sat", True),
        (("job.o*",), "job.ok", True),
        (("job.o*",), "job.error", False),
    ],
)
def test_filters(filters: tuple[str, ...], event_type: str, wanted: bool) -> None:
    assert wants(filters, event_type) is wanted


def test_a_hook_gets_the_main_fields_on_one_line_each() -> None:
    payload = {
        "uuid": "U",
        "rfc_emisor": "AAA010101AAA",
        "old_state": "queued",
        "new_state": "ok",
        "code": 201,
        "message": "line one\nline two",
    }
    event = OutboxEvent(5, "evt_x", "2026-12-03T12:00:00.000Z", "job.ok", "U", payload)
    env = event.environment()
    assert env["RECONCILER_EVENT_ID"] == "evt_x"
    assert env["RECONCILER_EVENT_NEW_STATE"] == "ok"
    assert env["RECONCILER_EVENT_CODE"] == "201"
    assert env["RECONCILER_EVENT_MESSAGE"] == "line one\\nline two"
    body = json.loads(event.body())
    assert body == {"id": "evt_x", "seq": 5, "type": "job.ok", "timestamp": event.at, "data": payload}


def test_the_types_are_those_the_issue_names() -> None:
    assert set(TYPES) == {
        "job.queued",
        "job.awaiting",
        "job.ok",
        "job.error",
        "job.rejected",
        "job.sat",
        "job.conflict",
    }


@pytest.mark.parametrize(
    ("payload", "data"),
    [
        ('{"uuid": "U", "new_state": "ok"}', {"uuid": "U", "new_state": "ok"}),
        ("not json", {"raw": "not json"}),  # a row the ledger never writes, shown rather than lost
        ("[1, 2]", {"raw": [1, 2]}),
        ('"text"', {"raw": "text"}),
        ("", {"raw": ""}),
    ],
)
def test_a_row_becomes_an_event_whatever_its_payload(payload: str, data: dict[str, object]) -> None:
    event = OutboxEvent.from_row(9, "evt_9", "2026-12-03T12:00:00.000Z", "job.ok", "U", payload)
    assert event == OutboxEvent(9, "evt_9", "2026-12-03T12:00:00.000Z", "job.ok", "U", data)
    assert event.as_dict() == {
        "seq": 9,
        "id": "evt_9",
        "at": "2026-12-03T12:00:00.000Z",
        "type": "job.ok",
        "uuid": "U",
        **data,
    }


def test_a_hook_gets_every_field_empty_when_missing_and_controls_escaped() -> None:
    event = OutboxEvent(7, "evt_7", "2026-12-03T12:00:00.000Z", "job.sat", None, {"message": "a\r\nb\x00" + "x" * 2000})
    assert event.environment() == {
        "RECONCILER_EVENT_ID": "evt_7",
        "RECONCILER_EVENT_SEQ": "7",
        "RECONCILER_EVENT_TYPE": "job.sat",
        "RECONCILER_EVENT_AT": "2026-12-03T12:00:00.000Z",
        "RECONCILER_EVENT_UUID": "",
        "RECONCILER_EVENT_RFC_EMISOR": "",
        "RECONCILER_EVENT_OLD_STATE": "",
        "RECONCILER_EVENT_NEW_STATE": "",
        "RECONCILER_EVENT_CODE": "",
        "RECONCILER_EVENT_MESSAGE": ("a\\r\\nb\\0" + "x" * 2000)[:1000],
    }


def test_the_body_is_compact_sorted_utf8_json() -> None:
    event = OutboxEvent(1, "evt_1", "2026-12-03T12:00:00.000Z", "job.ok", "U", {"z": 1, "message": "ñ"})
    assert (
        event.body()
        == (
            '{"data":{"message":"ñ","z":1},"id":"evt_1","seq":1,"timestamp":"2026-12-03T12:00:00.000Z","type":"job.ok"}'
        ).encode()
    )


@pytest.mark.parametrize(
    ("attempt", "shown"),
    [
        (Attempt(ok=False, status=503), "HTTP 503"),
        (Attempt(ok=False, status=503, error="connection reset"), "connection reset"),
        (Attempt(ok=False, error=""), "failed"),
        (Attempt(ok=False), "failed"),
        (Attempt(ok=False, status=0), "HTTP 0"),
    ],
)
def test_an_attempt_describes_itself(attempt: Attempt, shown: str) -> None:
    assert attempt.describe() == shown


def test_the_retry_time_is_the_backoff_and_no_try_is_planned_past_the_horizon() -> None:
    nxt = _next(Attempt(ok=False, status=503), 2, horizon_s=3600)
    assert nxt == Next(Verdict.RETRY, NOW + timedelta(seconds=backoff.delay(2, 10, 100, random.Random(7))))
    delay = backoff.delay(1, 10, 100, random.Random(7))
    # a try just before the horizon is still planned; just after it, the delivery has failed
    assert _next(Attempt(ok=False, status=503), 1, age_s=3600 - delay - 0.01) == Next(
        Verdict.RETRY, NOW + timedelta(seconds=delay)
    )
    assert _next(Attempt(ok=False, status=503), 1, age_s=3600 - delay + 0.01).verdict is Verdict.FAILED  # type: ignore[attr-defined]

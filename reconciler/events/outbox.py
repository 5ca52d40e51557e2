"""What an outbox event is and what a delivery attempt's result does: pure, time passed in.

The ledger writes an outbox row in the same transaction as every state change, SAT
observation and conflict (SQLite triggers, see :mod:`reconciler.ledger.schema`), so a
crash can neither lose nor invent one.  This module shapes those rows into the JSON a
receiver gets and decides, from an attempt's result, whether a delivery is done, is
tried again (and when), or has failed for good.
"""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from reconciler import backoff
from reconciler.clock import parse_iso

# The types the ledger writes.  ``job.<state>`` follows the job state table; a SAT
# observation is ``job.sat``; a conflict (a reply or notification that contradicts the
# ledger) is ``job.conflict``.
JOB_STATES = ("queued", "awaiting", "ok", "error", "rejected")
TYPES: tuple[str, ...] = (*(f"job.{s}" for s in JOB_STATES), "job.sat", "job.conflict")
# Environment variables a command hook gets, besides the JSON on its stdin.
_ENV_FIELDS = ("uuid", "rfc_emisor", "old_state", "new_state", "code", "message")


@dataclass(frozen=True, slots=True)
class OutboxEvent:
    """One committed outbox row: ``seq`` orders the feed, ``id`` is the receivers' idempotency key."""

    seq: int
    id: str
    at: str
    type: str
    uuid: str | None
    payload: dict[str, Any]

    @classmethod
    def from_row(cls, seq: int, id_: str, at: str, type_: str, uuid: str | None, payload: str) -> OutboxEvent:
        try:
            data = json.loads(payload)
        except ValueError:
            data = {"raw": payload}
        return cls(seq, id_, at, type_, uuid, data if isinstance(data, dict) else {"raw": data})

    def body(self) -> bytes:
        """The JSON a webhook POSTs and a hook reads on stdin (Standard Webhooks' type/timestamp/data shape)."""
        doc = {"id": self.id, "seq": self.seq, "type": self.type, "timestamp": self.at, "data": self.payload}
        return json.dumps(doc, ensure_ascii=False, separators=(",", ":"), sort_keys=True).encode()

    def as_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "at": self.at, "type": self.type, "uuid": self.uuid, **self.payload}

    def environment(self) -> dict[str, str]:
        """``RECONCILER_EVENT_*`` for a command hook: the main fields, one line each."""
        env = {
            "RECONCILER_EVENT_ID": self.id,
            "RECONCILER_EVENT_SEQ": str(self.seq),
            "RECONCILER_EVENT_TYPE": self.type,
        }
        env["RECONCILER_EVENT_AT"] = self.at
        for field in _ENV_FIELDS:
            value = self.payload.get(field)
            env[f"RECONCILER_EVENT_{field.upper()}"] = "" if value is None else _one_line(str(value))
        return env


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\x00", "\\0")[:1000]


def wants(filters: tuple[str, ...], event_type: str) -> bool:
    """Whether an endpoint subscribed to ``filters`` (empty: everything) gets ``event_type``.

    A filter is an exact type or a prefix ending in ``*`` (``job.*``).
    """
    if not filters:
        return True
    return any(event_type == f or (f.endswith("*") and event_type.startswith(f[:-1])) for f in filters)


class Verdict(StrEnum):
    DELIVERED = "delivered"
    RETRY = "retry"
    FAILED = "failed"  # the horizon has passed: no more attempts
    GONE = "gone"  # HTTP 410: the receiver asks us to stop; the endpoint is disabled


@dataclass(frozen=True, slots=True)
class Attempt:
    """What one try at delivering returned: an HTTP status or hook exit code, or an error text."""

    ok: bool
    status: int | None = None
    error: str | None = None
    gone: bool = False

    def describe(self) -> str:
        if self.error:
            return self.error
        return f"HTTP {self.status}" if self.status is not None else "failed"


@dataclass(frozen=True, slots=True)
class Next:
    verdict: Verdict
    next_at: datetime | None = None


def after_attempt(
    attempt: Attempt,
    attempts: int,
    event_at: str,
    now: datetime,
    *,
    base_s: float,
    cap_s: float,
    horizon_s: float,
    rng: random.Random,
) -> Next:
    """What ``attempt`` (the ``attempts``-th, 1-based) means: done, again at some time, or failed for good.

    Retries back off exponentially with jitter from ``base_s`` up to ``cap_s``; once the next
    try would fall past ``horizon_s`` after the event was written, the delivery has failed.
    """
    if attempt.ok:
        return Next(Verdict.DELIVERED)
    if attempt.gone:
        return Next(Verdict.GONE)
    when = backoff.next_attempt(now, attempts, base_s, cap_s, rng)
    if when > parse_iso(event_at) + timedelta(seconds=horizon_s):
        return Next(Verdict.FAILED)
    return Next(Verdict.RETRY, when)

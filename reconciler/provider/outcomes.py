"""What a provider reply does to a job, as pure functions: reply + job -> :class:`Decision`.

The daemon makes the calls and applies the changes; the decisions live here, with
time passed in (``now``, and ``later``: when to try again after a transient answer,
the backoff the caller drew).  A :class:`Decision` says everything a reply means: the
job's :class:`Change`, which total it counts in, whether it opens the circuit breaker
or proves the credentials, and the warning to log.  Two rules about evidence:

* a ``getStatusCancelacionAsincrona`` 200 resolves a job only per the verdict on
  its acuse (:mod:`reconciler.provider.acuse`): accepted -> ``ok`` with the acuse stored
  byte-exact and its SHA-256; refused -> ``error`` with the SAT's code and meaning;
  anything else -> the job stays ``awaiting``, a ``conflict`` event says why, and
  the next check comes later with backoff;
* a ``cancelarAsincrono`` 200 whose ``mensaje`` names another UUID is not an
  acceptance (:func:`cancel_names_another`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from reconciler.clock import iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.provider.acuse import sha256
from reconciler.provider.codes import Outcome, StatusOutcome

if TYPE_CHECKING:
    from reconciler.provider.soap import Reply, StatusReply

Tally = Literal["accepted", "rejected", "retried", "confirmed", "requeued"]
"""Which of the run's totals (:class:`reconciler.daemon.totals.Totals`) a reply counts in."""


@dataclass(frozen=True, slots=True)
class Decision:
    """Everything one provider reply means.

    ``trip`` is the meaning to record when the reply opens the circuit breaker (an
    account-level code), ``proves`` whether it shows the credentials work (any coded
    answer but an account-level one), ``warning`` a line to log about the job.
    """

    change: Change
    tally: Tally | None = None
    trip: str | None = None
    proves: bool = False
    warning: str | None = None


# Five hyphen-joined runs of letters and digits of any script: a look-alike UUID (U+FB00 is one
# character for "ff") is still a UUID to compare, and must then be this job's, in ASCII.
_UUID_SHAPED = re.compile(r"[^\W_]+(?:-[^\W_]+){4}")


def cancel_names_another(uuid: str, message: str) -> str | None:
    """Why a ``cancelarAsincrono`` 200's ``mensaje`` is not an acceptance of ``uuid``, or None when it is.

    The provider's page says a 200's ``mensaje`` is the UUID.  Fine: empty, or this UUID (ASCII,
    any case), optionally followed by ``|motivo|folio``.  Not fine: a first part holding any other
    UUID-shaped token (five hyphen-joined runs of letters or digits).  Free text without one is
    accepted.
    """
    first = message.strip().split("|", 1)[0].strip()
    for found in _UUID_SHAPED.finditer(first):
        named = found.group(0)
        if not (named.isascii() and named.upper() == uuid.upper()):
            shown = repr(named)
            return f"cancelarAsincrono answered 200 naming another UUID: {shown}"
    return None


def cancel_decision(job: Job, reply: Reply, now: datetime, later: datetime, check_after_s: float) -> Decision:
    """What a ``cancelarAsincrono`` reply does to ``job``.

    Accepted: ``awaiting``, first status check ``check_after_s`` from ``now``.  Rejected:
    ``error`` for good.  An account-level code opens the breaker and puts the job back in the
    queue due ``now`` (nothing is sent while the breaker is open).  Anything else, or a 200
    naming another UUID: retry at ``later``.
    """
    c = reply.classification
    meaning = c.meaning
    outcome = c.outcome
    base: dict[str, Any] = {"code": reply.code, "message": reply.message[:500]}
    mismatch = cancel_names_another(job.uuid, reply.message) if reply.code == 200 else None
    if mismatch is not None:
        # Not an acceptance of this job (a reply meant for another request?): retry; a 701 then proves it.
        outcome, meaning = Outcome.TRANSIENT, mismatch
    event = (
        "reply",
        {"op": reply.operation, **base, "outcome": str(outcome), "meaning": meaning},
    )
    if mismatch is not None:
        conflict = ("conflict", {"reason": mismatch, "code": reply.code})
        change = Change(
            job.uuid, Trigger.RETRY, "submitter", {**base, "next_attempt_at": iso(later)}, [event, conflict]
        )
        return Decision(change, "retried", warning=f"{mismatch}; retrying later")
    if outcome == Outcome.ACCEPTED:
        check_at = iso(now + timedelta(seconds=check_after_s))
        fields = {**base, "submitted_at": iso(now), "check_at": check_at, "next_attempt_at": None}
        return Decision(Change(job.uuid, Trigger.ACCEPTED, "submitter", fields, [event]), "accepted", proves=True)
    if outcome == Outcome.REJECTED:
        change = Change(job.uuid, Trigger.REFUSED, "submitter", {**base, "next_attempt_at": None}, [event])
        return Decision(change, "rejected", proves=True)
    if outcome == Outcome.ACCOUNT:
        change = Change(job.uuid, Trigger.RETRY, "submitter", {**base, "next_attempt_at": iso(now)}, [event])
        return Decision(change, "retried", trip=meaning)
    warning = None
    if not c.known:
        warning = f"unknown provider code {reply.code} ({reply.message[:200]}); retrying later"
    change = Change(job.uuid, Trigger.RETRY, "submitter", {**base, "next_attempt_at": iso(later)}, [event])
    return Decision(change, "retried", proves=reply.code is not None, warning=warning)


def status_decision(
    job: Job, reply: StatusReply, source: str, now: datetime, later: datetime, after_s: float
) -> Decision:
    """What a ``getStatusCancelacionAsincrona`` reply means: :func:`status_change` and what it counts as."""
    change = status_change(job, reply, source, now, later, after_s)
    tally: Tally | None = None
    if change.trigger in (Trigger.CONFIRMED_OK, Trigger.CONFIRMED_ERROR):
        tally = "confirmed"
    elif change.trigger == Trigger.LOST:
        tally = "requeued"
    trip = "account error on the status call" if reply.outcome == StatusOutcome.ACCOUNT else None
    warning = None
    if reply.outcome == StatusOutcome.DISPUTED:
        warning = f"{change.events[-1][1].get('reason')}; asking again later"
    return Decision(change, tally, trip=trip, warning=warning)


def status_event(reply: StatusReply) -> tuple[str, dict[str, Any]]:
    """The ``status`` event of one reply, with the acuse's digest and verdict when there is one."""
    detail: dict[str, Any] = {
        "op": "getStatusCancelacionAsincrona",
        "code": reply.code,
        "message": reply.message[:500],
        "outcome": str(reply.outcome),
        "acuse": reply.acuse is not None,
    }
    if reply.acuse is not None:
        detail.update(acuse_from=reply.acuse_from, acuse_sha256=sha256(reply.acuse), acuse_bytes=len(reply.acuse))
    if reply.verdict is not None:
        detail.update(reply.verdict.as_dict())
    return ("status", detail)


def status_change(job: Job, reply: StatusReply, source: str, now: datetime, later: datetime, after_s: float) -> Change:
    """The change one status reply makes to ``job``.

    ``later`` is when to ask again after a transient or disputed answer (backoff), ``after_s``
    the wait after a dropped claim.  The ACCOUNT outcome's breaker is the caller's business.
    """
    event = status_event(reply)
    base: dict[str, Any] = {"code": reply.code, "message": reply.message[:500]}
    outcome, verdict = reply.outcome, reply.verdict
    evidence: dict[str, Any] = {}
    if reply.acuse is not None and verdict is not None and (verdict.accepted or verdict.refused):
        evidence = {"acuse": reply.acuse, "acuse_sha256": sha256(reply.acuse)}
    if outcome == StatusOutcome.DONE and verdict is not None and verdict.accepted:
        return Change(job.uuid, Trigger.CONFIRMED_OK, source, {**base, **evidence, "check_at": None}, [event])
    if outcome == StatusOutcome.FAILED:
        events = [event]
        refusal = verdict is not None and verdict.refused
        if refusal and verdict is not None:
            base["message"] = verdict.reason[:500]
        if job.claim == "OK":
            by = f"the SAT's EstatusUUID {verdict.estatus}" if refusal and verdict else f"status code {reply.code}"
            events.append(("conflict", {"reason": f"OK notification contradicted by {by}", "code": reply.code}))
        return Change(job.uuid, Trigger.CONFIRMED_ERROR, source, {**base, **evidence, "check_at": None}, events)
    if outcome == StatusOutcome.NOT_FOUND and job.claim == "OK":
        # An OK notification for a transaction the provider does not have: forged, or lost.
        # Drop the claim; the chaser asks again later and resubmits if it is still unknown.
        reason = "OK notification, but the provider has no transaction for this UUID (702)"
        after = iso(now + timedelta(seconds=after_s))
        return Change(
            job.uuid,
            None,
            source,
            {**base, "claim": None, "check_at": after, "checks": job.checks + 1},
            [event, ("conflict", {"reason": reason, "code": reply.code})],
            require=State.AWAITING,
        )
    if outcome == StatusOutcome.NOT_FOUND:
        return Change(job.uuid, Trigger.LOST, source, {**base, "next_attempt_at": iso(now), "check_at": None}, [event])
    events = [event]
    if outcome in (StatusOutcome.DISPUTED, StatusOutcome.DONE):  # DONE without an accepting verdict: never ok
        why = verdict.reason if verdict is not None else "the provider says finished but sent no acuse"
        conflict: dict[str, Any] = {"reason": f"status 200 is not evidence: {why}", "code": reply.code}
        if reply.acuse is not None:
            conflict.update(acuse_from=reply.acuse_from, acuse_sha256=sha256(reply.acuse))
        events.append(("conflict", conflict))
    return Change(
        job.uuid, None, source, {"check_at": iso(later), "checks": job.checks + 1}, events, require=State.AWAITING
    )

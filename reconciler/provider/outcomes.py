"""What a provider reply does to a job, as pure functions: reply + job -> :class:`Change`.

The daemon makes the calls and applies the changes; the decisions live here, with
time passed in.  Two rules about evidence:

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
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from reconciler.clock import iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.provider.acuse import sha256
from reconciler.provider.codes import StatusOutcome

if TYPE_CHECKING:
    from reconciler.provider.soap import StatusReply

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

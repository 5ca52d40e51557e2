"""The job state machine as a pure table.

A job moves only along the edges below; a trigger with no edge from the
current state is not applied.  A terminal state never changes again: a fact
that contradicts it is a *conflict*, recorded but not applied.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cache


class State(StrEnum):
    QUEUED = "queued"
    SUBMITTING = "submitting"
    AWAITING = "awaiting"
    OK = "ok"
    ERROR = "error"
    REJECTED = "rejected"


class Trigger(StrEnum):
    CLAIM = "claim"  # the submitter takes a due job; committed before the SOAP call
    ACCEPTED = "accepted"  # provider answered 200/211/701
    REFUSED = "refused"  # provider answered a terminal rejection code
    RETRY = "retry"  # transient failure or account-level stop: back to the queue
    RECOVER = "recover"  # found in `submitting` at start: a crash interrupted the call
    CONFIRMED_OK = "confirmed_ok"  # trusted OK (confirmed by the status call when configured)
    CONFIRMED_ERROR = "confirmed_error"  # trusted ERROR notification
    LOST = "lost"  # status call says 702: the provider has no transaction, submit again
    NOTIFIED = "notified"  # a trusted OK claim arrived before our record of the acceptance
    REQUEUE = "requeue"  # an operator sends a failed job again after fixing the cause (`reconciler requeue`)
    NOT_CANCELLABLE = "not_cancellable"  # the SAT's preflight says No cancelable: never sent


TERMINAL: frozenset[State] = frozenset({State.OK, State.ERROR, State.REJECTED})
REQUEUABLE: tuple[State, ...] = (State.ERROR, State.REJECTED)

# Notifications can overtake our own record of the provider's acceptance (a crash
# between the SOAP reply and its commit), so outcomes apply from queued/submitting too.
_OUTCOME_FROM = (State.QUEUED, State.SUBMITTING, State.AWAITING)

TRANSITIONS: dict[tuple[State, Trigger], State] = {
    (State.QUEUED, Trigger.CLAIM): State.SUBMITTING,
    (State.SUBMITTING, Trigger.ACCEPTED): State.AWAITING,
    (State.SUBMITTING, Trigger.REFUSED): State.REJECTED,
    (State.SUBMITTING, Trigger.RETRY): State.QUEUED,
    (State.SUBMITTING, Trigger.RECOVER): State.QUEUED,
    (State.AWAITING, Trigger.LOST): State.QUEUED,
    (State.QUEUED, Trigger.NOTIFIED): State.AWAITING,
    (State.SUBMITTING, Trigger.NOTIFIED): State.AWAITING,
    (State.QUEUED, Trigger.NOT_CANCELLABLE): State.REJECTED,
    **{(s, Trigger.CONFIRMED_OK): State.OK for s in _OUTCOME_FROM},
    **{(s, Trigger.CONFIRMED_ERROR): State.ERROR for s in _OUTCOME_FROM},
    # The only edges out of a terminal state, taken by an operator only: nothing was cancelled
    # (the SAT refused or the provider rejected the request), so sending again is safe.  OK never moves.
    **{(s, Trigger.REQUEUE): State.QUEUED for s in REQUEUABLE},
}


@dataclass(frozen=True, slots=True)
class Step:
    """What applying a trigger means: the new state, or why nothing changes."""

    new: State | None
    conflict: bool = False
    reason: str = ""


@cache
def step(current: State, trigger: Trigger) -> Step:
    """Apply ``trigger`` to ``current``: a new state, a conflict (terminal), or a no-op (memoized: it is pure)."""
    target = TRANSITIONS.get((current, trigger))
    if target is not None:
        return Step(target)
    if current in TERMINAL:
        if (trigger, current) in {(Trigger.CONFIRMED_OK, State.OK), (Trigger.CONFIRMED_ERROR, State.ERROR)}:
            return Step(None, reason=f"already {current}")
        return Step(None, conflict=True, reason=f"{trigger} contradicts terminal state {current}")
    return Step(None, reason=f"{trigger} does not apply to {current}")

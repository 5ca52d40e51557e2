"""A mailbox notification on its way into the ledger, as data: what the mailbox saw, what it does, what was done.

The mailbox judges a message (:class:`SeenMessage`), the pure :func:`reconciler.mailbox.reconcile.plan`
turns a batch of them and the jobs they name (:class:`JobView`) into :class:`Decision` records, and
the ledger writes those and answers with :class:`Applied`. The ledger imports these records from
here, never the mailbox's decisions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from reconciler.jobs.states import State, Trigger

Verdict = Literal["notification", "untrusted", "malformed"]
Outcome = Literal["applied", "claimed", "duplicate", "orphan", "untrusted", "malformed", "conflict"]


@dataclass(frozen=True, slots=True)
class SeenMessage:
    """One mailbox message that carries ``X-SFService``, as the mailbox judged it."""

    uid: int
    message_id: str | None
    verdict: Verdict
    uuid: str | None
    status: Literal["OK", "ERROR"] | None
    sender: str | None
    reason: str | None
    date: str | None


@dataclass(frozen=True, slots=True)
class JobView:
    """The part of a job the decision needs."""

    state: State
    claim: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The effect of one message: its outcome, the trigger to fire (if any), whether to mark it."""

    message: SeenMessage
    outcome: Outcome
    trigger: Trigger | None
    claim: bool
    mark: bool
    reason: str
    before: State | None = None
    after: State | None = None
    #: Make the job due for a status call now without recording an OK claim: a trusted ERROR under
    #: confirm_with_status. The chaser asks; its answer decides (200 ok, a refusal error, 211 later).
    check: bool = False


@dataclass(frozen=True, slots=True)
class Applied:
    """What the ledger did with one message, for the poller: mark it now or leave it."""

    uid: int
    outcome: Outcome
    uuid: str | None
    mark: bool

"""What each mailbox message does to the ledger: a pure decision, no I/O.

The watcher opens one ledger transaction per batch (:meth:`reconciler.ledger.store.Ledger.mail_batch`),
which loads the current state of the jobs the batch names and the message identities already
applied; :func:`plan` decides, and the ledger writes the decisions it is handed, in that same
transaction.  Keeping the decision pure lets it be tested on its own, exhaustively.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from reconciler.jobs.notices import Decision, JobView, SeenMessage
from reconciler.jobs.states import State, Trigger, step


def plan(
    messages: Sequence[SeenMessage],
    jobs: Mapping[str, JobView],
    applied_message_ids: Iterable[str],
    confirm_with_status: bool,
) -> list[Decision]:
    """Decide every message of a batch in order; later messages see earlier effects."""
    states = dict(jobs)
    done_ids = set(applied_message_ids)
    decisions: list[Decision] = []
    for msg in messages:
        view = states.get(msg.uuid) if msg.uuid is not None else None
        decision = _decide(msg, view, done_ids, confirm_with_status)
        if decision.outcome in ("applied", "claimed") and msg.message_id:
            done_ids.add(msg.message_id)
        if view is not None and decision.after is not None:  # the decisions read the state only
            states[msg.uuid] = replace(view, state=decision.after)  # type: ignore[index]
        decisions.append(decision)
    return decisions


def _decide(msg: SeenMessage, view: JobView | None, done_ids: set[str], confirm: bool) -> Decision:
    before = view.state if view is not None else None
    if msg.verdict == "malformed":
        return Decision(msg, "malformed", None, False, False, msg.reason or "malformed notification", before, before)
    if msg.verdict == "untrusted":
        return Decision(msg, "untrusted", None, False, False, msg.reason or "untrusted notification", before, before)
    if msg.message_id and msg.message_id in done_ids:
        reason = f"Message-ID {msg.message_id} was already applied"
        return Decision(msg, "duplicate", None, False, True, reason, before, before)
    if msg.uuid is None or msg.status is None:  # a trusted notification always has both; stay total anyway
        return Decision(msg, "malformed", None, False, False, "notification without UUID or status", before, before)
    if view is None:
        return Decision(msg, "orphan", None, False, False, f"job {msg.uuid} is not in the ledger")
    state = view.state
    if msg.status == "ERROR" and confirm and state in (State.QUEUED, State.SUBMITTING, State.AWAITING):
        # An ERROR is a claim too: one forged mail from an allowed-looking From must not end a job.
        after = State.AWAITING
        reason = "ERROR claimed; the status call decides"
        trigger = Trigger.NOTIFIED if state != State.AWAITING else None
        return Decision(msg, "claimed", trigger, False, True, reason, state, after, check=True)
    if msg.status == "ERROR":
        return _fire(msg, state, Trigger.CONFIRMED_ERROR)
    if not confirm:
        return _fire(msg, state, Trigger.CONFIRMED_OK)
    # OK with confirmation: a claim that the status call must confirm before the job is ok.
    if state in (State.QUEUED, State.SUBMITTING):
        reason = "OK claimed; provider accepted earlier"
        return Decision(msg, "claimed", Trigger.NOTIFIED, True, True, reason, state, State.AWAITING)
    if state == State.AWAITING:
        reason = "OK claimed; awaiting confirmation by status call"
        return Decision(msg, "claimed", None, True, True, reason, state, state)
    return _fire(msg, state, Trigger.CONFIRMED_OK)


def _fire(msg: SeenMessage, state: State, trigger: Trigger) -> Decision:
    result = step(state, trigger)
    if result.new is not None:
        return Decision(msg, "applied", trigger, False, True, _ARROWS[state, result.new], state, result.new)
    if result.conflict:
        return Decision(msg, "conflict", None, False, False, result.reason, state, state)
    # Same outcome already recorded (e.g. the job became ok through the status call first).
    return Decision(msg, "duplicate", None, False, True, result.reason, state, state)


_ARROWS = {(a, b): f"{a} -> {b}" for a in State for b in State}

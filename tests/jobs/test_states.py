from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.jobs.states import REQUEUABLE, TERMINAL, TRANSITIONS, State, Trigger, step

# What the daemon fires; REQUEUE comes from an operator only (`reconciler requeue`).
MACHINE = [t for t in Trigger if t is not Trigger.REQUEUE]


@pytest.mark.parametrize(
    ("state", "trigger", "expected"),
    [
        (State.QUEUED, Trigger.CLAIM, State.SUBMITTING),
        (State.SUBMITTING, Trigger.ACCEPTED, State.AWAITING),
        (State.SUBMITTING, Trigger.REFUSED, State.REJECTED),
        (State.SUBMITTING, Trigger.RETRY, State.QUEUED),
        (State.SUBMITTING, Trigger.RECOVER, State.QUEUED),
        (State.AWAITING, Trigger.CONFIRMED_OK, State.OK),
        (State.AWAITING, Trigger.CONFIRMED_ERROR, State.ERROR),
        (State.AWAITING, Trigger.LOST, State.QUEUED),
        # a notification can overtake our own record of the acceptance (crash before commit)
        (State.QUEUED, Trigger.CONFIRMED_OK, State.OK),
        (State.SUBMITTING, Trigger.CONFIRMED_ERROR, State.ERROR),
        (State.QUEUED, Trigger.NOTIFIED, State.AWAITING),
    ],
)
def test_edges(state: State, trigger: Trigger, expected: State) -> None:
    assert step(state, trigger).new == expected


def test_state_strings_are_the_documented_ones() -> None:
    assert [str(s) for s in State] == ["queued", "submitting", "awaiting", "ok", "error", "rejected"]
    assert {str(s) for s in TERMINAL} == {"ok", "error", "rejected"}


@pytest.mark.parametrize(("state", "trigger"), list(itertools.product(sorted(TERMINAL), MACHINE)))
def test_terminal_never_changes(state: State, trigger: Trigger) -> None:
    result = step(state, trigger)
    assert result.new is None
    same = (state, trigger) in {(State.OK, Trigger.CONFIRMED_OK), (State.ERROR, Trigger.CONFIRMED_ERROR)}
    assert result.conflict is not same


def test_only_an_operator_requeue_leaves_a_terminal_state_and_never_ok() -> None:
    leaving = {key: new for key, new in TRANSITIONS.items() if key[0] in TERMINAL}
    assert leaving == {(State.ERROR, Trigger.REQUEUE): State.QUEUED, (State.REJECTED, Trigger.REQUEUE): State.QUEUED}
    assert State.OK not in REQUEUABLE
    assert step(State.OK, Trigger.REQUEUE).conflict
    for state in (State.QUEUED, State.SUBMITTING, State.AWAITING):
        assert step(state, Trigger.REQUEUE).new is None


@pytest.mark.parametrize(("state", "trigger"), [(State.AWAITING, Trigger.CLAIM), (State.QUEUED, Trigger.ACCEPTED)])
def test_inapplicable_trigger_is_a_noop_not_a_conflict(state: State, trigger: Trigger) -> None:
    result = step(state, trigger)
    assert result.new is None and not result.conflict and result.reason


@given(st.lists(st.sampled_from(MACHINE), max_size=40))
def test_any_sequence_reaches_at_most_one_terminal_state(triggers: list[Trigger]) -> None:
    state = State.QUEUED
    terminal_seen: set[State] = set()
    for trigger in triggers:
        new = step(state, trigger).new
        if new is not None:
            assert state not in TERMINAL
            state = new
        if state in TERMINAL:
            terminal_seen.add(state)
    assert len(terminal_seen) <= 1

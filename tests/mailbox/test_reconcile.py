from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.jobs.notices import JobView, SeenMessage
from reconciler.jobs.states import TERMINAL, State, Trigger
from reconciler.mailbox.reconcile import plan

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"


def msg(
    uid: int, status: str = "OK", *, mid: str | None = None, verdict: str = "notification", uuid: str = U
) -> SeenMessage:
    return SeenMessage(uid, mid or f"<{uid}@sf>", verdict, uuid, status, "n@solucionfactible.com", None, None)  # type: ignore[arg-type]


def one(
    state: State, m: SeenMessage, confirm: bool = False, claim: str | None = None
) -> tuple[str, State | None, bool]:
    [d] = plan([m], {U: JobView(state, claim)}, [], confirm)
    return d.outcome, d.after, d.mark


@pytest.mark.parametrize(
    ("state", "status", "confirm", "expected"),
    [
        (State.AWAITING, "OK", False, ("applied", State.OK, True)),
        (State.AWAITING, "ERROR", False, ("applied", State.ERROR, True)),
        (State.AWAITING, "OK", True, ("claimed", State.AWAITING, True)),
        (State.AWAITING, "ERROR", True, ("claimed", State.AWAITING, True)),  # an ERROR is a claim too
        (State.QUEUED, "ERROR", True, ("claimed", State.AWAITING, True)),
        (State.SUBMITTING, "ERROR", True, ("claimed", State.AWAITING, True)),
        (State.SUBMITTING, "ERROR", False, ("applied", State.ERROR, True)),
        (State.QUEUED, "OK", True, ("claimed", State.AWAITING, True)),
        # a trusted OK for a job still in submitting is a claim too, not ok without the status call
        (State.SUBMITTING, "OK", True, ("claimed", State.AWAITING, True)),
        (State.SUBMITTING, "OK", False, ("applied", State.OK, True)),
        (State.OK, "OK", True, ("duplicate", State.OK, True)),
        (State.OK, "ERROR", False, ("conflict", State.OK, False)),
        (State.REJECTED, "OK", False, ("conflict", State.REJECTED, False)),
        (State.ERROR, "OK", True, ("conflict", State.ERROR, False)),
    ],
)
def test_single_message(state: State, status: str, confirm: bool, expected: tuple[str, State, bool]) -> None:
    assert one(state, msg(1, status), confirm) == expected


def test_untrusted_malformed_and_orphans_change_nothing_and_are_not_marked() -> None:
    ds = plan(
        [msg(1, verdict="untrusted"), msg(2, verdict="malformed"), msg(3, uuid="11111111-1111-1111-1111-111111111111")],
        {U: JobView(State.AWAITING, None)},
        [],
        False,
    )
    assert [(d.outcome, d.trigger, d.mark) for d in ds] == [
        ("untrusted", None, False),
        ("malformed", None, False),
        ("orphan", None, False),
    ]


def test_same_message_id_applies_once_within_and_across_batches() -> None:
    ds = plan([msg(1, mid="<a@sf>"), msg(2, mid="<a@sf>")], {U: JobView(State.AWAITING, None)}, [], False)
    assert [d.outcome for d in ds] == ["applied", "duplicate"]
    [d] = plan([msg(9, mid="<a@sf>")], {U: JobView(State.AWAITING, None)}, ["<a@sf>"], False)
    assert d.outcome == "duplicate" and d.trigger is None


def test_later_message_in_batch_sees_earlier_effect() -> None:
    ds = plan([msg(1, "OK"), msg(2, "ERROR")], {U: JobView(State.AWAITING, None)}, [], False)
    assert [(d.outcome, d.after) for d in ds] == [("applied", State.OK), ("conflict", State.OK)]


statuses = st.sampled_from(["OK", "ERROR"])
verdicts = st.sampled_from(["notification", "untrusted", "malformed"])


@given(
    st.lists(st.tuples(statuses, verdicts, st.integers(0, 3)), max_size=12),
    st.sampled_from(list(State)),
    st.booleans(),
)
def test_a_job_ends_in_at_most_one_terminal_state_and_only_trusted_mail_moves_it(
    items: list[tuple[str, str, int]], start: State, confirm: bool
) -> None:
    messages = [msg(i, s, verdict=v, mid=f"<{m}@sf>") for i, (s, v, m) in enumerate(items)]
    ds = plan(messages, {U: JobView(start, None)}, [], confirm)
    state = start
    for d in ds:
        if d.message.verdict != "notification":
            assert d.trigger is None and not d.claim and not d.mark
        if d.after is not None:
            if state in TERMINAL:
                assert d.after == state
            state = d.after


def test_an_error_claim_makes_the_job_due_without_an_ok_claim() -> None:
    [d] = plan([msg(1, "ERROR")], {U: JobView(State.AWAITING, None)}, [], True)
    assert (d.outcome, d.trigger, d.claim, d.check) == ("claimed", None, False, True)
    [d] = plan([msg(1, "ERROR")], {U: JobView(State.SUBMITTING, None)}, [], True)
    assert (d.trigger, d.claim, d.check, d.after) == (Trigger.NOTIFIED, False, True, State.AWAITING)
    [d] = plan([msg(1, "OK")], {U: JobView(State.SUBMITTING, None)}, [], True)
    assert (d.outcome, d.trigger, d.claim, d.after) == ("claimed", Trigger.NOTIFIED, True, State.AWAITING)

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.jobs.notices import Decision, JobView, SeenMessage
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


Q, S, A, OK, ERR, REJ = State.QUEUED, State.SUBMITTING, State.AWAITING, State.OK, State.ERROR, State.REJECTED
N, C_OK, C_ERR = Trigger.NOTIFIED, Trigger.CONFIRMED_OK, Trigger.CONFIRMED_ERROR
OK_EARLY = "OK claimed; provider accepted earlier"
OK_WAIT = "OK claimed; awaiting confirmation by status call"
ERR_CLAIM = "ERROR claimed; the status call decides"


@pytest.mark.parametrize(
    ("state", "status", "confirm", "outcome", "trigger", "claim", "mark", "reason", "after", "check"),
    [
        # confirm_with_status: an OK is a claim the status call confirms; an ERROR only makes the job due
        (Q, "OK", True, "claimed", N, True, True, OK_EARLY, A, False),
        (S, "OK", True, "claimed", N, True, True, OK_EARLY, A, False),
        (A, "OK", True, "claimed", None, True, True, OK_WAIT, A, False),
        (OK, "OK", True, "duplicate", None, False, True, "already ok", OK, False),
        (ERR, "OK", True, "conflict", None, False, False, "confirmed_ok contradicts terminal state error", ERR, False),
        (
            REJ,
            "OK",
            True,
            "conflict",
            None,
            False,
            False,
            "confirmed_ok contradicts terminal state rejected",
            REJ,
            False,
        ),
        (Q, "ERROR", True, "claimed", N, False, True, ERR_CLAIM, A, True),
        (S, "ERROR", True, "claimed", N, False, True, ERR_CLAIM, A, True),
        (A, "ERROR", True, "claimed", None, False, True, ERR_CLAIM, A, True),
        (OK, "ERROR", True, "conflict", None, False, False, "confirmed_error contradicts terminal state ok", OK, False),
        (ERR, "ERROR", True, "duplicate", None, False, True, "already error", ERR, False),
        (
            REJ,
            "ERROR",
            True,
            "conflict",
            None,
            False,
            False,
            "confirmed_error contradicts terminal state rejected",
            REJ,
            False,
        ),
        # without confirmation a trusted notification is the outcome
        (Q, "OK", False, "applied", C_OK, False, True, "queued -> ok", OK, False),
        (S, "OK", False, "applied", C_OK, False, True, "submitting -> ok", OK, False),
        (A, "OK", False, "applied", C_OK, False, True, "awaiting -> ok", OK, False),
        (OK, "OK", False, "duplicate", None, False, True, "already ok", OK, False),
        (ERR, "OK", False, "conflict", None, False, False, "confirmed_ok contradicts terminal state error", ERR, False),
        (Q, "ERROR", False, "applied", C_ERR, False, True, "queued -> error", ERR, False),
        (S, "ERROR", False, "applied", C_ERR, False, True, "submitting -> error", ERR, False),
        (A, "ERROR", False, "applied", C_ERR, False, True, "awaiting -> error", ERR, False),
        (ERR, "ERROR", False, "duplicate", None, False, True, "already error", ERR, False),
        (
            REJ,
            "ERROR",
            False,
            "conflict",
            None,
            False,
            False,
            "confirmed_error contradicts terminal state rejected",
            REJ,
            False,
        ),
    ],
)
def test_every_state_status_and_mode_gives_the_whole_decision(
    state: State,
    status: str,
    confirm: bool,
    outcome: str,
    trigger: Trigger | None,
    claim: bool,
    mark: bool,
    reason: str,
    after: State,
    check: bool,
) -> None:
    m = msg(1, status)
    [d] = plan([m], {U: JobView(state, None)}, [], confirm)
    assert d == Decision(m, outcome, trigger, claim, mark, reason, state, after, check)  # type: ignore[arg-type]


OTHER = "11111111-1111-1111-1111-111111111111"


def seen(verdict: str, *, uuid: str | None = U, status: str | None = "OK", reason: str | None = None) -> SeenMessage:
    return SeenMessage(7, "<7@sf>", verdict, uuid, status, "n@solucionfactible.com", reason, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("m", "outcome", "reason", "before"),
    [
        (seen("untrusted", reason="From is not allowed"), "untrusted", "From is not allowed", A),
        (seen("untrusted"), "untrusted", "untrusted notification", A),
        (seen("untrusted", uuid=OTHER), "untrusted", "untrusted notification", None),
        (seen("malformed", reason="no X-UUIDCancelacion"), "malformed", "no X-UUIDCancelacion", A),
        (seen("malformed", uuid=None, status=None), "malformed", "malformed notification", None),
        (seen("notification", status=None), "malformed", "notification without UUID or status", A),
        (seen("notification", uuid=None), "malformed", "notification without UUID or status", None),
        (seen("notification", uuid=OTHER), "orphan", f"job {OTHER} is not in the ledger", None),
    ],
)
def test_a_message_that_cannot_move_a_job_says_why_and_keeps_its_state(
    m: SeenMessage, outcome: str, reason: str, before: State | None
) -> None:
    [d] = plan([m], {U: JobView(A, None)}, [], True)
    assert d == Decision(m, outcome, None, False, False, reason, before, before)  # type: ignore[arg-type]


def test_an_applied_message_id_is_a_duplicate_that_is_marked_and_names_the_id() -> None:
    m = msg(9, "ERROR", mid="<a@sf>")
    [d] = plan([m], {U: JobView(A, None)}, ["<a@sf>"], False)
    assert d == Decision(m, "duplicate", None, False, True, "Message-ID <a@sf> was already applied", A, A)


@pytest.mark.parametrize(("first", "confirm"), [("OK", True), ("ERROR", True), ("OK", False), ("ERROR", False)])
def test_a_claimed_or_applied_message_id_is_not_applied_again_in_the_batch(first: str, confirm: bool) -> None:
    ds = plan([msg(1, first, mid="<a@sf>"), msg(2, "ERROR", mid="<a@sf>")], {U: JobView(Q, None)}, [], confirm)
    assert ds[0].outcome in ("applied", "claimed")
    assert (ds[1].outcome, ds[1].reason, ds[1].before) == (
        "duplicate",
        "Message-ID <a@sf> was already applied",
        ds[0].after,
    )


def test_only_an_applied_or_claimed_message_id_blocks_a_later_one() -> None:
    # a conflict, an untrusted or an orphan mail under some Message-ID does not make a later one a duplicate
    ds = plan(
        [
            msg(1, "OK", mid="<a@sf>", uuid=OTHER),
            seen("untrusted"),
            msg(3, "OK", mid="<a@sf>"),
            msg(4, "OK", mid="<7@sf>"),
        ],
        {U: JobView(A, None)},
        [],
        False,
    )
    assert [d.outcome for d in ds] == ["orphan", "untrusted", "applied", "duplicate"]
    assert ds[3].reason == "already ok"
    ds = plan([msg(1, "OK", mid="<a@sf>"), msg(2, "OK", mid="<a@sf>")], {U: JobView(ERR, None)}, [], False)
    assert [d.outcome for d in ds] == ["conflict", "conflict"]


def test_messages_without_a_message_id_are_each_decided_on_the_state() -> None:
    plain = [SeenMessage(i, None, "notification", U, "OK", None, None, None) for i in (1, 2)]
    ds = plan(plain, {U: JobView(A, None)}, [], False)
    assert [(d.outcome, d.reason) for d in ds] == [("applied", "awaiting -> ok"), ("duplicate", "already ok")]


def test_a_claim_moves_the_state_later_messages_of_the_batch_see() -> None:
    ds = plan([msg(1, "OK"), msg(2, "OK"), msg(3, "ERROR")], {U: JobView(Q, None)}, [], True)
    assert [(d.outcome, d.before, d.after, d.reason) for d in ds] == [
        ("claimed", Q, A, OK_EARLY),
        ("claimed", A, A, OK_WAIT),
        ("claimed", A, A, ERR_CLAIM),
    ]

"""What a provider reply does to a job: pure decisions, time passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.clock import iso
from reconciler.jobs.records import Change, Job
from reconciler.jobs.states import State, Trigger
from reconciler.provider import codes
from reconciler.provider.acuse import Kind, Verdict, check, sha256
from reconciler.provider.codes import Classification, StatusOutcome, classify, classify_status
from reconciler.provider.outcomes import (
    Decision,
    cancel_decision,
    cancel_names_another,
    status_change,
    status_decision,
)
from reconciler.provider.soap import Reply, StatusReply

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
OTHER = "5B4B180D-5B6C-4392-B204-252215A1AB84"
NOW = datetime(2026, 1, 1, tzinfo=UTC)
LATER = NOW + timedelta(seconds=30)


@pytest.mark.parametrize(
    "mensaje",
    ["", "  ", U, U.lower(), f" {U} ", f"{U}|02|", f"{U.lower()}|01|{OTHER}", "Solicitud recibida", f"UUID {U} ok"],
)
def test_a_cancel_200_naming_this_uuid_or_none_is_an_acceptance(mensaje: str) -> None:
    assert cancel_names_another(U, mensaje) is None


@pytest.mark.parametrize(
    "mensaje",
    [OTHER, OTHER.lower(), f"{OTHER}|02|", f"cancelado {OTHER}", f"{U} {OTHER}", U[:-2] + "ﬀ|02|", U[:-1] + "Ｂ"],
)
def test_a_cancel_200_naming_another_uuid_is_not(mensaje: str) -> None:
    reason = cancel_names_another(U, mensaje)
    assert reason is not None and reason.startswith("cancelarAsincrono answered 200 naming another UUID: ")


def test_a_look_alike_of_this_uuid_is_another_uuid() -> None:
    ff = U[:-2] + "FF"  # U+FB00 (one character) folds to "FF" under .upper()
    assert (U[:-2] + "ﬀ").upper() == ff
    assert cancel_names_another(ff, U[:-2] + "ﬀ") is not None
    assert cancel_names_another(ff, U[:-2] + "ﬀ|02|") is not None
    assert cancel_names_another(ff, ff.lower() + "|02|") is None


@given(st.text(max_size=200), st.sampled_from(["", "|02|", "|01|" + OTHER]))
def test_cancel_names_another_never_raises_and_knows_this_uuid(text: str, suffix: str) -> None:
    reason = cancel_names_another(U, text)
    assert reason is None or (reason.startswith("cancelarAsincrono") and "\n" not in reason)
    assert cancel_names_another(U, U.lower() + suffix) is None
    assert cancel_names_another(U, f"{OTHER}{suffix}") is not None


def job(claim: str | None = None, checks: int = 0) -> Job:
    at = "2026-01-01T00:00:00.000Z"
    return Job(
        U, "AAA010101AAA", "02", None, State.AWAITING, 200, U, 1, None, at, at, None, at, claim, at, checks, None, False
    )


def reply(acuse: bytes | None, code: int = 200, source: str | None = "acuseSat") -> StatusReply:
    verdict = check(acuse, U) if code == 200 else None
    return StatusReply(code, U, acuse, classify_status(code, verdict).outcome, verdict, source if acuse else None)


ACCEPTED = f"<Acuse><Folios><UUID>{U}</UUID><EstatusUUID>201</EstatusUUID></Folios></Acuse>".encode()


def test_accepted_is_ok_with_the_acuse_and_its_digest() -> None:
    change = status_change(job(), reply(ACCEPTED), "chaser", NOW, LATER, 5)
    assert change.trigger is Trigger.CONFIRMED_OK
    assert change.set["acuse"] == ACCEPTED and change.set["acuse_sha256"] == sha256(ACCEPTED)
    [(kind, detail)] = change.events
    assert kind == "status" and detail["verdict"] == "accepted" and detail["acuse_sha256"] == sha256(ACCEPTED)


def test_refused_is_error_with_the_sats_code_and_meaning() -> None:
    refused = ACCEPTED.replace(b">201<", b">205<")
    change = status_change(job(claim="OK"), reply(refused), "confirmer", NOW, LATER, 5)
    assert change.trigger is Trigger.CONFIRMED_ERROR
    assert change.set["message"] == "the SAT refused: EstatusUUID 205: the UUID does not exist at the SAT"
    assert change.set["acuse_sha256"] == sha256(refused)
    status, conflict = change.events
    assert (status[1]["estatus_uuid"], status[1]["meaning"]) == (205, "the UUID does not exist at the SAT")
    assert conflict == (
        "conflict",
        {"reason": "OK notification contradicted by the SAT's EstatusUUID 205", "code": 200},
    )


@pytest.mark.parametrize("acuse", [None, b"", b"null", b"<html/>", ACCEPTED.replace(U.encode(), OTHER.encode())])
def test_anything_else_stays_awaiting_with_a_conflict_and_a_later_check(acuse: bytes | None) -> None:
    change = status_change(job(checks=3), reply(acuse), "chaser", NOW, LATER, 5)
    assert change.trigger is None and change.require is State.AWAITING
    assert change.set == {"check_at": "2026-01-01T00:00:30.000Z", "checks": 4}
    assert "acuse" not in change.set
    (_, status), (kind, conflict) = change.events
    assert status["outcome"] == "disputed" and kind == "conflict"
    assert conflict["reason"].startswith("status 200 is not evidence: ")
    if acuse is not None:
        assert conflict["acuse_sha256"] == sha256(acuse)


def test_a_done_outcome_without_an_accepting_verdict_is_never_ok() -> None:
    forged = StatusReply(200, U, ACCEPTED, StatusOutcome.DONE, Verdict(Kind.UNUSABLE, "no"), "acuseSat")
    assert status_change(job(), forged, "chaser", NOW, LATER, 5).trigger is None
    no_verdict = StatusReply(200, U, ACCEPTED, StatusOutcome.DONE, None, "acuseSat")
    assert status_change(job(), no_verdict, "chaser", NOW, LATER, 5).trigger is None


def test_other_codes_keep_their_meaning() -> None:
    assert status_change(job(), reply(None, 213), "chaser", NOW, LATER, 5).trigger is Trigger.CONFIRMED_ERROR
    assert status_change(job(), reply(None, 702), "chaser", NOW, LATER, 5).trigger is Trigger.LOST
    dropped = status_change(job(claim="OK"), reply(None, 702), "confirmer", NOW, LATER, 5)
    assert (dropped.trigger, dropped.set["claim"], dropped.set["check_at"]) == (None, None, "2026-01-01T00:00:05.000Z")
    processing = status_change(job(), reply(None, 211), "chaser", NOW, LATER, 5)
    assert [k for k, _ in processing.events] == ["status"] and processing.set["check_at"] == "2026-01-01T00:00:30.000Z"


# -- whole changes, every field: the status call is where `ok` is decided -------------------------


def status_detail(code: int, outcome: str, acuse: bytes | None = None, **verdict: object) -> dict[str, object]:
    detail: dict[str, object] = {
        "op": "getStatusCancelacionAsincrona",
        "code": code,
        "message": U,
        "outcome": outcome,
        "acuse": acuse is not None,
    }
    if acuse is not None:
        detail.update(acuse_from="acuseSat", acuse_sha256=sha256(acuse), acuse_bytes=len(acuse))
    detail.update(verdict)
    return detail


def test_the_whole_ok_change() -> None:
    assert status_change(job(claim="OK", checks=2), reply(ACCEPTED), "confirmer", NOW, LATER, 5) == Change(
        U,
        Trigger.CONFIRMED_OK,
        "confirmer",
        {"code": 200, "message": U, "acuse": ACCEPTED, "acuse_sha256": sha256(ACCEPTED), "check_at": None},
        [
            (
                "status",
                status_detail(
                    200,
                    "done",
                    ACCEPTED,
                    verdict="accepted",
                    reason="EstatusUUID 201: the SAT received the cancellation request",
                    estatus_uuid=201,
                    meaning="the SAT received the cancellation request",
                ),
            )
        ],
    )


def test_the_whole_refusal_without_a_claim() -> None:
    refused = ACCEPTED.replace(b">201<", b">205<")
    meaning = "the UUID does not exist at the SAT"
    assert status_change(job(), reply(refused), "chaser", NOW, LATER, 5) == Change(
        U,
        Trigger.CONFIRMED_ERROR,
        "chaser",
        {
            "code": 200,
            "message": f"the SAT refused: EstatusUUID 205: {meaning}",
            "acuse": refused,
            "acuse_sha256": sha256(refused),
            "check_at": None,
        },
        [
            (
                "status",
                status_detail(
                    200,
                    "failed",
                    refused,
                    verdict="refused",
                    reason=f"the SAT refused: EstatusUUID 205: {meaning}",
                    estatus_uuid=205,
                    meaning=meaning,
                ),
            )
        ],
    )


def test_the_whole_213_under_an_ok_claim() -> None:
    assert status_change(job(claim="OK"), reply(None, 213), "confirmer", NOW, LATER, 5) == Change(
        U,
        Trigger.CONFIRMED_ERROR,
        "confirmer",
        {"code": 213, "message": U, "check_at": None},
        [
            ("status", status_detail(213, "failed")),
            ("conflict", {"reason": "OK notification contradicted by status code 213", "code": 213}),
        ],
    )


def test_the_whole_702_with_and_without_a_claim() -> None:
    assert status_change(job(claim="OK", checks=4), reply(None, 702), "confirmer", NOW, LATER, 5) == Change(
        U,
        None,
        "confirmer",
        {"code": 702, "message": U, "claim": None, "check_at": "2026-01-01T00:00:05.000Z", "checks": 5},
        [
            ("status", status_detail(702, "not_found")),
            (
                "conflict",
                {"reason": "OK notification, but the provider has no transaction for this UUID (702)", "code": 702},
            ),
        ],
        require=State.AWAITING,
    )
    assert status_change(job(), reply(None, 702), "chaser", NOW, LATER, 5) == Change(
        U,
        Trigger.LOST,
        "chaser",
        {"code": 702, "message": U, "next_attempt_at": "2026-01-01T00:00:00.000Z", "check_at": None},
        [("status", status_detail(702, "not_found"))],
    )


def test_the_whole_wait_and_the_whole_dispute() -> None:
    assert status_change(job(checks=1), reply(None, 211), "chaser", NOW, LATER, 5) == Change(
        U,
        None,
        "chaser",
        {"check_at": "2026-01-01T00:00:30.000Z", "checks": 2},
        [("status", status_detail(211, "processing"))],
        require=State.AWAITING,
    )
    no_acuse = StatusReply(200, U, None, StatusOutcome.DONE, None, None)
    assert status_change(job(), no_acuse, "chaser", NOW, LATER, 5).events[1] == (
        "conflict",
        {"reason": "status 200 is not evidence: the provider says finished but sent no acuse", "code": 200},
    )


def test_a_long_message_is_cut_to_500_characters() -> None:
    long = StatusReply(213, "x" * 600, None, StatusOutcome.FAILED, None, None)
    change = status_change(job(), long, "chaser", NOW, LATER, 5)
    assert change.set["message"] == "x" * 500 and change.events[0][1]["message"] == "x" * 500


def test_a_failure_keeps_evidence_and_words_only_from_a_refusal() -> None:
    """A 213 carrying an unusable acuse: the job fails on the code, the acuse is not stored as evidence."""
    odd = StatusReply(213, "denegada", b"<x/>", StatusOutcome.FAILED, Verdict(Kind.UNUSABLE, "unreadable"), "acuseSat")
    change = status_change(job(claim="OK"), odd, "confirmer", NOW, LATER, 5)
    assert change.set == {"code": 213, "message": "denegada", "check_at": None}
    assert change.events[1] == ("conflict", {"reason": "OK notification contradicted by status code 213", "code": 213})


def test_a_long_refusal_reason_is_cut_to_500() -> None:
    long = Verdict(Kind.REFUSED, "r" * 600, 205, "gone")
    change = status_change(
        job(), StatusReply(200, U, ACCEPTED, StatusOutcome.FAILED, long, "acuseSat"), "c", NOW, LATER, 5
    )
    assert change.set["message"] == "r" * 500


def test_the_whole_dispute_conflict_names_the_verdict_and_the_acuse() -> None:
    other = ACCEPTED.replace(U.encode(), OTHER.encode())
    change = status_change(job(), reply(other, source="mensaje"), "chaser", NOW, LATER, 5)
    verdict = check(other, U)
    assert change.events[1] == (
        "conflict",
        {
            "reason": f"status 200 is not evidence: {verdict.reason}",
            "code": 200,
            "acuse_from": "mensaje",
            "acuse_sha256": sha256(other),
        },
    )


# -- what a cancelarAsincrono reply means -----------------------------------------------

CHECK_AFTER_S = 60.0


def cancel(code: int | None, message: str = U, classification: Classification | None = None) -> Reply:
    return Reply(code, message, classification or (classify(code) if code is not None else codes.TIMEOUT))


def test_an_accepted_cancel_awaits_and_checks_status_after_the_wait() -> None:
    d = cancel_decision(job(), cancel(200), NOW, LATER, CHECK_AFTER_S)
    assert d.change.trigger is Trigger.ACCEPTED and d.change.source == "submitter"
    assert d.change.set == {
        "code": 200,
        "message": U,
        "submitted_at": "2026-01-01T00:00:00.000Z",
        "check_at": "2026-01-01T00:01:00.000Z",
        "next_attempt_at": None,
    }
    [(kind, event)] = d.change.events
    assert kind == "reply" and (event["op"], event["outcome"]) == ("cancelarAsincrono", "accepted")
    assert (d.tally, d.trip, d.proves, d.warning) == ("accepted", None, True, None)


@pytest.mark.parametrize("code", [204, 213, 1803])
def test_a_rejected_cancel_is_an_error_for_good(code: int) -> None:
    d = cancel_decision(job(), cancel(code, "no"), NOW, LATER, CHECK_AFTER_S)
    assert d.change.trigger is Trigger.REFUSED and d.change.set == {
        "code": code,
        "message": "no",
        "next_attempt_at": None,
    }
    assert (d.tally, d.trip, d.proves) == ("rejected", None, True)


@pytest.mark.parametrize("code", [601, 602, 603, 604, 605, 620, 633])
def test_an_account_code_trips_the_breaker_and_requeues_the_job_due_now(code: int) -> None:
    d = cancel_decision(job(), cancel(code, "bad password"), NOW, LATER, CHECK_AFTER_S)
    assert d.change.trigger is Trigger.RETRY and d.change.set["next_attempt_at"] == "2026-01-01T00:00:00.000Z"
    assert d.trip == classify(code).meaning and d.trip
    assert (d.tally, d.proves) == ("retried", False)


@pytest.mark.parametrize(
    ("reply_", "proves", "warned"),
    [
        (cancel(500, "busy"), True, False),
        (cancel(9999, "what"), True, True),
        (cancel(None, "timed out", codes.TIMEOUT), False, False),
        (cancel(None, "refused", codes.CONNECTION_ERROR), False, False),
    ],
)
def test_anything_else_retries_later(reply_: Reply, proves: bool, warned: bool) -> None:
    d = cancel_decision(job(), reply_, NOW, LATER, CHECK_AFTER_S)
    assert d.change.trigger is Trigger.RETRY and d.change.set["next_attempt_at"] == "2026-01-01T00:00:30.000Z"
    assert (d.tally, d.trip, d.proves) == ("retried", None, proves)
    assert (d.warning is not None) == warned
    if warned:
        assert d.warning == "unknown provider code 9999 (what); retrying later"


def test_a_200_naming_another_uuid_retries_with_a_conflict_and_proves_nothing() -> None:
    d = cancel_decision(job(), cancel(200, f"{OTHER}|02|"), NOW, LATER, CHECK_AFTER_S)
    assert d.change.trigger is Trigger.RETRY and d.change.set["next_attempt_at"] == "2026-01-01T00:00:30.000Z"
    (_, event), (kind, conflict) = d.change.events
    assert event["outcome"] == "transient" and event["meaning"].startswith("cancelarAsincrono answered 200 naming")
    assert kind == "conflict" and conflict == {"reason": event["meaning"], "code": 200}
    assert (d.tally, d.trip, d.proves) == ("retried", None, False)
    assert d.warning == f"{event['meaning']}; retrying later"


def test_a_long_provider_message_is_cut_in_the_ledger() -> None:
    d = cancel_decision(job(), cancel(500, "x" * 2000), NOW, LATER, CHECK_AFTER_S)
    assert len(d.change.set["message"]) == 500 and len(d.change.events[0][1]["message"]) == 500


# -- what a status reply counts as ----------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "claim", "tally", "trip", "warned"),
    [
        (reply(ACCEPTED), None, "confirmed", False, False),
        (reply(None, 213), None, "confirmed", False, False),
        (reply(None, 702), None, "requeued", False, False),
        (reply(None, 702), "OK", None, False, False),
        (reply(None, 211), None, None, False, False),
        (reply(b"<html/>"), None, None, False, True),
        (reply(None, 601), None, None, True, False),
    ],
)
def test_a_status_reply_counts_trips_and_warns(
    status: StatusReply, claim: str | None, tally: str | None, trip: bool, warned: bool
) -> None:
    d = status_decision(job(claim=claim), status, "chaser", NOW, LATER, 5)
    assert d.change == status_change(job(claim=claim), status, "chaser", NOW, LATER, 5)
    assert d.tally == tally and (d.trip is not None) == trip and not d.proves
    assert (d.warning is not None) == warned
    if warned:
        assert d.warning is not None and d.warning.startswith("status 200 is not evidence: ")
        assert d.warning.endswith("; asking again later")


def _reply_event(code: int | None, message: str, outcome: str, meaning: str) -> tuple[str, dict[str, object]]:
    detail = {"op": "cancelarAsincrono", "code": code, "message": message, "outcome": outcome, "meaning": meaning}
    return ("reply", detail)


@pytest.mark.parametrize(
    ("reply_", "expected"),
    [
        (
            cancel(200, U.lower()),
            Decision(
                Change(
                    U,
                    Trigger.ACCEPTED,
                    "submitter",
                    {
                        "code": 200,
                        "message": U.lower(),
                        "submitted_at": iso(NOW),
                        "check_at": iso(NOW + timedelta(seconds=CHECK_AFTER_S)),
                        "next_attempt_at": None,
                    },
                    [_reply_event(200, U.lower(), "accepted", classify(200).meaning)],
                ),
                "accepted",
                proves=True,
            ),
        ),
        (
            cancel(1803, "no"),
            Decision(
                Change(
                    U,
                    Trigger.REFUSED,
                    "submitter",
                    {"code": 1803, "message": "no", "next_attempt_at": None},
                    [_reply_event(1803, "no", "rejected", classify(1803).meaning)],
                ),
                "rejected",
                proves=True,
            ),
        ),
        (
            cancel(604, "locked"),
            Decision(
                Change(
                    U,
                    Trigger.RETRY,
                    "submitter",
                    {"code": 604, "message": "locked", "next_attempt_at": iso(NOW)},
                    [_reply_event(604, "locked", "account", classify(604).meaning)],
                ),
                "retried",
                trip=classify(604).meaning,
            ),
        ),
        (
            cancel(500, "busy"),
            Decision(
                Change(
                    U,
                    Trigger.RETRY,
                    "submitter",
                    {"code": 500, "message": "busy", "next_attempt_at": iso(LATER)},
                    [_reply_event(500, "busy", "transient", classify(500).meaning)],
                ),
                "retried",
                proves=True,
            ),
        ),
        (
            cancel(9999, "y" * 300),
            Decision(
                Change(
                    U,
                    Trigger.RETRY,
                    "submitter",
                    {"code": 9999, "message": "y" * 300, "next_attempt_at": iso(LATER)},
                    [_reply_event(9999, "y" * 300, "transient", classify(9999).meaning)],
                ),
                "retried",
                proves=True,
                warning=f"unknown provider code 9999 ({'y' * 200}); retrying later",
            ),
        ),
        (
            cancel(None, "timed out", codes.TIMEOUT),
            Decision(
                Change(
                    U,
                    Trigger.RETRY,
                    "submitter",
                    {"code": None, "message": "timed out", "next_attempt_at": iso(LATER)},
                    [_reply_event(None, "timed out", "transient", codes.TIMEOUT.meaning)],
                ),
                "retried",
            ),
        ),
    ],
)
def test_the_whole_decision_on_a_cancel_reply(reply_: Reply, expected: Decision) -> None:
    assert cancel_decision(job(), reply_, NOW, LATER, CHECK_AFTER_S) == expected


def test_the_whole_decision_on_a_200_naming_another_uuid() -> None:
    why = f"cancelarAsincrono answered 200 naming another UUID: {OTHER!r}"
    message = f"{OTHER}|02|"
    assert cancel_decision(job(), cancel(200, message), NOW, LATER, CHECK_AFTER_S) == Decision(
        Change(
            U,
            Trigger.RETRY,
            "submitter",
            {"code": 200, "message": message, "next_attempt_at": iso(LATER)},
            [_reply_event(200, message, "transient", why), ("conflict", {"reason": why, "code": 200})],
        ),
        "retried",
        warning=f"{why}; retrying later",
    )
    # another code naming another UUID is judged by its code alone
    assert cancel_decision(job(), cancel(1803, message), NOW, LATER, CHECK_AFTER_S).change.trigger is Trigger.REFUSED


def test_only_the_first_part_of_a_200s_mensaje_names_the_job() -> None:
    assert cancel_names_another(U, f"{U}|02|{OTHER}") is None
    assert cancel_names_another(U, f"{U}|{OTHER}|02") is None  # what follows the first "|" is not the UUID


def test_an_account_code_on_the_status_call_trips_the_breaker_saying_so() -> None:
    d = status_decision(job(), reply(None, 601), "chaser", NOW, LATER, 5)
    assert d.trip == "account error on the status call"

"""The judgement of one message, pure: header bytes in, a verdict out; no IMAP server."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reconciler.config import TrustSettings
from reconciler.jobs.notices import SeenMessage
from reconciler.mailbox.judge import Owing, judge, judge_all
from tests.fixtures_imap import SENDER, notification, plain_mail

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
PLAIN = TrustSettings()
GATED = TrustSettings(authserv_id="mx.example.com")
DKIM = TrustSettings(verify_dkim=True)
PASS = "Authentication-Results: mx.example.com; dkim=pass header.d=solucionfactible.com\r\n"


def head(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"


@pytest.mark.parametrize(
    ("raw", "trust", "verdict", "reason"),
    [
        (notification(U), PLAIN, "notification", None),
        (notification(U, "ERROR"), PLAIN, "notification", None),
        (notification(U, sender="Solución Factible <avisos@evil.example>"), PLAIN, "untrusted", "not in"),
        (notification(U, sender=f"{SENDER}, otro@solucionfactible.com"), PLAIN, "untrusted", "exactly one"),
        (notification(U), GATED, "untrusted", "Authentication-Results"),
        (notification(U, extra=PASS), GATED, "notification", None),
        (notification(U, sender="x@evil.example"), DKIM, "untrusted", "not in"),  # refused before any DKIM
        (notification("not-a-uuid"), PLAIN, "malformed", "UUID"),
        (notification(U, "MAYBE"), PLAIN, "malformed", "Status"),
    ],
)
def test_verdicts(raw: bytes, trust: TrustSettings, verdict: str, reason: str | None) -> None:
    found = judge(7, head(raw), trust)
    assert isinstance(found, SeenMessage)
    assert (found.uid, found.verdict) == (7, verdict)
    if reason is None:  # trusted: the record keeps no reason, and says what it claims
        assert found.reason is None and (found.uuid, found.sender) == (U, SENDER)
        assert found.status in ("OK", "ERROR") and found.date == "2025-11-24T07:02:03.000Z"
    else:
        assert found.reason is not None and reason.lower() in found.reason.lower(), found.reason


def test_mail_without_the_service_header_is_not_judged() -> None:
    assert judge(1, head(plain_mail()), PLAIN) is None
    assert judge(1, b"", PLAIN) is None


def test_verify_dkim_asks_for_the_whole_message_only_when_the_headers_pass() -> None:
    found = judge(3, head(notification(U)), DKIM)
    assert isinstance(found, Owing) and found.uid == 3 and found.notification.uuid == U
    assert isinstance(judge(3, head(notification(U, sender="x@evil.example")), DKIM), SeenMessage)


def test_judge_all_partitions_a_batch_and_skips_other_mail() -> None:
    headers = {
        1: head(notification(U)),
        2: head(plain_mail()),
        3: head(notification(U, sender="x@evil.example")),
        4: head(notification("nope")),
    }
    verdicts, owing = judge_all(headers, PLAIN)
    assert [(m.uid, m.verdict) for m in verdicts] == [(1, "notification"), (3, "untrusted"), (4, "malformed")]
    assert owing == []
    verdicts, owing = judge_all(headers, DKIM)
    assert [(m.uid, m.verdict) for m in verdicts] == [(3, "untrusted"), (4, "malformed")]
    assert [o.uid for o in owing] == [1]


@given(st.dictionaries(st.integers(1, 2**32 - 1), st.binary(max_size=400), max_size=8), st.sampled_from([PLAIN, DKIM]))
def test_any_bytes_get_a_verdict_or_none_and_the_batch_agrees_with_one_by_one(
    headers: dict[int, bytes], trust: TrustSettings
) -> None:
    verdicts, owing = judge_all(headers, trust)
    one_by_one = [found for uid, h in headers.items() if (found := judge(uid, h, trust)) is not None]
    assert [*verdicts, *owing] == [f for f in one_by_one if isinstance(f, SeenMessage)] + [
        f for f in one_by_one if isinstance(f, Owing)
    ]
    for m in verdicts:
        assert m.uid in headers
        assert (m.verdict == "notification") == (m.reason is None)


@given(st.sampled_from(["OK", "ERROR"]), st.text(max_size=40))
def test_a_display_name_never_makes_a_sender_trusted(status: str, name: str) -> None:
    name = "".join(c for c in name if c.isprintable() and c not in '"\\<>\r\n')
    raw = notification(U, status, sender=f'"{name} {SENDER}" <avisos@evil.example>')
    found = judge(1, head(raw), PLAIN)
    assert isinstance(found, SeenMessage) and found.verdict != "notification"


def _message_id(header: bytes) -> str:
    [line] = [h for h in header.decode().split("\r\n") if h.startswith("Message-ID: ")]
    return line.removeprefix("Message-ID: ")


def _undated(header: bytes) -> bytes:
    return b"\r\n".join(h for h in header.split(b"\r\n") if not h.startswith(b"Date: "))


DATE = "2025-11-24T07:02:03.000Z"


@pytest.mark.parametrize("dated", [True, False])
def test_the_whole_record_of_a_malformed_notification(dated: bool) -> None:
    header = head(notification(U, "MAYBE"))
    header = header if dated else _undated(header)
    assert judge(7, header, PLAIN) == SeenMessage(
        7,
        _message_id(header),
        "malformed",
        U,
        None,
        SENDER,
        "X-StatusCancelacion is 'MAYBE', not OK or ERROR",
        DATE if dated else None,
    )


@pytest.mark.parametrize(
    ("sender", "shown", "reason"),
    [
        # the record names the first mailbox of a From that holds several, and none of an empty group
        (f"{SENDER}, otro@solucionfactible.com", SENDER, "From holds 2 mailboxes; exactly one is required"),
        (
            "otro@evil.example, x@solucionfactible.com",
            "otro@evil.example",
            "From holds 2 mailboxes; exactly one is required",
        ),
        ("undisclosed:;", None, "no From address"),
    ],
)
def test_the_whole_record_of_an_untrusted_notification(sender: str, shown: str | None, reason: str) -> None:
    header = _undated(head(notification(U, sender=sender)))
    assert judge(7, header, PLAIN) == SeenMessage(7, _message_id(header), "untrusted", U, "OK", shown, reason, None)


def test_the_whole_record_of_a_trusted_notification_keeps_no_reason() -> None:
    header = head(notification(U, "ERROR"))
    assert judge(9, header, PLAIN) == SeenMessage(
        9, _message_id(header), "notification", U, "ERROR", SENDER, None, DATE
    )

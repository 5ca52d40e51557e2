"""The judgement of one mailbox message: parse, trust, verdict; pure, no I/O.

A header block comes in as bytes and goes out as one of three things: nothing (mail without
``X-SFService``, never touched), a :class:`SeenMessage` with its verdict (``malformed``,
``untrusted`` or a trusted ``notification``), or an :class:`Owing` when the headers are trusted
but ``mailbox.trust.verify_dkim`` still wants the whole message checked. That check looks up
DNS, so it is the watcher's, which hands the result back to :func:`seen`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from reconciler.clock import iso
from reconciler.config import TrustSettings
from reconciler.jobs.notices import SeenMessage
from reconciler.mailbox.notification import Malformed, Notification, NotNotification, parse
from reconciler.mailbox.trust import Verdict, assess


@dataclass(frozen=True, slots=True)
class Owing:
    """A notification trusted on its headers that still owes a DKIM check of the whole message."""

    uid: int
    notification: Notification


def judge(uid: int, header: bytes, trust: TrustSettings) -> SeenMessage | Owing | None:
    """The verdict on one header block; None for mail that is no notification.

    ``trust`` is the configured trust: its DKIM check is never run here (it needs the whole
    message and DNS), only announced by returning :class:`Owing`.
    """
    return _judge(uid, header, _headers_only(trust), trust.verify_dkim)


def judge_all(headers: Mapping[int, bytes], trust: TrustSettings) -> tuple[list[SeenMessage], list[Owing]]:
    """:func:`judge` over a batch of header blocks: the verdicts, and the messages owing a DKIM check."""
    header_trust = _headers_only(trust)  # once per batch, not once per message
    verdicts: list[SeenMessage] = []
    owing: list[Owing] = []
    for uid, header in headers.items():
        found = _judge(uid, header, header_trust, trust.verify_dkim)
        if isinstance(found, Owing):
            owing.append(found)
        elif found is not None:
            verdicts.append(found)
    return verdicts, owing


def seen(uid: int, notification: Notification, verdict: Verdict) -> SeenMessage:
    """The record of a parsed notification under ``verdict``; the reason is kept only when untrusted."""
    n = notification
    return SeenMessage(
        uid,
        n.message_id,
        "notification" if verdict.trusted else "untrusted",
        n.uuid,
        n.status,
        n.sender or (n.from_addresses[0] if n.from_addresses else None),
        None if verdict.trusted else verdict.reason,
        iso(n.date) if n.date else None,
    )


def _judge(uid: int, header: bytes, header_trust: TrustSettings, verify_dkim: bool) -> SeenMessage | Owing | None:
    parsed = parse(header)
    if isinstance(parsed, NotNotification):
        return None
    if isinstance(parsed, Malformed):
        date = iso(parsed.date) if parsed.date else None
        return SeenMessage(uid, parsed.message_id, "malformed", parsed.uuid, None, parsed.sender, parsed.reason, date)
    verdict = assess(parsed, header_trust)
    if verdict.trusted and verify_dkim:
        return Owing(uid, parsed)
    return seen(uid, parsed, verdict)


def _headers_only(trust: TrustSettings) -> TrustSettings:
    return trust.model_copy(update={"verify_dkim": False}) if trust.verify_dkim else trust

"""Notification headers, strictly: each hostile header shape, APPENDed to a real IMAP server and
read by the real :class:`~reconciler.mailbox.watcher.Watcher` (or the daemon), changes no job.

Also DKIM key lookups: a lookup the message itself makes fail (a 70-character selector label,
NXDOMAIN) is a verdict, and a temporary DNS failure puts off that one message, a bounded number
of passes, never the messages behind it. The lookups go through the real dnspython resolver
(``trust.resolve_txt``) wherever the test does not need a key of its own.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import sqlite3
import subprocess
from collections.abc import Callable, Iterator
from email.utils import make_msgid
from pathlib import Path

import dkim
import dns.resolver
import pytest

from reconciler.jobs.states import State
from reconciler.ledger.store import Ledger
from reconciler.mailbox.trust import DKIM_ATTEMPTS, resolve_txt
from reconciler.mailbox.watcher import PassStats, Watcher
from reconciler.sandbox import UUIDS_211
from reconciler.sandbox.imapserver import ImapServer

from ..fixtures_imap import add_jobs, append, new_uuid, settings_for
from ..harness import Stack, wait_until
from .support import events_of

DOMAIN = "solucionfactible.com"
GOOD = f"Solución Factible <notificaciones@{DOMAIN}>"
INCLUDE = [b"from", b"date", b"message-id", b"x-uuidcancelacion", b"x-statuscancelacion"]


def mail(uuid: str, status: str = "OK", sender: str = GOOD, extra: str = "") -> bytes:
    """Every header the daemon reads, chosen freely by whoever sends the mail."""
    return (
        f"From: {sender}\r\n{extra}To: facturas@example.com\r\nSubject: Cancelacion\r\n"
        f"Date: Mon, 24 Nov 2025 07:02:03 +0000\r\nMessage-ID: {make_msgid(domain='headers.test')}\r\n"
        f"X-SFService: Cancelar\r\nX-UUIDCancelacion: {uuid}\r\nX-StatusCancelacion: {status}\r\n\r\nok\r\n"
    ).encode()


@pytest.fixture
def imap(tmp_path: Path) -> Iterator[ImapServer]:
    from reconciler.sandbox.imapserver import dovecot_available, start_dovecot, start_pymap

    start = start_dovecot if dovecot_available() else start_pymap
    with start(tmp_path / "imap", "facturas", "headers-test-pass") as server:
        yield server


async def test_hostile_header_shapes_change_nothing(imap: ImapServer, ledger: Ledger) -> None:
    genuine = new_uuid()
    cases: dict[str, tuple[str, bytes, str, str]] = {}

    def case(name: str, outcome: str, reason: str, build: Callable[[str], bytes]) -> None:
        uuid = new_uuid()
        cases[name] = (uuid, build(uuid), outcome, reason)

    case(
        "encoded addr-spec",
        "untrusted",
        "From is not a valid address",
        lambda u: mail(u, sender=f"notificaciones@=?utf-8?q?{DOMAIN}?="),
    )
    case(
        "encoded addr-spec behind a display name",
        "untrusted",
        "From is not a valid address",
        lambda u: mail(u, sender=f'"notificaciones@{DOMAIN}" <notificaciones@=?utf-8?q?{DOMAIN}?=>'),
    )
    case(
        "look-alike UUID, raw",  # U+FB00 folds to "FF" under upper()
        "malformed",
        "non-ASCII character 'ﬀ' (U+FB00) at position 35",
        lambda u: mail(u).replace(u.encode(), (u[:-2] + "\ufb00").encode()),
    )
    case(
        "look-alike UUID, encoded",
        "malformed",
        "non-ASCII character 'ﬀ' (U+FB00) at position 35",
        lambda u: mail(u).replace(u.encode(), f"=?utf-8?q?{u[:-2]}=EF=AC=80?=".encode()),
    )
    case(
        "look-alike status",
        "malformed",
        "X-StatusCancelacion holds non-ASCII character",
        lambda u: mail(u, "=?utf-8?q?O=EF=BC=AB?="),
    )
    case("two Froms", "malformed", "From appears 2 times", lambda u: mail(u, extra="From: attacker@evil.example\r\n"))
    case(
        "two UUIDs",
        "malformed",
        "X-UUIDCancelacion appears 2 times",
        lambda u: mail(u, extra=f"X-UUIDCancelacion: {new_uuid()}\r\n"),
    )
    case(
        "two statuses",
        "malformed",
        "X-StatusCancelacion appears 2 times",
        lambda u: mail(u, "ERROR", extra="X-StatusCancelacion: OK\r\n"),
    )
    case("the same status twice", "malformed", "X-StatusCancelacion appears 2 times",
         lambda u: mail(u, extra="X-StatusCancelacion: OK\r\n"))  # fmt: skip
    appended = list(cases.values())
    # imaplib's APPEND turns a bare CR into CRLF on the way, and pymap splits a stored one into
    # lines: these two go into Dovecot's Maildir as a delivery agent writes them (Dovecot serves
    # the CR as it is, and a NUL as 0x80).
    if imap.kind == "dovecot":
        case("bare CR in the status", "malformed", "a header holds a bare CR", lambda u: mail(u, "OK\rERROR"))
        case("NUL in the status", "malformed", "X-StatusCancelacion holds non-ASCII", lambda u: mail(u, "OK\0ERROR"))
    await add_jobs(ledger, [genuine, *(uuid for uuid, *_ in cases.values())])
    append(imap, *(raw for _, raw, _, _ in appended), mail(genuine))
    for _, raw, _, _ in list(cases.values())[len(appended) :]:
        imap.deliver(raw)
    watcher = Watcher(settings_for(imap, ledger.path), ledger)
    try:
        stats = await watcher.run_pass()
    finally:
        await watcher.close()
    expected: dict[str, int] = {"applied": 1}
    for _, _, outcome, _ in cases.values():
        expected[outcome] = expected.get(outcome, 0) + 1
    assert stats.outcomes == expected
    assert (await ledger.get_job(genuine)).state == State.OK
    events = _events(ledger.path)
    for name, (uuid, _, outcome, reason) in cases.items():
        assert (await ledger.get_job(uuid)).state == State.AWAITING, name
        assert any(kind == outcome and reason in why for kind, why in events), (name, events)


def _marked_uid(path: Path) -> int:
    with sqlite3.connect(path) as db:
        (value,) = db.execute("SELECT marked_uid FROM mailbox_state").fetchone()
    db.close()
    return int(value)


def _events(path: Path) -> list[tuple[str, str]]:
    with sqlite3.connect(path) as db:
        rows = db.execute(
            "SELECT kind, json_extract(detail, '$.reason') FROM events WHERE kind IN ('untrusted', 'malformed')"
        ).fetchall()
    db.close()
    return [(str(k), str(r)) for k, r in rows]


# -- DKIM key lookups ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def key(tmp_path_factory: pytest.TempPathFactory) -> tuple[bytes, bytes]:
    path = tmp_path_factory.mktemp("dkimkey") / "key.pem"
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True, timeout=60)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"], check=True, capture_output=True, timeout=60
    ).stdout
    return path.read_bytes(), b"v=DKIM1; k=rsa; p=" + base64.b64encode(der)


def sign(raw: bytes, key: bytes, selector: bytes = b"sel") -> bytes:
    signature: bytes = dkim.sign(raw, selector, DOMAIN.encode(), key, include_headers=INCLUDE)
    return signature + raw


def _dead_port() -> int:
    """A loopback UDP port nobody answers on: a resolver pointed there fails the way a down one does."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Dns:
    """The test key at sel._domainkey; every other name through the real resolver code: dnspython's
    ``resolve`` (``trust.resolve_txt``) for most, a resolver pointed at a dead loopback port for
    the ``slow`` selector while ``down`` is set (a real temporary failure)."""

    def __init__(self, public: bytes) -> None:
        self.public = public
        self.down = True
        self.dead = dns.resolver.Resolver(configure=False)
        self.dead.nameservers = ["127.0.0.1"]
        self.dead.port = _dead_port()
        self.dead.lifetime = 0.3
        self.lookups: list[bytes] = []

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        self.lookups.append(name)
        bare = name.rstrip(b".")
        if bare == f"sel._domainkey.{DOMAIN}".encode():
            return self.public
        if bare == f"slow._domainkey.{DOMAIN}".encode():
            if self.down:
                self.dead.resolve(bare.decode(), "TXT")  # raises: nobody answers
            return self.public
        return resolve_txt(name, timeout)


async def test_a_poisoned_selector_is_a_verdict_and_the_mail_behind_it_is_read(
    imap: ImapServer, ledger: Ledger, key: tuple[bytes, bytes]
) -> None:
    private, public = key
    poisoned, behind = new_uuid(), new_uuid()
    await add_jobs(ledger, [poisoned, behind])
    append(imap, sign(mail(poisoned), private, selector=b"a" * 70), sign(mail(behind), private))
    watcher = Watcher(settings_for(imap, ledger.path, trust={"verify_dkim": True}), ledger, dnsfunc=Dns(public))
    try:
        stats = await watcher.run_pass()
    finally:
        await watcher.close()
    assert stats.outcomes == {"untrusted": 1, "applied": 1} and stats.held == 0
    assert (await ledger.get_job(poisoned)).state == State.AWAITING
    assert (await ledger.get_job(behind)).state == State.OK
    (reason,) = [why for kind, why in _events(ledger.path) if kind == "untrusted"]
    assert "LabelTooLong" in reason
    assert await ledger.checkpoint("INBOX") == (stats.uidvalidity, 2)


async def test_a_temporary_dns_failure_puts_off_only_that_message(
    imap: ImapServer, ledger: Ledger, key: tuple[bytes, bytes]
) -> None:
    private, public = key
    slow, behind, later = new_uuid(), new_uuid(), new_uuid()
    await add_jobs(ledger, [slow, behind, later])
    append(imap, sign(mail(slow), private, selector=b"slow"), sign(mail(behind), private))
    lookup = Dns(public)
    watcher = Watcher(settings_for(imap, ledger.path, trust={"verify_dkim": True}), ledger, dnsfunc=lookup)
    try:
        first = await watcher.run_pass()
        assert first.outcomes == {"applied": 1} and first.held == 1
        assert (await ledger.get_job(behind)).state == State.OK
        assert (await ledger.get_job(slow)).state == State.AWAITING
        assert await ledger.checkpoint("INBOX") == (first.uidvalidity, 0)  # stays below the put-off UID
        assert _marked_uid(ledger.path) == 0  # so does the mark watermark: a crash re-marks what lies above
        append(imap, sign(mail(later), private))
        second = await watcher.run_pass()  # still down: the new mail is read all the same
        assert second.outcomes == {"duplicate": 1, "applied": 1} and second.held == 1
        assert (await ledger.get_job(later)).state == State.OK
        lookup.down = False
        third = await watcher.run_pass()
        assert third.held == 0 and third.outcomes == {"applied": 1, "duplicate": 2}
        assert (await ledger.get_job(slow)).state == State.OK
        assert await ledger.checkpoint("INBOX") == (third.uidvalidity, 3)
        fourth = await watcher.run_pass()
        assert fourth.fetched == 0
    finally:
        await watcher.close()
    with sqlite3.connect(ledger.path) as db:  # exactly once: one notification event per job
        counts = db.execute("SELECT uuid, count(*) FROM events WHERE kind = 'notification' GROUP BY uuid").fetchall()
    db.close()
    assert sorted(counts) == sorted([(slow, 1), (behind, 1), (later, 1)])


async def test_a_lasting_dns_failure_ends_untrusted_after_a_bound(
    imap: ImapServer, ledger: Ledger, key: tuple[bytes, bytes]
) -> None:
    private, public = key
    slow, behind = new_uuid(), new_uuid()
    await add_jobs(ledger, [slow, behind])
    append(imap, sign(mail(slow), private, selector=b"slow"), sign(mail(behind), private))
    watcher = Watcher(settings_for(imap, ledger.path, trust={"verify_dkim": True}), ledger, dnsfunc=Dns(public))
    try:
        for _ in range(DKIM_ATTEMPTS - 1):
            assert (await watcher.run_pass()).held == 1
        last = await watcher.run_pass()
    finally:
        await watcher.close()
    assert last.held == 0 and last.outcomes == {"untrusted": 1, "duplicate": 1}
    assert (await ledger.get_job(slow)).state == State.AWAITING
    (reason,) = [why for kind, why in _events(ledger.path) if kind == "untrusted"]
    assert f"still failing after {DKIM_ATTEMPTS} passes" in reason
    assert await ledger.checkpoint("INBOX") == (last.uidvalidity, 2)


# -- a trusted ERROR under confirm_with_status is a claim -------------------------------------


async def test_a_trusted_error_makes_the_job_due_for_a_status_call(imap: ImapServer, ledger: Ledger) -> None:
    claimed, terminal = new_uuid(), new_uuid()
    await add_jobs(ledger, [claimed, terminal])
    with sqlite3.connect(ledger.path) as db:
        db.execute("UPDATE jobs SET check_at = '2999-01-01T00:00:00.000000Z'")
    db.close()
    append(imap, mail(claimed, "ERROR"))
    watcher = Watcher(settings_for(imap, ledger.path, trust={"confirm_with_status": True}), ledger)
    try:
        assert (await watcher.run_pass()).outcomes == {"claimed": 1}
    finally:
        await watcher.close()
    job = await ledger.get_job(claimed)
    assert job.state == State.AWAITING and job.claim is None  # the chaser asks; no OK is claimed
    assert job.check_at is not None and job.check_at < "2999"  # due now, not when it was due before
    append(imap, mail(terminal, "ERROR"))  # without confirm_with_status a trusted ERROR ends the job, as before
    watcher = Watcher(settings_for(imap, ledger.path), ledger)
    try:
        assert (await watcher.run_pass()).outcomes == {"applied": 1}
    finally:
        await watcher.close()
    assert (await ledger.get_job(terminal)).state == State.ERROR


@pytest.mark.timeout(120)
def test_a_trusted_error_is_a_claim_the_status_call_decides(stack: Stack) -> None:
    processing = sorted(UUIDS_211)[3]  # the SAT will accept: the ERROR mail is a forgery
    failing = new_uuid()[:-1] + "E"  # the simulator's rule: the SAT refuses this one (a status failure code)
    stack.sandbox.service.notify_delay_s = 3600  # the provider keeps both in process (211), silently
    stack.queue([processing, failing])
    stack.start_daemon()
    wait_until(lambda: set(stack.states().values()) == {"awaiting"}, 30, "the jobs to be accepted")
    for uuid in (processing, failing):
        stack.imap.deliver(mail(uuid, "ERROR"))
    wait_until(lambda: len(events_of(stack, "notification")) == 2, 30, "the ERRORs to be read")
    for claim in events_of(stack, "notification"):
        assert claim["outcome"] == "claimed" and "ERROR claimed" in str(claim["reason"])

    def asked_since_claim(uuid: str) -> list[int]:
        rows = stack.query("SELECT kind, json_extract(detail, '$.code') FROM events WHERE uuid = ? ORDER BY id", [uuid])
        after = [code for i, (kind, code) in enumerate(rows) if kind == "status" and ("notification", None) in rows[:i]]
        return [int(c) for c in after]

    for uuid in (processing, failing):
        wait_until(lambda u=uuid: 211 in asked_since_claim(u), 30, "the status call to be asked after the claim")
    assert set(stack.states().values()) == {"awaiting"}  # a trusted ERROR is not terminal: 211 keeps asking
    stack.sandbox.service.decide_now(processing, failing)
    wait_until(lambda: stack.unresolved() == 0, 30, "the status call to decide")
    assert stack.states() == {processing: "ok", failing: "error"}
    assert asked_since_claim(processing)[-1] == 200 and asked_since_claim(failing)[-1] != 200
    assert stack.stop_daemon() == 0


async def test_watch_waits_before_asking_again_about_a_put_off_message(
    imap: ImapServer, ledger: Ledger, key: tuple[bytes, bytes]
) -> None:
    """A pass that put a message off is not a reason to run the next one at once: that would spend
    the message's bounded retries in a second. The watcher waits its poll interval instead."""
    private, public = key
    slow = new_uuid()
    await add_jobs(ledger, [slow])
    append(imap, sign(mail(slow), private, selector=b"slow"))
    stop = asyncio.Event()
    passes: list[PassStats] = []

    def on_pass(stats: PassStats) -> None:
        passes.append(stats)
        asyncio.get_running_loop().call_soon(stop.set)  # runs at the watcher's next await

    settings = settings_for(imap, ledger.path, idle=False, poll_interval_s=60, trust={"verify_dkim": True})
    watcher = Watcher(settings, ledger, dnsfunc=Dns(public), on_pass=on_pass)
    try:
        await asyncio.wait_for(watcher.watch(stop), 30)
    finally:
        await watcher.close()
    assert [p.held for p in passes] == [1]

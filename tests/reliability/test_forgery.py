"""Forgery: notifications nobody should believe change no job, and each is recorded with its reason.

The first test drives the real daemon (subprocess, simulator, Dovecot): forged senders,
spoofed display names, look-alike domains, then failing, foreign and missing
Authentication-Results (``[mailbox.trust] authserv_id`` set through the environment), and a
valid-looking OK for a job the provider still reports as processing (211): it is only a
*claim* until the status call answers 200.

DKIM is checked one level down, at the :class:`~reconciler.mailbox.watcher.Watcher` against Dovecot:
the daemon builds its Watcher without a DNS hook and the test machine has no DNS, so a key
cannot be published where the daemon subprocess would look it up; the Watcher takes the
``dnsfunc`` that serves the locally generated key.
"""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Iterator
from email.utils import make_msgid
from pathlib import Path

import dkim
import pytest

from reconciler.jobs.states import State
from reconciler.ledger.store import Ledger
from reconciler.mailbox.watcher import Watcher
from reconciler.sandbox import UUIDS_211
from reconciler.sandbox.imapserver import ImapServer

from ..fixtures_imap import add_jobs, append, new_uuid, notification, settings_for
from ..harness import Stack, generated_uuids, wait_until
from .support import events_of, spawn_daemon, wait_started

DOMAIN = "solucionfactible.com"
GOOD = f"Solución Factible <notificaciones@{DOMAIN}>"
AUTHSERV = "mx.reconciler.test"


def mail(uuid: str, status: str, sender: str | None, extra: str = "") -> bytes:
    """A notification as an attacker would write it: every header the daemon reads, chosen freely."""
    head = f"From: {sender}\r\n" if sender is not None else ""
    return (
        f"{extra}{head}To: facturas@example.com\r\nSubject: Cancelacion {uuid}\r\n"
        f"Date: Mon, 24 Nov 2025 07:02:03 +0000\r\nMessage-ID: {make_msgid(domain='forgery.test')}\r\n"
        f"X-SFService: Cancelar\r\nX-UUIDCancelacion: {uuid}\r\nX-StatusCancelacion: {status}\r\n\r\nok\r\n"
    ).encode()


def untrusted(stack: Stack) -> list[dict[str, object]]:
    return events_of(stack, "untrusted")


@pytest.mark.timeout(150)
def test_forged_notifications_change_nothing_and_are_recorded(stack: Stack) -> None:
    processing, silent = sorted(UUIDS_211)[:2]
    # The provider keeps these two "in process" (211) until the test lets the SAT answer.
    stack.sandbox.service.notify_delay_s = 3600
    stack.queue([processing, silent])
    stack.start_daemon()
    wait_until(lambda: set(stack.states().values()) == {"awaiting"}, 30, "the 211 jobs to be accepted")
    stack.sandbox.service.notify_delay_s = 0.3
    others = generated_uuids(12, seed=77)
    stack.queue(others)
    wait_until(lambda: stack.unresolved() == 2, 60, "the other jobs to resolve")
    failed = next(u for u in others if stack.states()[u] == "error")
    done = next(u for u in others if stack.states()[u] == "ok")
    before = stack.states()

    # -- senders -----------------------------------------------------------------------------
    forged = [
        (processing, "OK", "attacker@evil.example", "not in mailbox.trust.allowed_senders"),
        (processing, "OK", "notificaciones@solucionfactib1e.com", "not in mailbox.trust.allowed_senders"),
        (processing, "OK", f"notificaciones@{DOMAIN}.mx", "not in mailbox.trust.allowed_senders"),
        (processing, "OK", "notificaciones@xn--solucinfactible-xlb.com", "not in mailbox.trust.allowed_senders"),
        (processing, "OK", "notificaciones@soluciónfactible.com", "From is not a valid address"),
        (processing, "OK", f'"notificaciones@{DOMAIN}" <evil@attacker.example>', "evil@attacker.example"),
        (processing, "OK", f"=?utf-8?q?notificaciones=40{DOMAIN}?= <evil@attacker.example>", "evil@attacker.example"),
        (processing, "OK", f"notificaciones@{DOMAIN}, evil@attacker.example", "2 mailboxes"),
        (processing, "OK", None, "no From address"),
        (silent, "ERROR", f"Solución Factible <soporte@{DOMAIN}.evil.example>", "not in mailbox.trust"),
        (silent, "ERROR", f"notificaciones@{DOMAIN} <evil@attacker.example>", "From is not a valid address"),
        (silent, "ERROR", f"notificaciones@{DOMAIN}@evil.example", "From is not a valid address"),
        (done, "ERROR", f"x@mail.{DOMAIN}.evil.example", "not in mailbox.trust.allowed_senders"),
        (failed, "OK", "notificaciones@solucionfactible.co", "not in mailbox.trust.allowed_senders"),
    ]
    for uuid, status, sender, _ in forged:
        stack.imap.deliver(mail(uuid, status, sender))
    # From a stranger, with the provider's address only in Sender and Reply-To.
    stack.imap.deliver(
        mail(silent, "ERROR", "evil@attacker.example", f"Sender: notificaciones@{DOMAIN}\r\nReply-To: x@{DOMAIN}\r\n")
    )
    forged.append((silent, "ERROR", "evil@attacker.example", "evil@attacker.example is not in"))
    wait_until(lambda: len(untrusted(stack)) == len(forged), 30, "every forgery to be recorded")
    assert stack.states() == before
    recorded = untrusted(stack)
    for uuid, _status, sender, reason in forged:
        mine = [e for e in recorded if e["uuid"] == uuid and reason in str(e["reason"])]
        assert mine, f"no untrusted event for {sender!r} -> {uuid} with reason {reason!r}: {recorded}"

    # -- a valid-looking OK while the provider still says 211; trusted contradictions ---------------
    stack.imap.deliver(mail(processing, "OK", GOOD))
    stack.imap.deliver(mail(failed, "OK", GOOD))
    stack.imap.deliver(mail(done, "ERROR", GOOD))
    wait_until(lambda: len(events_of(stack, "conflict")) >= 2, 30, "the contradictions to be recorded")
    wait_until(
        lambda: any(e["code"] == 211 for e in status_events(stack, processing, after_claim=True)),
        30,
        "the confirmer to ask about the claimed OK",
    )
    assert stack.states() == before
    assert stack.query("SELECT claim FROM jobs WHERE uuid = ?", [processing]) == [("OK",)]
    (claim,) = [e for e in events_of(stack, "notification") if e["uuid"] == processing]
    assert claim["outcome"] == "claimed" and "awaiting confirmation" in str(claim["reason"])
    conflicts = {str(e["uuid"]): str(e["reason"]) for e in events_of(stack, "conflict")}
    assert "contradicts terminal state error" in conflicts[failed]
    assert "contradicts terminal state ok" in conflicts[done]
    assert stack.stop_daemon() == 0

    # -- Authentication-Results, with our server's authserv-id configured ---------------------------
    env = {"RECONCILER_MAILBOX__TRUST__AUTHSERV_ID": AUTHSERV}
    ar = "Authentication-Results: {}\r\n"
    gated = [
        (processing, "OK", "", f"no Authentication-Results header from {AUTHSERV}"),
        (processing, "OK", ar.format(f"{AUTHSERV}; dkim=fail header.d={DOMAIN}; dmarc=fail header.from={DOMAIN}"), "dkim=fail"),
        (processing, "OK", ar.format(f"mx.evil.example; dkim=pass header.d={DOMAIN}"), "no Authentication-Results header from"),
        (processing, "OK", ar.format(f"{AUTHSERV}; dkim=pass header.d=evil.example"), "dkim=pass for evil.example"),
        (processing, "OK", ar.format(f"{AUTHSERV}; dmarc=pass header.from={DOMAIN}.mx"), f"need a pass for {DOMAIN}"),
        (processing, "OK", ar.format(f"{AUTHSERV}; dkim=pass header.d={DOMAIN}.evil.example"), "need a pass"),
        (processing, "OK", ar.format(f"{AUTHSERV}; dkim=none") + ar.format(f"{AUTHSERV}; dkim=pass header.d={DOMAIN}"), "dkim=none"),
        (silent, "ERROR", "", f"no Authentication-Results header from {AUTHSERV}"),
        (silent, "ERROR", ar.format(f"{AUTHSERV}; dmarc=fail header.from={DOMAIN}"), "dmarc=fail"),
    ]  # fmt: skip
    seen = len(untrusted(stack))
    for uuid, status, extra, _ in gated:
        stack.imap.deliver(mail(uuid, status, GOOD, extra))
    spawn_daemon(stack, env=env)
    wait_started(stack)
    wait_until(lambda: len(untrusted(stack)) == seen + len(gated), 30, "every gated forgery to be recorded")
    assert stack.states() == before
    recorded = untrusted(stack)[seen:]
    for uuid, _status, _extra, reason in gated:
        assert any(e["uuid"] == uuid and reason in str(e["reason"]) for e in recorded), (reason, recorded)

    # -- the SAT answers: the claim is confirmed by the status call, never by the email -------------
    stack.sandbox.service.decide_now(processing, silent)
    wait_until(lambda: stack.unresolved() == 0, 30, "the two 211 jobs to be confirmed")
    assert stack.states()[processing] == "ok" and stack.states()[silent] == "ok"
    history = stack.query(
        "SELECT kind, json_extract(detail, '$.code'), json_extract(detail, '$.to') FROM events "
        "WHERE uuid = ? AND kind IN ('status', 'transition') ORDER BY id",
        [processing],
    )
    to_ok = history.index(("transition", None, "ok"))
    assert history[to_ok - 1] == ("status", 200, None), history
    assert all(code == 211 for kind, code, _ in history[: to_ok - 1] if kind == "status"), history
    assert stack.stop_daemon() == 0
    assert "Traceback" not in stack.log_text()


def status_events(stack: Stack, uuid: str, *, after_claim: bool) -> list[dict[str, object]]:
    rows = stack.query("SELECT kind, detail FROM events WHERE uuid = ? ORDER BY id", [uuid])
    out: list[dict[str, object]] = []
    claimed = not after_claim
    for kind, detail in rows:
        d = json.loads(detail)
        if kind == "notification" and d.get("outcome") == "claimed":
            claimed = True
        elif kind == "status" and claimed:
            out.append(d)
    return out


# -- DKIM at the Watcher -------------------------------------------------------------------------


def _rsa_key(path: Path) -> tuple[bytes, bytes]:
    subprocess.run(["openssl", "genrsa", "-out", str(path), "2048"], check=True, capture_output=True, timeout=60)
    der = subprocess.run(
        ["openssl", "rsa", "-in", str(path), "-pubout", "-outform", "DER"], check=True, capture_output=True, timeout=60
    ).stdout
    return path.read_bytes(), base64.b64encode(der)


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[bytes, bytes]]:
    d = tmp_path_factory.mktemp("dkim")
    return {"published": _rsa_key(d / "a.pem"), "attacker": _rsa_key(d / "b.pem")}


@pytest.fixture
def dovecot_server(tmp_path: Path) -> Iterator[ImapServer]:
    from reconciler.sandbox.imapserver import dovecot_available, start_dovecot, start_pymap

    start = start_dovecot if dovecot_available() else start_pymap
    with start(tmp_path / "imap", "facturas", "dkim-test-pass") as server:
        yield server


INCLUDE = [b"from", b"date", b"message-id", b"x-uuidcancelacion", b"x-statuscancelacion"]


async def test_dkim_that_does_not_verify_changes_nothing(
    dovecot_server: ImapServer, keys: dict[str, tuple[bytes, bytes]], tmp_path: Path
) -> None:
    published_key, published_pub = keys["published"]
    attacker_key, _ = keys["attacker"]

    def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
        if name.rstrip(b".") == f"sel._domainkey.{DOMAIN}".encode():
            return b"v=DKIM1; k=rsa; p=" + published_pub
        return None

    def sign(raw: bytes, key: bytes = published_key, domain: str = DOMAIN, selector: bytes = b"sel", include: list[bytes] = INCLUDE) -> bytes:  # fmt: skip
        signature: bytes = dkim.sign(raw, selector, domain.encode(), key, include_headers=include)
        return signature + raw

    genuine = new_uuid()
    cases = {
        "body altered": (lambda u: sign(notification(u)).replace(b"procesada", b"rechazada"), "does not verify"),
        "status altered": (
            lambda u: sign(notification(u, "ERROR")).replace(b"Cancelacion: ERROR", b"Cancelacion: OK"),
            "does not verify",
        ),
        "uuid altered": (lambda u: _swap_uuid(sign(notification(new_uuid())), u), "does not verify"),
        "attacker's key": (lambda u: sign(notification(u), key=attacker_key), "does not verify"),
        "unpublished selector": (lambda u: sign(notification(u), selector=b"other"), "does not verify"),
        "foreign d=": (lambda u: sign(notification(u), domain="evil.example"), "does not align"),
        "look-alike d=": (lambda u: sign(notification(u), domain=f"{DOMAIN}.evil.example"), "does not align"),
        "status not signed": (lambda u: sign(notification(u), include=[b"from", b"date"]), "does not sign"),
        "unsigned": (notification, "no DKIM-Signature header"),
    }
    targets = {name: new_uuid() for name in cases}
    ledger = await Ledger.open(tmp_path / "ledger.sqlite3")
    try:
        await add_jobs(ledger, [genuine, *targets.values()])
        append(dovecot_server, sign(notification(genuine)), *(build(targets[n]) for n, (build, _) in cases.items()))
        settings = settings_for(dovecot_server, ledger.path, trust={"verify_dkim": True, "confirm_with_status": False})
        watcher = Watcher(settings, ledger, dnsfunc=dnsfunc)
        try:
            stats = await watcher.run_pass()
        finally:
            await watcher.close()
        assert stats.outcomes == {"applied": 1, "untrusted": len(cases)}
        assert (await ledger.get_job(genuine)).state == State.OK
        for name, (_, reason) in cases.items():
            uuid = targets[name]
            assert (await ledger.get_job(uuid)).state == State.AWAITING, name
            (event,) = [e for e in await ledger.events(uuid) if e.kind == "untrusted"]
            assert reason in event.detail["reason"], (name, event.detail["reason"])
    finally:
        await ledger.close()


def _swap_uuid(raw: bytes, uuid: str) -> bytes:
    """Replace the signed X-UUIDCancelacion value with another job's UUID."""
    head, _, rest = raw.partition(b"X-UUIDCancelacion: ")
    return head + b"X-UUIDCancelacion: " + uuid.encode() + rest[36:]

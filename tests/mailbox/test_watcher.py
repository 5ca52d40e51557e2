"""The poller against real IMAP servers on loopback: Dovecot (when installed) and pymap."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import dkim
import pytest

from reconciler.errors import MailboxError
from reconciler.jobs.states import State
from reconciler.ledger.store import Ledger
from reconciler.mailbox.imap import open_imap, uid_set
from reconciler.mailbox.watcher import PassStats, Watcher
from reconciler.sandbox.imapserver import ImapServer
from tests.fixtures_imap import (
    PASSWORD,
    SENDER,
    USER,
    add_jobs,
    append,
    connect,
    flags_by_uuid,
    new_uuid,
    notification,
    plain_mail,
    settings_for,
)
from tests.harness import eventually

SEEN = b"\\Seen"


async def state(ledger: Ledger, uuid: str) -> State:
    return (await ledger.get_job(uuid)).state


async def pass_through_errors(watcher: Watcher, attempts: int = 5) -> PassStats:
    """run_pass, reconnecting after the MailboxError a dropped connection gives."""
    for _ in range(attempts - 1):
        try:
            return await watcher.run_pass()
        except MailboxError:
            continue
    return await watcher.run_pass()


def test_uid_set_is_compact() -> None:
    assert uid_set([7, 1, 2, 3, 3, 9, 10]) == "1:3,7,9:10"
    assert uid_set([5]) == "5"


async def test_applies_each_notification_once_and_leaves_other_mail(
    imap_server: ImapServer, ledger: Ledger, tmp_path: Path
) -> None:
    ok, err, dup, conflicting = new_uuid(), new_uuid(), new_uuid(), new_uuid()
    orphan, forged, lookalike, malformed = new_uuid(), new_uuid(), new_uuid(), new_uuid()
    await add_jobs(ledger, [ok, err, dup, forged, lookalike, malformed])
    await add_jobs(ledger, [conflicting], state="error")
    append(imap_server, plain_mail("Flagged one"), flags=(b"\\Flagged",))
    append(
        imap_server,
        notification(ok, "OK"),
        notification(err, "error"),
        notification(dup, "OK", message_id="<same@solucionfactible.com>"),
        notification(dup, "OK", message_id="<same@solucionfactible.com>"),
        notification(conflicting, "OK"),
        notification(orphan, "OK"),
        notification(forged, "OK", sender=f"{SENDER} <attacker@evil.example>"),
        notification(lookalike, "OK", sender="avisos@solucionfactible.com.mx"),
        notification(malformed, "MAYBE"),
        plain_mail("Unread one"),
    )
    watcher = Watcher(settings_for(imap_server, ledger.path), ledger)
    try:
        stats = await watcher.run_pass()
        again = await watcher.run_pass()
    finally:
        await watcher.close()

    assert stats.fetched == 11 and stats.notifications == 9 and stats.applied == 3
    assert stats.outcomes == {
        "applied": 3, "duplicate": 1, "conflict": 1, "orphan": 1, "untrusted": 2, "malformed": 1,
    }  # fmt: skip
    assert again.fetched == 0
    assert await state(ledger, ok) == State.OK
    assert await state(ledger, err) == State.ERROR
    assert await state(ledger, dup) == State.OK
    assert await state(ledger, conflicting) == State.ERROR
    for untouched in (forged, lookalike, malformed):
        assert await state(ledger, untouched) == State.AWAITING
    reasons = {e.kind: str(e.detail.get("reason")) for u in (forged, malformed) for e in await ledger.events(u)}
    assert "attacker@evil.example" in reasons["untrusted"]
    assert "MAYBE" in reasons["malformed"]
    assert [e.detail["uuid"] for e in await ledger.events(None) if e.kind == "orphan"] == [orphan]

    flags = flags_by_uuid(imap_server)
    assert flags["Flagged one"] == {b"\\Flagged"} and flags["Unread one"] == set()
    assert flags[ok] == flags[err] == flags[dup] == {SEEN}
    for left in (conflicting, orphan, forged, lookalike, malformed):
        assert SEEN not in flags[left], left
    facts = await ledger.facts()
    assert facts["mailbox_pass"]["fetched"] == 0 and "duration_s" in facts["mailbox_pass"]


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
async def test_processed_folder_move(kind: str, imap_factory: Any, ledger: Ledger) -> None:
    """pymap offers MOVE; our Dovecot hides it, so the COPY + \\Deleted + UID EXPUNGE path runs."""
    server: ImapServer = imap_factory(kind, **({"move": False} if kind == "dovecot" else {}))
    done, orphan = new_uuid(), new_uuid()
    await add_jobs(ledger, [done])
    append(server, plain_mail("Keep me"), notification(done), notification(orphan))
    watcher = Watcher(settings_for(server, ledger.path, processed_folder="Procesadas"), ledger)
    try:
        await watcher.connect()
        assert (b"MOVE" in watcher.capabilities) is (kind == "pymap")
        await watcher.run_pass()
    finally:
        await watcher.close()
    assert await state(ledger, done) == State.OK
    assert set(flags_by_uuid(server)) == {"Keep me", orphan}
    assert set(flags_by_uuid(server, "Procesadas")) == {done}


async def test_delivery_during_idle_reaches_ok_quickly(imap_server: ImapServer, ledger: Ledger) -> None:
    uuid = new_uuid()
    await add_jobs(ledger, [uuid])
    # Polling once an hour and renewing IDLE every IDLE_RENEW_S: only IDLE itself can bring the mail in
    # within the deadline, and only the stop flag can end the IDLE, so no elapsed time needs asserting.
    watcher = Watcher(settings_for(imap_server, ledger.path, idle=True, poll_interval_s=3600), ledger)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.watch(stop))
    try:
        await eventually(lambda: _has_fact(ledger))  # first pass done, now idling
        await asyncio.to_thread(append, imap_server, notification(uuid))
        await eventually(lambda: _is(ledger, uuid, State.OK), 60, "the mail delivered during IDLE to be applied")
        stop.set()
        await asyncio.wait_for(task, 60)  # stop interrupts IDLE (else: IDLE_RENEW_S, 290 s)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await watcher.close()


async def test_polling_without_idle(imap_server: ImapServer, ledger: Ledger) -> None:
    uuid = new_uuid()
    await add_jobs(ledger, [uuid])
    watcher = Watcher(settings_for(imap_server, ledger.path, idle=False, poll_interval_s=0.2), ledger)
    stop = asyncio.Event()
    task = asyncio.create_task(watcher.watch(stop))
    try:
        await eventually(lambda: _has_fact(ledger))
        await asyncio.to_thread(append, imap_server, notification(uuid, "ERROR"))
        await eventually(lambda: _is(ledger, uuid, State.ERROR))
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await watcher.close()


async def test_watch_survives_a_restart_during_idle_with_one_warning(
    dovecot: ImapServer, ledger: Ledger, caplog: pytest.LogCaptureFixture
) -> None:
    uuid = new_uuid()
    await add_jobs(ledger, [uuid])
    watcher = Watcher(settings_for(dovecot, ledger.path), ledger)
    stop = asyncio.Event()
    caplog.set_level(logging.DEBUG, logger="reconciler.mailbox.watcher")
    task = asyncio.create_task(watcher.watch(stop))
    try:
        await eventually(lambda: _has_fact(ledger))
        dovecot.stop()
        await eventually(lambda: _logged(caplog, "mailbox unavailable"))
        await eventually(lambda: _logged(caplog, "still unavailable"), 15)  # a retry failed, quietly
        dovecot.start()
        append(dovecot, notification(uuid))
        await eventually(lambda: _is(ledger, uuid, State.OK), 30)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await watcher.close()
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING and "unavailable" in r.getMessage()]
    assert len(warnings) == 1
    assert any("reachable again" in r.getMessage() for r in caplog.records if r.levelno == logging.INFO)


async def test_server_restart_in_the_middle_of_a_pass(dovecot: ImapServer, ledger: Ledger) -> None:
    uuids = [new_uuid() for _ in range(600)]
    await add_jobs(ledger, uuids)
    dovecot.stop()
    for u in uuids:
        dovecot.deliver(notification(u))
    dovecot.start()

    class RestartingWatcher(Watcher):  # the server goes down just as the third batch is fetched
        fetches = 0

        def _fetch_headers(self, first: int, last: int) -> dict[int, bytes]:
            self.fetches += 1
            if self.fetches == 3:
                dovecot.restart()
            return super()._fetch_headers(first, last)

    watcher = RestartingWatcher(settings_for(dovecot, ledger.path, batch_size=100), ledger)
    try:
        with pytest.raises(MailboxError):
            await watcher.run_pass()
        partial = (await ledger.counts())["ok"]
        assert 0 < partial < len(uuids)
        await pass_through_errors(watcher)
    finally:
        await watcher.close()
    assert (await ledger.counts())["ok"] == len(uuids)
    assert await ledger.event_count("notification") == len(uuids)  # nothing applied twice
    assert all(f == {SEEN} for f in flags_by_uuid(dovecot).values())


async def test_crash_between_commit_and_mark_marks_later_and_applies_once(
    imap_server: ImapServer, ledger: Ledger
) -> None:
    class CrashingWatcher(Watcher):
        crashed = False

        def _mark(self, uids: list[int]) -> None:
            if not self.crashed:
                self.crashed = True
                raise MailboxError("simulated crash after the commit, before the mark")
            super()._mark(uids)

    uuid = new_uuid()
    await add_jobs(ledger, [uuid])
    append(imap_server, notification(uuid))
    watcher = CrashingWatcher(settings_for(imap_server, ledger.path), ledger)
    try:
        with pytest.raises(MailboxError):
            await watcher.run_pass()
        assert await state(ledger, uuid) == State.OK
        assert flags_by_uuid(imap_server)[uuid] == set()
        await watcher.run_pass()
    finally:
        await watcher.close()
    assert flags_by_uuid(imap_server)[uuid] == {SEEN}
    assert await ledger.event_count("notification") == 1


async def test_uidvalidity_change_rescans_without_double_application(imap_server: ImapServer, ledger: Ledger) -> None:
    first, later = [new_uuid() for _ in range(3)], new_uuid()
    await add_jobs(ledger, [*first, later])
    append(imap_server, *(notification(u) for u in first), plain_mail())
    watcher = Watcher(settings_for(imap_server, ledger.path), ledger)
    try:
        stats = await watcher.run_pass()
        new_validity = imap_server.change_uidvalidity()
        assert new_validity != stats.uidvalidity
        append(imap_server, notification(later, "ERROR"))
        rescan = await pass_through_errors(watcher)
    finally:
        await watcher.close()
    assert rescan.rescan and rescan.uidvalidity == new_validity
    assert rescan.fetched == 5 and rescan.outcomes == {"duplicate": 3, "applied": 1}
    assert await ledger.event_count("notification") == 4
    assert await state(ledger, later) == State.ERROR
    flags = flags_by_uuid(imap_server)
    assert all(flags[u] == {SEEN} for u in [*first, later])  # duplicates of applied ones are marked again


async def test_backlog_of_thousands(dovecot: ImapServer, ledger: Ledger) -> None:
    uuids = [new_uuid() for _ in range(3000)]
    await add_jobs(ledger, uuids)
    dovecot.stop()
    for i, u in enumerate(uuids):
        dovecot.deliver(notification(u, "OK" if i % 3 else "ERROR"))
        if i % 10 == 0:
            dovecot.deliver(plain_mail(f"other {i}"))
    dovecot.start()
    watcher = Watcher(settings_for(dovecot, ledger.path), ledger)
    try:  # how fast: bench/reconcile.py measures it; a test only checks what happened
        stats = await watcher.run_pass()
    finally:
        await watcher.close()
    assert stats.fetched == 3300 and stats.applied == 3000 and stats.marked == 3000
    counts = await ledger.counts()
    assert counts["ok"] == 2000 and counts["error"] == 1000
    flags = flags_by_uuid(dovecot)
    assert sum(1 for k, f in flags.items() if k.startswith("other") and f == set()) == 300


async def test_authentication_results_gate(imap_server: ImapServer, ledger: Ledger) -> None:
    good, failing, foreign, missing = (new_uuid() for _ in range(4))
    await add_jobs(ledger, [good, failing, foreign, missing])
    domain = SENDER.rpartition("@")[2]
    ar = "Authentication-Results: mx.example.com; {}\r\n"
    append(
        imap_server,
        notification(good, extra=ar.format(f"dkim=pass header.d={domain}; dmarc=pass header.from={domain}")),
        notification(failing, extra=ar.format(f"dkim=fail header.d={domain}; dmarc=fail header.from={domain}")),
        notification(foreign, extra=f"Authentication-Results: forged.example; dmarc=pass header.from={domain}\r\n"),
        notification(missing),
    )
    settings = settings_for(imap_server, ledger.path, trust={"authserv_id": "mx.example.com"})
    watcher = Watcher(settings, ledger)
    try:
        stats = await watcher.run_pass()
    finally:
        await watcher.close()
    assert stats.outcomes == {"applied": 1, "untrusted": 3}
    assert await state(ledger, good) == State.OK
    for u in (failing, foreign, missing):
        assert await state(ledger, u) == State.AWAITING
        (event,) = [e for e in await ledger.events(u) if e.kind == "untrusted"]
        assert "mx.example.com" in event.detail["reason"]


async def test_verify_dkim_fetches_whole_message(dovecot: ImapServer, ledger: Ledger) -> None:
    from tests.mailbox.test_trust import KEY, dnsfunc

    signed, tampered, unsigned = new_uuid(), new_uuid(), new_uuid()
    await add_jobs(ledger, [signed, tampered, unsigned])
    include = [b"from", b"date", b"message-id", b"x-uuidcancelacion", b"x-statuscancelacion"]

    def sign(raw: bytes) -> bytes:
        signature: bytes = dkim.sign(raw, b"sel", b"solucionfactible.com", KEY, include_headers=include)
        return signature + raw

    bad = sign(notification(tampered)).replace(b"procesada", b"rechazada")
    append(dovecot, sign(notification(signed)), bad, notification(unsigned))
    settings = settings_for(dovecot, ledger.path, trust={"verify_dkim": True})
    watcher = Watcher(settings, ledger, dnsfunc=dnsfunc)
    try:
        stats = await watcher.run_pass()
    finally:
        await watcher.close()
    assert stats.outcomes == {"applied": 1, "untrusted": 2}
    assert await state(ledger, signed) == State.OK
    reasons = [
        e.detail["reason"] for u in (tampered, unsigned) for e in await ledger.events(u) if e.kind == "untrusted"
    ]
    assert "does not verify" in reasons[0] and "no DKIM-Signature" in reasons[1]


# -- the connection seam -------------------------------------------------------


def test_tls_verifies_the_certificate(imap_factory: Any, tmp_path: Path) -> None:
    server: ImapServer = imap_factory("dovecot", security="tls")
    settings = settings_for(server, tmp_path / "l.sqlite3", security="tls", ca_file=str(server.ca_file))
    open_imap(settings).logout()
    with pytest.raises(MailboxError, match="certificate verify failed"):
        open_imap(settings_for(server, tmp_path / "l.sqlite3", security="tls"))


@pytest.mark.parametrize("kind", ["dovecot", "pymap"])
def test_starttls(kind: str, imap_factory: Any, tmp_path: Path) -> None:
    server: ImapServer = imap_factory(kind, **({"security": "starttls"} if kind == "dovecot" else {"tls": True}))
    settings = settings_for(server, tmp_path / "l.sqlite3", security="starttls", ca_file=str(server.ca_file))
    client = open_imap(settings)
    assert client.select_folder("INBOX")[b"UIDVALIDITY"]
    client.logout()


def test_bad_password_names_the_user_not_the_password(imap_server: ImapServer, tmp_path: Path) -> None:
    settings = settings_for(imap_server, tmp_path / "l.sqlite3", password="wrong-Secret-42")
    with pytest.raises(MailboxError) as info:
        open_imap(settings)
    assert USER in str(info.value) and "wrong-Secret-42" not in str(info.value)
    assert "\n" not in str(info.value)


def test_unreachable_server_is_a_mailbox_error(tmp_path: Path, imap_factory: Any) -> None:
    server: ImapServer = imap_factory("pymap")
    server.stop()
    with pytest.raises(MailboxError, match="cannot connect"):
        open_imap(settings_for(server, tmp_path / "l.sqlite3"))


def test_xoauth2_token_from_file_command_and_credential(
    dovecot: ImapServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dovecot 2.3 checks an XOAUTH2 bearer token against its passdb: the password stands in for a token."""
    token_file = tmp_path / "token"
    token_file.write_text(PASSWORD + "\n")
    base = {"auth": "xoauth2", "password": None}
    open_imap(settings_for(dovecot, tmp_path / "l.sqlite3", oauth2_token_file=str(token_file), **base)).logout()
    command = f"printf '%s\\n' {PASSWORD}"
    open_imap(settings_for(dovecot, tmp_path / "l.sqlite3", oauth2_token_command=command, **base)).logout()
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mailbox_oauth2_token").write_text(PASSWORD)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    open_imap(settings_for(dovecot, tmp_path / "l.sqlite3", **base)).logout()
    with pytest.raises(MailboxError, match="oauth2_token_command exited with 3"):
        open_imap(settings_for(dovecot, tmp_path / "l.sqlite3", oauth2_token_command="sh -c 'exit 3'", **base))
    (creds / "mailbox_oauth2_token").write_text("expired-token-xyz")
    with pytest.raises(MailboxError) as info:
        open_imap(settings_for(dovecot, tmp_path / "l.sqlite3", **base))
    assert "expired-token-xyz" not in str(info.value)


async def test_connect_reports_a_missing_folder(imap_server: ImapServer, ledger: Ledger) -> None:
    watcher = Watcher(settings_for(imap_server, ledger.path, folder="Nope"), ledger)
    try:
        with pytest.raises(MailboxError, match="mailbox"):
            await watcher.connect()
    finally:
        await watcher.close()
    client = connect(imap_server)
    client.logout()


async def _has_fact(ledger: Ledger) -> bool:
    return "mailbox_pass" in await ledger.facts()


async def _is(ledger: Ledger, uuid: str, wanted: State) -> bool:
    return await state(ledger, uuid) == wanted


async def _logged(caplog: pytest.LogCaptureFixture, text: str) -> bool:
    return any(text in r.getMessage() for r in caplog.records)

"""Real IMAP servers on loopback (Dovecot when installed, pymap always), plus notification builders."""

from __future__ import annotations

import email.utils
import itertools
import sqlite3
import uuid as uuidlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from imapclient import IMAPClient

from reconciler.config import Settings
from reconciler.jobs.validation import job_spec
from reconciler.ledger.store import Ledger
from reconciler.sandbox.imapserver import ImapServer, dovecot_available, start_dovecot, start_pymap

USER, PASSWORD = "facturas", "s3cret-pass"
SENDER = "notificaciones@solucionfactible.com"
RFC = "AAA010101AAA"
_ids = itertools.count(1)

needs_dovecot = pytest.mark.skipif(not dovecot_available(), reason="Dovecot is not installed (/usr/sbin/dovecot)")


def notification(
    uuid: str,
    status: str = "OK",
    *,
    sender: str = f"Solución Factible <{SENDER}>",
    message_id: str | None = None,
    extra: str = "",
    service: str = "Cancelar",
    body: str = "La solicitud de cancelación fue procesada.\r\n",
) -> bytes:
    """A provider notification as the provider sends it (headers in the ERROR example's order)."""
    mid = message_id or f"<{next(_ids)}.{uuidlib.uuid4().hex[:8]}@solucionfactible.com>"
    head = (
        f"{extra}"
        f"From: {sender}\r\n"
        "To: facturas@example.com\r\n"
        f"Subject: Cancelacion {uuid}\r\n"
        f"Date: {email.utils.format_datetime(datetime(2025, 11, 24, 7, 2, 3, tzinfo=UTC))}\r\n"
        f"Message-ID: {mid}\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"X-SFService: {service}\r\n"
        f"X-StatusCancelacion: {status}\r\n"
        f"X-UUIDCancelacion: {uuid}\r\n"
    )
    return (head + "\r\n" + body).encode("utf-8")


def plain_mail(subject: str = "Lunch?") -> bytes:
    mid = f"<{next(_ids)}@example.com>"
    return (
        f"From: Ana <ana@example.com>\r\nTo: facturas@example.com\r\nSubject: {subject}\r\n"
        f"Message-ID: {mid}\r\n\r\nSee you at noon.\r\n"
    ).encode()


def new_uuid() -> str:
    return str(uuidlib.uuid4()).upper()


def connect(server: ImapServer) -> IMAPClient:
    client = IMAPClient(server.host, server.port, ssl=False, timeout=30)
    client.login(server.user, server.password)
    return client


def append(server: ImapServer, *messages: bytes, folder: str = "INBOX", flags: tuple[bytes, ...] = ()) -> None:
    """Deliver through IMAP APPEND, as a mail server would (wakes IDLE)."""
    client = connect(server)
    try:
        for raw in messages:
            client.append(folder, raw, flags=flags)
    finally:
        client.logout()


def flags_by_uuid(server: ImapServer, folder: str = "INBOX") -> dict[str, set[bytes]]:
    """UUID (or Subject for other mail) -> flags, for every message in ``folder``."""
    client = connect(server)
    try:
        client.select_folder(folder, readonly=True)
        uids = client.search()
        data = client.fetch(uids, ["FLAGS", "BODY.PEEK[HEADER.FIELDS (X-UUIDCANCELACION SUBJECT)]"]) if uids else {}
    finally:
        client.logout()
    out: dict[str, set[bytes]] = {}
    for item in data.values():
        header = next(v for k, v in item.items() if k.startswith(b"BODY[")).decode()
        key = ""
        for line in header.splitlines():
            name, _, value = line.partition(":")
            if name.lower() == "x-uuidcancelacion":
                key = value.strip().upper()
            elif name.lower() == "subject" and not key:
                key = value.strip()
        out[key] = set(item[b"FLAGS"]) - {b"\\Recent"}
    return out


def settings_for(server: ImapServer, ledger_path: Path, **mailbox: Any) -> Settings:
    trust = {"confirm_with_status": False, **mailbox.pop("trust", {})}
    return Settings(
        ledger={"path": ledger_path},
        mailbox={
            "host": server.host,
            "port": server.port,
            "security": "none",
            "username": server.user,
            "password": server.password,
            "timeout_s": 10,
            **mailbox,
            "trust": trust,
        },
    )


async def add_jobs(ledger: Ledger, uuids: list[str], state: str = "awaiting") -> None:
    """Jobs as the submitter leaves them: accepted by the provider, awaiting the notification."""
    await ledger.add_jobs([job_spec(u, RFC) for u in uuids], datetime.now(UTC), "test")
    if state != "queued":
        with sqlite3.connect(ledger.path) as db:
            db.executemany("UPDATE jobs SET state = ? WHERE uuid = ?", [(state, u) for u in uuids])
        db.close()


def _start(kind: str, root: Path, **kwargs: Any) -> ImapServer:
    if kind == "dovecot":
        if not dovecot_available():
            pytest.skip("Dovecot is not installed (/usr/sbin/dovecot)")
        return start_dovecot(root, USER, PASSWORD, **kwargs)
    return start_pymap(root, USER, PASSWORD, **kwargs)


@pytest.fixture(params=["dovecot", "pymap"])
def imap_server(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImapServer]:
    """Each real server in turn (Dovecot skipped only when its binary is absent)."""
    with _start(request.param, tmp_path / request.param) as server:
        yield server


@pytest.fixture
def dovecot(tmp_path: Path) -> Iterator[ImapServer]:
    with _start("dovecot", tmp_path / "dovecot") as server:
        yield server


@pytest.fixture
def imap_factory(tmp_path: Path) -> Iterator[Any]:
    """Start servers with options (``kind``, plus start_dovecot/start_pymap keywords); all stopped at the end."""
    started: list[ImapServer] = []

    def factory(kind: str, **kwargs: Any) -> ImapServer:
        server = _start(kind, tmp_path / f"{kind}{len(started)}", **kwargs)
        started.append(server)
        return server

    yield factory
    for server in started:
        server.stop()


@pytest.fixture
async def ledger(tmp_path: Path) -> AsyncIterator[Ledger]:
    opened = await Ledger.open(tmp_path / "ledger.sqlite3")
    try:
        yield opened
    finally:
        await opened.close()

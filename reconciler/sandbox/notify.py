"""The simulator's notification emails: how they look and how they reach a mailbox.

A :class:`Deliverer` thread holds the notifications due later and hands each,
when due, to a target: a Maildir directory or an IMAP server (APPEND).  A
failed delivery is retried every second for a minute, then dropped with an
error in the log.
"""

from __future__ import annotations

import heapq
import html
import itertools
import logging
import mailbox
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid
from pathlib import Path
from typing import Literal, Protocol

logger = logging.getLogger(__name__)

Security = Literal["none", "tls", "starttls"]


@dataclass(frozen=True, slots=True)
class Notification:
    """One email to send: the cancellation's UUID, ``OK`` or ``ERROR``, and what the request carried."""

    uuid: str
    status: Literal["OK", "ERROR"]
    to: str
    rfc: str
    message: str


def build_message(n: Notification, sender: str, sender_name: str, now: datetime) -> EmailMessage:
    """The provider's notification, with its automation headers (their order differs for OK and ERROR)."""
    msg = EmailMessage()
    msg["From"] = formataddr((sender_name, sender))
    msg["To"] = n.to
    msg["Subject"] = f"Cancelación de CFDI {n.uuid}"
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2] or "solucionfactible.com")
    msg["X-SFService"] = "Cancelar"
    if n.status == "OK":
        msg["X-UUIDCancelacion"] = n.uuid
        msg["X-StatusCancelacion"] = "OK"
        verdict = "fue cancelado exitosamente"
    else:
        msg["X-StatusCancelacion"] = "ERROR"
        msg["X-UUIDCancelacion"] = n.uuid
        verdict = "no pudo ser cancelado"
    when = now.strftime("%d/%m/%Y %H:%M:%S")
    text = (
        f"Estimado usuario:\n\nEl CFDI con folio fiscal {n.uuid} del emisor {n.rfc} {verdict}.\n"
        f"Mensaje: {n.message}\nFecha: {when}\n\nSolución Factible\n"
    )
    rows = "".join(
        f"<tr><th align='left'>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>"
        for k, v in (
            ("Folio fiscal (UUID)", n.uuid),
            ("RFC emisor", n.rfc),
            ("Estatus", n.status),
            ("Mensaje", n.message),
            ("Fecha", when),
        )
    )
    body = (
        "<!DOCTYPE html><html><head><meta charset='utf-8'><title>Cancelación de CFDI</title></head>"
        "<body style='font-family:Arial,sans-serif'>"
        "<h2 style='color:#1f4e79'>Solución Factible® - Cancelación asíncrona</h2>"
        f"<p>Estimado usuario:</p><p>El CFDI con folio fiscal <b>{html.escape(n.uuid)}</b> {verdict}.</p>"
        f"<table border='1' cellpadding='4' cellspacing='0'>{rows}</table>"
        "<p style='font-size:small;color:#777'>Este correo se generó automáticamente, por favor no responda.</p>"
        "</body></html>"
    )
    msg.set_content(text)
    msg.add_alternative(body, subtype="html")
    return msg


class Target(Protocol):
    def deliver(self, message: bytes, when: datetime) -> None: ...
    def close(self) -> None: ...


class MaildirTarget:
    """Writes each message into ``new/`` of a Maildir (created if missing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._box = mailbox.Maildir(path, create=True)

    def deliver(self, message: bytes, when: datetime) -> None:
        self._box.add(message)

    def close(self) -> None:
        self._box.close()


@dataclass(frozen=True)
class ImapConfig:
    """Where IMAP APPEND delivers; the password is not shown in the repr."""

    host: str
    port: int
    user: str
    password: str = ""
    folder: str = "INBOX"
    security: Security = "none"
    ca_file: Path | None = None
    timeout_s: float = 10.0

    def __repr__(self) -> str:
        return f"ImapConfig(host={self.host!r}, port={self.port}, user={self.user!r}, folder={self.folder!r})"


class ImapTarget:
    """APPENDs each message to a folder over one connection, reconnecting when it breaks."""

    def __init__(self, config: ImapConfig) -> None:
        self.config = config
        self._client: object | None = None

    def _connect(self) -> object:
        from imapclient import IMAPClient

        c = self.config
        context = ssl.create_default_context(cafile=str(c.ca_file) if c.ca_file else None)
        client = IMAPClient(c.host, port=c.port, ssl=c.security == "tls", ssl_context=context, timeout=c.timeout_s)
        try:
            if c.security == "starttls":
                client.starttls(context)
            client.login(c.user, c.password)
        except Exception:
            client.shutdown()
            raise
        return client

    def deliver(self, message: bytes, when: datetime) -> None:
        if self._client is None:
            self._client = self._connect()
        try:
            self._client.append(self.config.folder, message, msg_time=when)  # type: ignore[attr-defined]
        except Exception:
            self.close()
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()  # type: ignore[attr-defined]
        except Exception:
            try:
                client.shutdown()  # type: ignore[attr-defined]
            except Exception as e:
                logger.debug("closing the IMAP connection: %s", e)


class Deliverer:
    """A thread that sends each scheduled notification when it is due (``clock`` seconds, monotonic by default).

    With a clock a test moves by hand, call :meth:`wake` after moving it.
    """

    RETRY_S = 1.0
    ATTEMPTS = 60

    def __init__(
        self,
        target: Target | None,
        sender: str,
        sender_name: str,
        on_delivered: Callable[[Notification, bool], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.clock = clock
        self.target = target
        self.sender = sender
        self.sender_name = sender_name
        self.on_delivered = on_delivered
        self._heap: list[tuple[float, int, Notification, int]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="sandbox-deliverer", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def schedule(self, n: Notification, due: float) -> None:
        with self._cond:
            heapq.heappush(self._heap, (due, next(self._seq), n, 0))
            self._cond.notify()

    def wake(self) -> None:
        """Look again at what is due now (the clock was moved)."""
        with self._cond:
            self._cond.notify()

    def pending(self) -> int:
        with self._cond:
            return len(self._heap)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the thread; notifications not yet due are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        if self._thread.is_alive():
            self._thread.join(timeout)
        if self.target is not None:
            self.target.close()

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._stopping and (not self._heap or self._heap[0][0] > self.clock()):
                    wait = self._heap[0][0] - self.clock() if self._heap else None
                    self._cond.wait(wait)
                if self._stopping:
                    return
                _due, _seq, n, attempts = heapq.heappop(self._heap)
            self._send(n, attempts)

    def _send(self, n: Notification, attempts: int) -> None:
        if self.target is None:
            logger.debug("no mail target configured: notification for %s not sent", n.uuid)
            if self.on_delivered:
                self.on_delivered(n, False)
            return
        now = datetime.now().astimezone()
        try:
            msg = build_message(n, self.sender, self.sender_name, now)
            self.target.deliver(bytes(msg), now)
        except Exception as e:
            if attempts + 1 >= self.ATTEMPTS:
                logger.error("notification for %s dropped after %d attempts: %s", n.uuid, attempts + 1, e)
                return
            logger.warning("delivering the notification for %s failed (%s); retrying", n.uuid, e)
            with self._cond:
                heapq.heappush(self._heap, (self.clock() + self.RETRY_S, next(self._seq), n, attempts + 1))
            return
        logger.info("notification %s for %s delivered", n.status, n.uuid)
        if self.on_delivered:
            self.on_delivered(n, True)

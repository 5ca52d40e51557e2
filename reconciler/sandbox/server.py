"""The simulator's HTTP server and the :class:`Sandbox` handle that starts and stops it.

Routes:

* ``GET /ws/services/Cancelacion?wsdl``: the WSDL (any path with ``?wsdl``);
* ``POST /ws/services/Cancelacion...``: SOAP 1.1 or 1.2, both operations;
* ``GET /_sandbox/record``: the record as JSON (requests, notifications, accepted counts);
* ``GET /_sandbox/health``: ``ok``;
* ``POST /ConsultaCFDIService.svc``: the SAT's status service (:mod:`reconciler.sandbox.satworld`),
  with its own faults (``Sandbox.sat_faults``).

Fault injection (``fault_rate``, a fraction of SOAP calls, spread evenly over
``fault_kinds``): ``http500`` (an HTML error page), ``soap_fault``, ``drop``
(the connection closes before the request is processed), ``lost_reply`` (the
request is processed, then the connection closes: a retry answers 701) and
``slow`` (processed, answered after ``slow_reply_s``: the client times out),
``garbage`` (HTTP 200 with an HTML page, as a captive proxy would answer).

Replies no honest provider sends, per UUID (``sandbox.hostile.set(uuid, status=...,
size=...)``, see :mod:`reconciler.sandbox.hostile`): any status text, any size, streamed.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

from reconciler.sandbox import hostile, satworld, soap, wsdl
from reconciler.sandbox.acuses import AcuseControl
from reconciler.sandbox.notify import Deliverer, ImapConfig, ImapTarget, MaildirTarget, Notification, Target
from reconciler.sandbox.service import Answer, Credentials, Service

logger = logging.getLogger(__name__)

FAULT_KINDS: tuple[str, ...] = ("http500", "soap_fault", "drop", "lost_reply", "slow", "garbage")
SAT_FAULT_KINDS: tuple[str, ...] = ("http500", "garbage", "drop", "slow")
SAT_PATH = "/ConsultaCFDIService.svc"
PORTS: tuple[str, ...] = (
    "CancelacionHttpSoap11Endpoint",
    "CancelacionHttpSoap12Endpoint",
    "CancelacionHttpsSoap11Endpoint",
    "CancelacionHttpsSoap12Endpoint",
)


@dataclass(frozen=True)
class SandboxConfig:
    """Everything the simulator can be told; the defaults are the provider's public testing account."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: pick a free port
    credentials: Credentials = field(default_factory=Credentials)
    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = FAULT_KINDS
    slow_reply_s: float = 60.0
    seed: int | None = None
    notify_delay_s: float = 2.0
    clock: Callable[[], float] = time.monotonic  # seconds for notify_delay_s; tests pass one they move by hand
    sender: str = "notificaciones@solucionfactible.com"
    sender_name: str = "Solución Factible"
    maildir: Path | None = None
    imap: ImapConfig | None = None
    acuse_style: wsdl.AcuseStyle = "base64"
    acuse: AcuseControl = field(default_factory=AcuseControl)  # every UUID's; Service.acuse_for sets one's
    # The SAT's status service (reconciler.sandbox.satworld), on the same server and clock.
    sat_receiver_s: float = 3600.0  # how long a receiver takes to accept or reject
    sat_window_s: float = 72 * 3600.0  # the acceptance window (then Plazo vencido)
    sat_lag_s: float = 1800.0  # how long a lagging CFDI stays No Encontrado

    def __post_init__(self) -> None:
        unknown = set(self.fault_kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"fault_kinds: unknown {sorted(unknown)}; known: {', '.join(FAULT_KINDS)}")
        if not 0.0 <= self.fault_rate <= 1.0:
            raise ValueError(f"fault_rate: must be between 0 and 1, got {self.fault_rate}")
        if self.fault_rate and not self.fault_kinds:
            raise ValueError("fault_kinds: empty while fault_rate > 0")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    request_queue_size = 256

    sandbox: Sandbox

    def __init__(self, address: tuple[str, int], sandbox: Sandbox) -> None:
        self.sandbox = sandbox
        self.open: set[socket.socket] = set()
        self.open_lock = threading.Lock()
        super().__init__(address, _Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.open_lock:
            self.open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self.open_lock:
            self.open.discard(request)
        super().shutdown_request(request)

    def drop_all(self) -> None:
        with self.open_lock:
            sockets = list(self.open)
        for s in sockets:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        logger.debug("sandbox: error handling a request from %s", client_address, exc_info=True)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True
    server: _Server
    server_version = "Apache-Coyote/1.1"
    sys_version = ""

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("sandbox: %s " + format, self.address_string(), *args)

    arrived: float | None = None  # set for SOAP calls: the injected latency counts from here

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self._wait()
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _wait(self) -> None:
        if self.arrived is not None:
            self.server.sandbox.wait_latency(self.arrived)
            self.arrived = None

    def _send_hostile(self, sb: Sandbox, req: soap.Request, rogue: hostile.HostileReply) -> None:
        """A reply set with ``sandbox.hostile``: streamed, and the client may hang up half-way."""
        field = req.fields.get("uuid") or req.fields.get("transactionId")
        uuid = (field or "").split("|", 1)[0].strip().upper() or None
        sb.record.add(
            operation=req.operation,
            uuid_field=field,
            uuid=uuid,
            usuario=req.fields.get("usuario"),
            code=None,
            fault="hostile",
            soap=req.version,
        )
        length, chunks = hostile.body(req.version, req.operation, rogue)
        self._wait()
        self.send_response(200)
        self.send_header("Content-Type", soap.content_type(req.version, req.operation + "Response"))
        if rogue.chunked:
            self.send_header("Transfer-Encoding", "chunked")
        else:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        try:
            for chunk in chunks:
                if sb.stopping.is_set():
                    raise ConnectionAbortedError
                self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk) if rogue.chunked else chunk)
            if rogue.chunked:
                self.wfile.write(b"0\r\n\r\n")
        except OSError:  # the client stopped reading (as it should past its cap), or the sandbox stops
            self.close_connection = True

    def _drop(self) -> None:
        self._wait()
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.connection.shutdown(socket.SHUT_RDWR)

    def _sat(self, sb: Sandbox, body: bytes) -> None:
        """The SAT's ConsultaCFDIService: its own faults (``sb.sat_faults``), the sandbox's latency."""
        self.arrived = time.monotonic()
        kind = sb.pick_sat_fault()
        if kind == "http500":
            self._send(500, b"<html><body>Service Unavailable</body></html>", "text/html")
        elif kind == "garbage":
            self._send(200, b"<html><body>Mantenimiento programado</body></html>", "text/html")
        elif kind == "drop" or (kind == "slow" and sb.stopping.wait(sb.config.slow_reply_s)):
            self._drop()
        elif (self.headers.get("SOAPAction") or "").strip('"') != satworld.SOAP_ACTION:
            self._send(500, soap.fault(11, "The message with Action '' cannot be processed"), "text/xml")
        else:
            expression = satworld.expression_of(body)
            status = satworld.INVALID if expression is None else sb.sat.consulta(expression)
            self._send(200, satworld.reply(status), "text/xml; charset=utf-8")

    def do_GET(self) -> None:
        sb = self.server.sandbox
        path, _, query = self.path.partition("?")
        if query.lower() == "wsdl":
            self._send(200, sb.wsdl, "text/xml; charset=UTF-8")
        elif path == "/_sandbox/record":
            self._send(200, json.dumps(sb.record.to_json()).encode(), "application/json")
        elif path == "/_sandbox/health":
            self._send(200, b"ok\n", "text/plain")
        else:
            self._send(404, b"not found\n", "text/plain")

    def do_POST(self) -> None:
        sb = self.server.sandbox
        sb.enter()
        try:
            self._post(sb)
        finally:
            sb.leave()

    def _post(self, sb: Sandbox) -> None:
        length = self.headers.get("Content-Length")
        if length is None:
            self._send(411, b"Content-Length required\n", "text/plain")
            return
        body = self.rfile.read(int(length))
        if self.path.startswith(SAT_PATH):
            self._sat(sb, body)
            return
        if not self.path.startswith("/ws/services/Cancelacion"):
            self._send(404, b"<html><body><h1>HTTP Status 404</h1></body></html>", "text/html;charset=utf-8")
            return
        version = 12 if "soap+xml" in (self.headers.get("Content-Type") or "") else 11
        self.arrived = time.monotonic()
        try:
            req = soap.parse_request(body)
        except soap.BadRequest as e:
            sb.record.add(operation="?", uuid_field=None, uuid=None, usuario=None, code=None, fault="bad_request")
            self._send(500, soap.fault(version, str(e)), soap.content_type(version, "fault"))
            return
        rogue = sb.hostile.lookup(req.operation, req.fields)
        if rogue is not None:
            self._send_hostile(sb, req, rogue)
            return
        kind = sb.pick_fault()
        if kind in ("http500", "soap_fault", "drop", "garbage"):
            field = req.fields.get("uuid") or req.fields.get("transactionId")
            sb.record.add(
                operation=req.operation, uuid_field=field, uuid=None, usuario=None, code=None, fault=kind, soap=version
            )
            if kind == "http500":
                page = b"<html><body><h1>HTTP Status 500 - Internal Server Error</h1></body></html>"
                self._send(500, page, "text/html;charset=utf-8")
            elif kind == "garbage":
                self._send(200, b"<html><body>Please log in</body></html>", "text/html")
            elif kind == "soap_fault":
                self._send(500, soap.fault(version, "Injected fault"), soap.content_type(version, "fault"))
            else:
                self._drop()
            return
        if req.operation == "cancelarAsincrono":
            answer, info = sb.service.cancel(req.fields)
            values: list[tuple[str, str | None]] = [("mensaje", answer.mensaje), ("status", str(answer.code))]
            result_type = "CancelacionAsincronoResponse"
        elif req.operation == "enviarSolicitudCancelacionAsincrono":
            answer, info = sb.service.send_signed(req.fields)
            values = [("mensaje", answer.mensaje), ("status", str(answer.code))]
            result_type = "CancelacionAsincronoResponse"
        elif req.operation == "getStatusCancelacionAsincrona":
            answer, info = sb.service.status(req.fields)
            values = [
                (wsdl.acuse_field(sb.config.acuse_style), sb.encode_acuse(answer.acuse)),
                ("mensaje", answer.mensaje),
                ("status", str(answer.code)),
            ]
            result_type = "StatusCancelacionAsincronaResponse"
        else:
            sb.record.add(
                operation=req.operation, uuid_field=None, uuid=None, usuario=None, code=None, soap=req.version
            )
            self._send(
                500,
                soap.fault(req.version, f"The endpoint reference (EPR) for the Operation not found is {self.path}"),
                soap.content_type(req.version, "fault"),
            )
            return
        sb.record.add(operation=req.operation, code=answer.code, fault=kind, soap=req.version, **{"uuid": None, **info})
        sb.after_answer(answer)
        if kind == "lost_reply":
            self._drop()
            return
        if kind == "slow" and sb.stopping.wait(sb.config.slow_reply_s):
            self._drop()
            return
        self._send(
            200,
            soap.reply(req.version, req.operation, result_type, values),
            soap.content_type(req.version, req.operation + "Response"),
        )


class Sandbox:
    """The simulator in background threads: ``with Sandbox(config) as sb: ... sb.wsdl_url ... sb.record``."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.service = Service(
            credentials=self.config.credentials,
            notify_delay_s=self.config.notify_delay_s,
            clock=self.config.clock,
            acuse_default=self.config.acuse,
        )
        self.record = self.service.record
        self.stopping = threading.Event()
        self._rng = random.Random(self.config.seed)
        self._fault_rate = self.config.fault_rate
        self._fault_kinds = self.config.fault_kinds
        self._inflight = 0
        self.peak_inflight = 0
        self._count_lock = threading.Lock()
        self._rng_lock = threading.Lock()
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self.hostile = hostile.HostileReplies()  # replies no honest provider sends, by UUID
        c = self.config
        self.sat = satworld.SatWorld(
            self.service.landed, c.clock, receiver_s=c.sat_receiver_s, window_s=c.sat_window_s, lag_s=c.sat_lag_s
        )
        self._sat_fault_rate = 0.0
        self._sat_fault_kinds: tuple[str, ...] = SAT_FAULT_KINDS
        target: Target | None = None
        if self.config.imap is not None:
            target = ImapTarget(self.config.imap)
        elif self.config.maildir is not None:
            target = MaildirTarget(self.config.maildir)
        self.deliverer = Deliverer(
            target, self.config.sender, self.config.sender_name, self.record.add_notification, self.config.clock
        )
        self.url = ""
        self.sat_url = ""
        self.wsdl_url = ""
        self.wsdl = b""

    def start(self) -> Sandbox:
        server = _Server((self.config.host, self.config.port), self)
        host, port = server.server_address[:2]
        assert isinstance(host, str)
        self.url = f"http://{host}:{port}"
        self.wsdl_url = f"{self.url}/ws/services/Cancelacion?wsdl"
        self.sat_url = f"{self.url}{SAT_PATH}"
        self.wsdl = wsdl.render(self.url, self.config.acuse_style)
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="sandbox-http", daemon=True)
        self._thread.start()
        self.deliverer.start()
        logger.info("sandbox listening on %s", self.url)
        return self

    def endpoint(self, port: str = "CancelacionHttpsSoap11Endpoint") -> str:
        """The address of one of the four ports (the default one too, though its WSDL address is empty)."""
        return f"{self.url}/ws/services/Cancelacion.{port}/"

    def stop(self) -> None:
        self.stopping.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.drop_all()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5)
            self._thread = None
        self.deliverer.stop()

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    # -- used by the handler -------------------------------------------

    def wait_latency(self, arrived: float) -> None:
        """Hold the answer until the configured latency has passed since the request arrived."""
        c = self.config
        if c.latency_ms <= 0 and c.latency_jitter_ms <= 0:
            return
        jitter = 0.0
        if c.latency_jitter_ms > 0:
            with self._rng_lock:
                jitter = self._rng.uniform(0, c.latency_jitter_ms)
        remaining = arrived + (c.latency_ms + jitter) / 1000.0 - time.monotonic()
        if remaining > 0:
            self.stopping.wait(remaining)

    def set_faults(self, rate: float, kinds: tuple[str, ...] = FAULT_KINDS) -> None:
        """Change fault injection while running (tests, demo): ``rate`` of SOAP calls fail with one of ``kinds``."""
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown or not 0.0 <= rate <= 1.0 or (rate and not kinds):
            raise ValueError(f"set_faults: bad rate {rate} or kinds {kinds!r}")
        with self._rng_lock:
            self._fault_rate, self._fault_kinds = rate, kinds

    def sat_faults(self, rate: float, kinds: tuple[str, ...] = ("http500", "garbage", "drop", "slow")) -> None:
        """Make ``rate`` of the SAT's answers fail with one of ``kinds`` (http500, garbage, drop, slow)."""
        if set(kinds) - set(SAT_FAULT_KINDS) or not 0.0 <= rate <= 1.0 or (rate and not kinds):
            raise ValueError(f"sat_faults: bad rate {rate} or kinds {kinds!r}")
        with self._rng_lock:
            self._sat_fault_rate, self._sat_fault_kinds = rate, kinds

    def pick_sat_fault(self) -> str | None:
        with self._rng_lock:
            if self._sat_fault_rate <= 0 or self._rng.random() >= self._sat_fault_rate:
                return None
            return self._rng.choice(self._sat_fault_kinds)

    def pick_fault(self) -> str | None:
        with self._rng_lock:
            if self._fault_rate <= 0 or self._rng.random() >= self._fault_rate:
                return None
            return self._rng.choice(self._fault_kinds)

    def enter(self) -> None:
        with self._count_lock:
            self._inflight += 1
            self.peak_inflight = max(self.peak_inflight, self._inflight)

    def leave(self) -> None:
        with self._count_lock:
            self._inflight -= 1

    def encode_acuse(self, acuse: bytes | None) -> str | None:
        if acuse is None:
            return None
        if self.config.acuse_style == "base64":
            return base64.b64encode(acuse).decode("ascii")
        return acuse.decode("utf-8", "replace")

    def after_answer(self, answer: Answer) -> None:
        if answer.notification is not None:
            self.deliverer.schedule(answer.notification, answer.due)

    def wait_notifications(self, count: int, timeout: float = 10.0) -> list[dict[str, Any]]:
        """Poll until ``count`` notifications were handed to the target (for tests); raise TimeoutError."""
        deadline = time.monotonic() + timeout
        while True:
            notes = self.record.notifications()
            if len(notes) >= count:
                return notes
            if time.monotonic() > deadline:
                raise TimeoutError(f"{len(notes)} of {count} notifications after {timeout}s")
            time.sleep(0.01)


__all__ = ["FAULT_KINDS", "PORTS", "Notification", "Sandbox", "SandboxConfig"]

"""The simulated Cancelacion service: credentials, transactions, answers, and the record of calls.

Thread-safe: the HTTP server calls :meth:`Service.cancel` and
:meth:`Service.status` from one thread per connection.

Order of checks for both operations, as the provider would: a missing required
field (611), a configured production user (633), a locked account (604),
wrong credentials (601; the fifth wrong one in a row locks the user), then the
data (621), the testing UUIDs (204), a repeated UUID (701), acceptance
(211 for the page's 211 UUIDs, else 200).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import math
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from reconciler.sandbox import acuses, rules, signed
from reconciler.sandbox.acuses import AcuseControl
from reconciler.sandbox.notify import Notification

ACCEPTED_CODES = frozenset({200, 211})
SUBMISSIONS = frozenset({"cancelarAsincrono", "enviarSolicitudCancelacionAsincrono"})
MESSAGES: dict[int, str] = {
    204: "El comprobante no se puede cancelar",
    211: "La cancelación está en proceso",
    213: "La solicitud de cancelación fue rechazada por el receptor",
    601: "Error de autenticación, el nombre de usuario o contraseña son incorrectos",
    604: "Se ha excedido el número máximo de intentos de inicio de sesión",
    611: "Los parámetros recibidos están incompletos o fuera de lugar",
    621: "Datos no válidos",
    633: "Se está utilizando una cuenta de producción en el ambiente de pruebas",
    701: "Ya existe una transacción asíncrona para el UUID especificado",
    702: "No existe una transacción asíncrona para el UUID especificado",
    1701: "La llave privada o el certificado no son válidos",
}


@dataclass(frozen=True, slots=True)
class Entry:
    """One request the simulator received and what it answered (``code`` None: an injected fault)."""

    seq: int
    time: float  # Unix time
    operation: str
    uuid_field: str | None
    uuid: str | None
    usuario: str | None
    code: int | None
    fault: str | None = None
    soap: int = 11
    csd_cer_sha256: str | None = None
    csd_key_sha256: str | None = None
    acuse_sha256: str | None = None  # of the acuse answered (in acuseSat or mensaje)
    solicitud_sha256: str | None = None  # of a signed request's base64 text (enviarSolicitudCancelacionAsincrono)


class Record:
    """Everything received, in order; also the notifications handed to the mail target."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: list[Entry] = []
        self._notifications: list[dict[str, Any]] = []

    def add(self, **kw: Any) -> Entry:
        with self._lock:
            entry = Entry(seq=len(self._entries) + 1, time=time.time(), **kw)
            self._entries.append(entry)
            return entry

    def add_notification(self, n: Notification, delivered: bool) -> None:
        with self._lock:
            self._notifications.append(
                {"uuid": n.uuid, "status": n.status, "delivered": delivered, "time": time.time()}
            )

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries)

    def notifications(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._notifications)

    def accepted(self) -> Counter[str]:
        """UUID -> how many submissions (either operation) were accepted (200/211) for it; should be 1 each."""
        return Counter(
            e.uuid for e in self.entries() if e.operation in SUBMISSIONS and e.code in ACCEPTED_CODES and e.uuid
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": [asdict(e) for e in self.entries()],
            "notifications": self.notifications(),
            "accepted": dict(self.accepted()),
        }


@dataclass
class Transaction:
    uuid: str
    rfc: str
    email: str | None
    due: float  # monotonic time the SAT "answers"
    result: Literal["OK", "ERROR"]


@dataclass
class Credentials:
    usuario: str = "testing@solucionfactible.com"
    password: str = "timbrado.SF.16672"  # noqa: S105 the provider's public testing password
    production_users: tuple[str, ...] = ()
    lockout_after: int = 5

    def __repr__(self) -> str:
        return f"Credentials(usuario={self.usuario!r}, production_users={self.production_users!r})"


@dataclass(frozen=True, slots=True)
class Answer:
    code: int
    mensaje: str
    acuse: bytes | None = None
    notification: Notification | None = None
    due: float = 0.0


def acuse_xml(uuid: str, rfc: str, when: datetime) -> bytes:
    """A small acknowledgement in the shape of the SAT's cancellation acuse (EstatusUUID 201)."""
    return acuses.render(AcuseControl(), uuid, rfc, when) or b""


@dataclass
class Service:
    credentials: Credentials = field(default_factory=Credentials)
    notify_delay_s: float = 2.0
    clock: Callable[[], float] = time.monotonic  # when a transaction is due; tests pass one they move by hand
    record: Record = field(default_factory=Record)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _tx: dict[str, Transaction] = field(default_factory=dict)
    _wrong: dict[str, int] = field(default_factory=dict)
    overrides: dict[str, tuple[int, str]] = field(default_factory=dict)
    acuse_default: AcuseControl = field(default_factory=AcuseControl)
    acuse_controls: dict[str, AcuseControl] = field(default_factory=dict)
    cancel_messages: dict[str, str] = field(default_factory=dict)

    def acuse_for(self, uuid: str, control: AcuseControl) -> None:
        """Answer a finished status call for ``uuid`` with this acuse (shape, EstatusUUID, UUID named, field)."""
        with self._lock:
            self.acuse_controls[uuid.upper()] = control

    def cancel_mensaje(self, uuid: str, mensaje: str) -> None:
        """Answer an accepted ``cancelarAsincrono`` 200 for ``uuid`` with this ``mensaje`` (normally the UUID)."""
        with self._lock:
            self.cancel_messages[uuid.upper()] = mensaje

    def override(self, uuid: str, code: int, mensaje: str = "") -> None:
        """Answer ``code`` to every authenticated call for ``uuid`` (both operations), for tests and demos."""
        with self._lock:
            self.overrides[uuid.upper()] = (code, mensaje or f"código {code}")

    def decide_now(self, *uuids: str) -> None:
        """The SAT answers these accepted transactions now: their status call stops answering 211."""
        with self._lock:
            missing = [u for u in uuids if u.upper() not in self._tx]
            if missing:
                raise KeyError(f"no transaction for {', '.join(missing)}")
            for uuid in uuids:
                self._tx[uuid.upper()].due = -math.inf

    def unlock(self, usuario: str) -> None:
        with self._lock:
            self._wrong.pop(usuario, None)

    def _auth(self, usuario: str, password: str) -> int | None:
        c = self.credentials
        if usuario in c.production_users:
            return 633
        if self._wrong.get(usuario, 0) >= c.lockout_after:
            return 604
        if usuario != c.usuario or password != c.password:
            self._wrong[usuario] = self._wrong.get(usuario, 0) + 1
            return 601
        self._wrong.pop(usuario, None)
        return None

    def cancel(self, f: dict[str, str | None]) -> tuple[Answer, dict[str, Any]]:
        """Answer one ``cancelarAsincrono``; also returns what to record about it."""
        uuid_field = f.get("uuid")
        info: dict[str, Any] = {"uuid_field": uuid_field, "usuario": f.get("usuario")}
        for key, name in (("csdCer", "csd_cer_sha256"), ("csdKey", "csd_key_sha256")):
            raw = f.get(key)
            if raw:
                try:
                    info[name] = hashlib.sha256(base64.b64decode(raw, validate=True)).hexdigest()
                except binascii.Error:
                    info[name] = "invalid-base64"
        with self._lock:
            return self._cancel(f, info), info

    def _cancel(self, f: dict[str, str | None], info: dict[str, Any]) -> Answer:
        required = ("usuario", "password", "uuid", "rfcEmisor")
        if any(not f.get(k) for k in required):
            return Answer(611, MESSAGES[611])
        code = self._auth(f["usuario"] or "", f["password"] or "")
        if code is not None:
            return Answer(code, MESSAGES[code])
        has_cer, has_key = bool(f.get("csdCer")), bool(f.get("csdKey"))
        if has_cer != has_key or (has_key and not f.get("csdPassword")):
            return Answer(611, MESSAGES[611] + ": csdCer, csdKey y csdPassword van juntos")
        try:
            uuid, _motivo, _folio = rules.parse_uuid_field(f["uuid"] or "")
        except ValueError as e:
            return Answer(621, f"{MESSAGES[621]}: {e}")
        info["uuid"] = uuid
        if uuid in self.overrides:
            return Answer(*self.overrides[uuid])
        rfc = (f["rfcEmisor"] or "").strip().upper()
        if not rules.rfc_ok(rfc):
            return Answer(621, f"{MESSAGES[621]}: rfcEmisor {rfc!r}")
        if has_key:
            # DER starts with a SEQUENCE (0x30); anything else was encoded twice or is not a CSD.
            for key, name in (("csdCer", "csd_cer_sha256"), ("csdKey", "csd_key_sha256")):
                if info.get(name) == "invalid-base64" or not base64.b64decode(f[key] or "").startswith(b"\x30"):
                    return Answer(1701, f"{MESSAGES[1701]}: {key} no es DER (¿doble base64?)")
        return self._accept(uuid, rfc, f.get("emailNotifica") or None)

    def _accept(self, uuid: str, rfc: str, email: str | None) -> Answer:
        """The common end of both submissions: the testing UUIDs, a repeat (701), a new transaction."""
        code = rules.submission_code(uuid)
        if code == 204:
            return Answer(204, MESSAGES[204])
        if uuid in self._tx:
            return Answer(701, MESSAGES[701])
        result: Literal["OK", "ERROR"] = "ERROR" if rules.ends_in_error(uuid) else "OK"
        due = self.clock() + self.notify_delay_s
        self._tx[uuid] = Transaction(uuid, rfc, email, due, result)
        note = None
        if email and rules.sends_notification(uuid):
            mensaje = uuid if result == "OK" else MESSAGES[213]
            note = Notification(uuid=uuid, status=result, to=email, rfc=rfc, message=mensaje)
        mensaje = self.cancel_messages.get(uuid, uuid) if code == 200 else MESSAGES[211]
        return Answer(code, mensaje, notification=note, due=due)

    def send_signed(self, f: dict[str, str | None]) -> tuple[Answer, dict[str, Any]]:
        """Answer one ``enviarSolicitudCancelacionAsincrono``: a ``Cancelacion`` the issuer signed itself.

        Credentials first, then the signature and the certificate (:func:`reconciler.sandbox.signed.check`,
        17xx when they fail), then the folio goes the way of any other cancellation.
        """
        info: dict[str, Any] = {"uuid_field": None, "usuario": f.get("usuario")}
        raw = f.get("solicitud")
        if raw:
            info["solicitud_sha256"] = hashlib.sha256(raw.encode()).hexdigest()
        with self._lock:
            if any(not f.get(k) for k in ("usuario", "password", "solicitud")):
                return Answer(611, MESSAGES[611]), info
            code = self._auth(f["usuario"] or "", f["password"] or "")
            if code is not None:
                return Answer(code, MESSAGES[code]), info
        verdict = signed.check(raw)
        if isinstance(verdict, signed.Refusal):
            return Answer(verdict.code, verdict.mensaje), info
        info["uuid_field"] = verdict.uuid_field
        try:
            uuid, _motivo, _folio = rules.parse_uuid_field(verdict.uuid_field)
        except ValueError as e:
            return Answer(621, f"{MESSAGES[621]}: {e}"), info
        info["uuid"] = uuid
        with self._lock:
            if uuid in self.overrides:
                return Answer(*self.overrides[uuid]), info
            if not rules.rfc_ok(verdict.rfc):
                return Answer(621, f"{MESSAGES[621]}: RfcEmisor {verdict.rfc!r}"), info
            return self._accept(uuid, verdict.rfc, f.get("emailNotifica") or None), info

    def landed(self, uuid: str) -> tuple[float, Literal["OK", "ERROR"]] | None:
        """When the provider's cancellation of ``uuid`` lands at the SAT, and how (for the SAT simulator)."""
        with self._lock:
            tx = self._tx.get(uuid.upper())
        return (tx.due, tx.result) if tx is not None else None

    def status(self, f: dict[str, str | None]) -> tuple[Answer, dict[str, Any]]:
        """Answer one ``getStatusCancelacionAsincrona``: 211 until due, then 200 + acuse or 213; 702 if unknown."""
        tid = f.get("transactionId")
        info: dict[str, Any] = {"uuid_field": tid, "usuario": f.get("usuario")}
        with self._lock:
            if any(not f.get(k) for k in ("usuario", "password", "transactionId")):
                return Answer(611, MESSAGES[611]), info
            code = self._auth(f["usuario"] or "", f["password"] or "")
            if code is not None:
                return Answer(code, MESSAGES[code]), info
            uuid = (tid or "").split("|", 1)[0].strip().upper()
            info["uuid"] = uuid
            if uuid in self.overrides:
                return Answer(*self.overrides[uuid]), info
            tx = self._tx.get(uuid)
            control = self.acuse_controls.get(uuid, self.acuse_default)
        if tx is None:
            return Answer(702, MESSAGES[702]), info
        if self.clock() < tx.due:
            return Answer(211, MESSAGES[211]), info
        if tx.result == "ERROR":
            return Answer(213, MESSAGES[213]), info
        acuse = acuses.render(control, uuid, tx.rfc, datetime.now(UTC))
        info["acuse_sha256"] = hashlib.sha256(acuse).hexdigest() if acuse is not None else None
        if control.in_mensaje:
            return Answer(200, (acuse or b"").decode("utf-8", "replace")), info
        return Answer(200, uuid, acuse=acuse), info

"""The provider's SOAP client: zeep's AsyncClient over httpx, bound to one port of the WSDL.

:meth:`ProviderClient.create` is the one seam that builds it.  The WSDL is read
once per process from ``provider.wsdl`` (a URL or a file); a URL's content is
kept in zeep's SqliteCache under the state directory, and used when the URL is
unreachable at the next start.  Namespaces and element names all come from the
WSDL: this module only names the operations and their documented parameters.

Every call returns a typed reply, never raises for what the network or the
provider can do (timeouts, refused or dropped connections, HTTP errors, SOAP
Faults, malformed answers).  All calls share one bound of
``provider.max_concurrency`` in flight, spread over several httpx pools of at
most :data:`POOL_SIZE` connections (one pool slows down as it grows: httpcore
scans every connection for each request).

At DEBUG level requests and replies are logged, truncated, with the password,
the CSD password and the CSD key replaced by ``***``.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

import httpx
import zeep.exceptions
from zeep import AsyncClient
from zeep.cache import SqliteCache
from zeep.proxy import AsyncServiceProxy
from zeep.settings import Settings as ZeepSettings
from zeep.transports import AsyncTransport
from zeep.wsdl import Document

from reconciler.clock import utc_now
from reconciler.config import Settings
from reconciler.configfile import read_capped
from reconciler.errors import ProviderError, ReconcilerError
from reconciler.jobs.validation import JobSpec
from reconciler.provider.acuse import Verdict, check
from reconciler.provider.codes import (
    CONNECTION_ERROR,
    HTTP_ERROR,
    MALFORMED,
    NOT_SENT,
    SOAP_FAULT,
    TIMEOUT,
    Classification,
    StatusOutcome,
    classify,
    classify_status,
)
from reconciler.provider.csd import Csd
from reconciler.provider.csd import load as load_csd
from reconciler.redact import Redactor, one_line

if TYPE_CHECKING:  # imported when an issuer signs locally: cryptography costs a daemon without one 0.1-0.3 s
    from reconciler.provider.local import Signers

logger = logging.getLogger(__name__)


# Connections per httpx pool.  httpcore scans every connection of a pool (and every queued
# request) each time a request starts or ends, so the cost per call grows with the pool; several
# small pools behind one semaphore keep it flat (see bench/submit.py).
POOL_SIZE = 4
LOG_LIMIT = 2000  # characters of a request or reply logged at DEBUG
WSDL_CACHE = "wsdl-cache.sqlite3"
MAX_REPLY_BYTES = 2 << 20  # the default of provider.max_reply_bytes
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1  # a status code is an xs:int
_INT_TEXT = re.compile(r"[+-]?[0-9]{1,10}")  # ASCII digits only: str.isdigit() also takes "²" and "٣"
CANCEL = "cancelarAsincrono"
STATUS = "getStatusCancelacionAsincrona"
SEND_SIGNED = "enviarSolicitudCancelacionAsincrono"  # a Cancelacion the issuer signed (signing = "local")


@dataclass(frozen=True, slots=True)
class Reply:
    """The answer to ``cancelarAsincrono``; ``code`` is None when no answer came (the message says why)."""

    code: int | None
    message: str
    classification: Classification
    operation: str = CANCEL


@dataclass(frozen=True, slots=True)
class StatusReply:
    """The answer to ``getStatusCancelacionAsincrona``.

    ``acuse`` is the SAT's acknowledgement as received (from ``acuse_from``: ``acuseSat``,
    ``acuseSAT`` or ``mensaje``), and ``verdict`` what it says about this UUID; the outcome
    of a 200 follows the verdict (:func:`reconciler.provider.codes.classify_status`).
    """

    code: int | None
    message: str
    acuse: bytes | None
    outcome: StatusOutcome
    verdict: Verdict | None = None
    acuse_from: str | None = None


@dataclass(frozen=True, slots=True)
class _Failure:
    message: str
    classification: Classification


class _PooledTransport(AsyncTransport):
    """zeep's AsyncTransport over several httpx pools (least busy first), with redacted logging.

    Remote WSDL content is fetched first and cached once it parsed; when the
    fetch fails, the cached copy (of any age) is used.
    """

    def __init__(
        self,
        pools: list[httpx.AsyncClient],
        wsdl_client: httpx.Client,
        cache: SqliteCache | None,
        redact: Redactor,
        max_reply_bytes: int = MAX_REPLY_BYTES,
    ) -> None:
        super().__init__(client=pools[0], wsdl_client=wsdl_client, cache=None)  # type: ignore[no-untyped-call]
        self.max_reply_bytes = max_reply_bytes
        self.pools = pools
        self.inflight = [0] * len(pools)
        self.wsdl_cache = cache
        self.fetched: dict[str, bytes] = {}
        self.redact = redact
        for pool in pools[1:]:
            pool.headers = dict(pools[0].headers)

    def load(self, url: str) -> bytes:
        scheme = urlparse(url).scheme
        if scheme not in ("http", "https"):
            if scheme in ("", "file"):  # a local WSDL: read it bounded, as every file a setting names
                path = Path(os.path.expanduser(url.removeprefix("file://")))
                return read_capped(path, self.max_reply_bytes, f"provider.wsdl: {path}")
            return bytes(super().load(url))  # type: ignore[no-untyped-call]
        try:
            content = bytes(self._load_remote_data(url))
        except Exception as e:
            cached = self.wsdl_cache.get(url) if self.wsdl_cache is not None else None  # type: ignore[no-untyped-call]
            if not cached:
                raise
            logger.warning("%s is unreachable (%s); using the cached copy", url, _describe(e))
            return bytes(cached)
        self.fetched[url] = content
        return content

    def _load_remote_data(self, url: str) -> bytes:
        """GET a WSDL or XSD, reading at most ``max_reply_bytes`` of it."""
        with self.wsdl_client.stream("GET", url) as response:
            if response.is_error:
                raise zeep.exceptions.TransportError(status_code=response.status_code)  # type: ignore[no-untyped-call]
            _check_declared_length(response, self.max_reply_bytes)
            chunks: list[bytes] = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > self.max_reply_bytes:
                    raise ReplyTooLarge(self.max_reply_bytes)
                chunks.append(chunk)
        return b"".join(chunks)

    def commit_cache(self) -> None:
        if self.wsdl_cache is not None:
            for url, content in self.fetched.items():
                try:
                    self.wsdl_cache.add(url, content)  # type: ignore[no-untyped-call]
                except Exception as e:  # a read-only or full state directory: the cache is only a fallback
                    logger.warning("WSDL cache not updated: %s", _describe(e))
                    break
        self.fetched.clear()

    async def post(self, address: str, message: bytes | str, headers: dict[str, str]) -> httpx.Response:
        i = 0 if len(self.pools) == 1 else min(range(len(self.pools)), key=self.inflight.__getitem__)
        debug = logger.isEnabledFor(logging.DEBUG)
        if debug:
            text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
            logger.debug("POST %s %s: %s", address, headers.get("SOAPAction", ""), self.redact(text, LOG_LIMIT))
        self.inflight[i] += 1
        try:
            response = await self._post_capped(self.pools[i], address, message, headers)
        finally:
            self.inflight[i] -= 1
        if debug:
            body = response.content.decode("utf-8", "replace")
            logger.debug("reply HTTP %d from %s: %s", response.status_code, address, self.redact(body, LOG_LIMIT))
        status = response.status_code
        if status != 200 and "xml" not in response.headers.get("content-type", ""):
            # An error page, not a SOAP Fault: zeep would call it "Unknown fault occured".
            raise zeep.exceptions.TransportError(f"HTTP {status}", status_code=status)  # type: ignore[no-untyped-call]
        return response

    async def _post_capped(
        self, pool: httpx.AsyncClient, address: str, message: bytes | str, headers: dict[str, str]
    ) -> httpx.Response:
        """POST and read the reply as a stream, giving up past ``max_reply_bytes`` (decoded)."""
        request = pool.build_request("POST", address, content=message, headers=headers)
        response = await pool.send(request, stream=True)
        try:
            _check_declared_length(response, self.max_reply_bytes)
            chunks: list[bytes] = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > self.max_reply_bytes:
                    raise ReplyTooLarge(self.max_reply_bytes)
                chunks.append(chunk)
        finally:
            await response.aclose()  # past the cap this drops the connection instead of draining it
        # The body is decoded already: the copy keeps every header but the ones about the encoding.
        kept = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in _BODY_HEADERS]
        return httpx.Response(response.status_code, headers=kept, content=b"".join(chunks), request=request)

    async def aclose(self) -> None:
        for pool in self.pools:
            await pool.aclose()


class ReplyTooLarge(Exception):
    """The provider's reply (or the WSDL) is larger than ``provider.max_reply_bytes``: not read further."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"reply larger than {limit} bytes (provider.max_reply_bytes)")
        self.limit = limit


_BODY_HEADERS = frozenset({"content-encoding", "content-length", "transfer-encoding"})


def _check_declared_length(response: httpx.Response, limit: int) -> None:
    declared = response.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise ReplyTooLarge(limit)


def _describe(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0]}" if text else type(e).__name__


def _open_cache(state_dir: Path) -> SqliteCache | None:
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        return SqliteCache(path=str(state_dir / WSDL_CACHE), timeout=None)  # type: ignore[no-untyped-call]
    except Exception as e:
        logger.warning("WSDL cache disabled: cannot use %s: %s", state_dir / WSDL_CACHE, _describe(e))
        return None


def _bind(
    wsdl: str, port: str, endpoint: str | None, transport: _PooledTransport, signed: bool = False
) -> tuple[AsyncServiceProxy, str]:
    """Parse the WSDL (blocking) and bind the configured port: the service and the address it posts to.

    The address is returned beside the service because zeep's ServiceProxy keeps it only in a
    private attribute (``_binding_options``); ProviderError names what is wrong."""
    try:
        document = Document(wsdl, transport, settings=ZeepSettings())  # type: ignore[arg-type]
    except ReconcilerError:  # a local WSDL past the size cap: the message names it already
        raise
    except Exception as e:
        raise ProviderError(f"provider.wsdl: cannot load the WSDL {wsdl}: {_describe(e)}") from e
    transport.commit_cache()
    found = None
    names: list[str] = []
    for service in document.services.values():
        names.extend(service.ports)
        found = found or service.ports.get(port)
    if found is None:
        raise ProviderError(f"provider.port: no port {port!r} in the WSDL {wsdl} (ports: {', '.join(names) or 'none'})")
    address = endpoint or found.binding_options.get("address")
    if not address:
        raise ProviderError(
            f"provider.port: port {port} has an empty address in the WSDL {wsdl};"
            " set provider.endpoint or use another port"
        )
    for operation in (CANCEL, STATUS, *((SEND_SIGNED,) if signed else ())):
        try:
            found.binding.get(operation)
        except ValueError as e:
            raise ProviderError(f"provider.port: port {port} of {wsdl} has no operation {operation}") from e
    client = AsyncClient(document, transport=transport)  # type: ignore[no-untyped-call]
    options = {**found.binding_options, "address": address}
    return AsyncServiceProxy(client, found.binding, **options), address  # type: ignore[no-untyped-call]


class ProviderClient:
    """The Cancelacion service, bound to ``provider.port``; build it with :meth:`create`."""

    def __init__(
        self,
        settings: Settings,
        service: AsyncServiceProxy,
        address: str,
        transport: _PooledTransport,
        password: str,
        csd: dict[str, Csd],
        signers: Signers | None = None,
    ) -> None:
        self._usuario = settings.provider.usuario
        self._notify = settings.provider.notify_email
        self._timeout = settings.provider.timeout_s
        self._service = service
        self._transport = transport
        self._password = password
        self._csd = csd
        self._signers = signers
        self._said: set[str] = set()
        self._sem = asyncio.Semaphore(settings.provider.max_concurrency)
        self.address = address

    @classmethod
    async def create(cls, settings: Settings, signers: Signers | None = None) -> ProviderClient:
        """Load the WSDL (URL or file, cached), bind the port; ProviderError or ConfigError in one line.

        ``signers``: the local issuers' CSDs when the caller loaded them already (else loaded here, logged).
        """
        p = settings.provider
        password = settings.provider_password().get_secret_value()
        # A local issuer's key never leaves: it is not loaded for sending (see reconciler.provider.local).
        found = {i.rfc: load_csd(settings, i) for i in settings.issuers if i.signing != "local"}
        csd = {rfc: c for rfc, c in found.items() if c is not None}
        if signers is None and any(issuer.signing == "local" for issuer in settings.issuers):
            from reconciler.provider.local import Signers

            signers = Signers.load(settings, utc_now())
        redact = Redactor(
            [password]
            + [c.password for c in csd.values()]
            + [base64.b64encode(c.key).decode("ascii") for c in csd.values()]
        )
        npools = math.ceil(p.max_concurrency / POOL_SIZE)
        per_pool = math.ceil(p.max_concurrency / npools)
        limits = httpx.Limits(max_connections=per_pool, max_keepalive_connections=per_pool)
        timeout = httpx.Timeout(p.timeout_s)
        tls = httpx.create_ssl_context()  # one context for every pool: each costs time and memory
        pools = [httpx.AsyncClient(timeout=timeout, limits=limits, verify=tls) for _ in range(npools)]
        wsdl_client = httpx.Client(timeout=timeout, verify=tls)
        transport = _PooledTransport(
            pools, wsdl_client, _open_cache(settings.state_dir), redact, max_reply_bytes=p.max_reply_bytes
        )
        try:
            signed = signers is not None and signers.any
            service, address = await asyncio.to_thread(_bind, p.wsdl, p.port, p.endpoint, transport, signed)
        except BaseException:
            await transport.aclose()
            raise
        finally:
            wsdl_client.close()  # noqa: ASYNC212 (no I/O left: the WSDL was read in a thread)
        logger.info(
            "provider: port %s at %s, %d pool(s) of %d", p.port, p.endpoint or "the WSDL's address", npools, per_pool
        )
        return cls(settings, service, address, transport, password, csd, signers)

    @property
    def pools(self) -> int:
        return len(self._transport.pools)

    async def aclose(self) -> None:
        await self._transport.aclose()

    async def cancel(self, job: JobSpec) -> Reply:
        """Submit one job: ``cancelarAsincrono`` (with the issuer's CSD when configured), or, for an issuer
        with ``signing = "local"``, ``enviarSolicitudCancelacionAsincrono`` with the request signed here."""
        operation = CANCEL
        kwargs: dict[str, Any] = {"usuario": self._usuario, "password": self._password}
        if self._signers is not None and job.rfc_emisor in self._signers:
            operation = SEND_SIGNED
            solicitud = self._signers.request(job, utc_now())
            if not isinstance(solicitud, bytes):  # NotSent: the issuer's CSD failed a check
                # Once per issuer and reason at WARNING: a broken CSD holds back every job of its issuer.
                level = logging.DEBUG if solicitud.reason in self._said else logging.WARNING
                self._said.add(solicitud.reason)
                logger.log(level, "job %s not sent: %s", job.uuid, solicitud.reason)
                return Reply(None, solicitud.reason, NOT_SENT, operation)
            kwargs.update(solicitud=solicitud, emailNotifica=self._notify)
        else:
            kwargs.update(uuid=job.provider_uuid_field, rfcEmisor=job.rfc_emisor, emailNotifica=self._notify)
            csd = self._csd.get(job.rfc_emisor)
            if csd is not None:
                kwargs.update(csdCer=csd.cer, csdKey=csd.key, csdPassword=csd.password)
        result = await self._call(operation, job.uuid, kwargs)
        if isinstance(result, _Failure):
            return Reply(None, result.message, result.classification, operation)
        code, why = _code(result)
        message = _text(getattr(result, "mensaje", None))
        if code is None:
            return Reply(None, why, MALFORMED, operation)
        classification = classify(code)
        if not classification.known:
            logger.warning(
                "%s for %s: unknown code %d (%s); treated as transient", operation, job.uuid, code, message[:200]
            )
        return Reply(code, message, classification, operation)

    async def status(self, uuid: str) -> StatusReply:
        """``getStatusCancelacionAsincrona`` with ``transactionId`` = the UUID."""
        kwargs = {"usuario": self._usuario, "password": self._password, "transactionId": uuid}
        result = await self._call(STATUS, uuid, kwargs)
        if isinstance(result, _Failure):
            return StatusReply(None, result.message, None, StatusOutcome.TRANSIENT)
        code, why = _code(result)
        message = _text(getattr(result, "mensaje", None))
        if code is None:
            return StatusReply(None, why, None, StatusOutcome.TRANSIENT)
        acuse, source = _acuse(result, message)
        verdict = check(acuse, uuid) if code == 200 else None
        c = classify_status(code, verdict)
        if not c.known:
            logger.warning("%s for %s: unknown code %d (%s); treated as transient", STATUS, uuid, code, message[:200])
        return StatusReply(code, message, acuse, c.outcome, verdict, source)

    async def _call(self, operation: str, uuid: str, kwargs: dict[str, Any]) -> Any:
        async with self._sem:
            try:
                async with asyncio.timeout(self._timeout):
                    result = await self._service[operation](**kwargs)
            except (TimeoutError, httpx.TimeoutException):
                failure = _Failure(f"timeout after {self._timeout:g}s", TIMEOUT)
            except ReplyTooLarge as e:
                failure = _Failure(str(e), MALFORMED)
            except httpx.ConnectError as e:
                failure = _Failure(f"cannot connect to {self.address}: {e}", CONNECTION_ERROR)
            except httpx.TransportError as e:
                failure = _Failure(f"connection error: {_describe(e)}", CONNECTION_ERROR)
            except zeep.exceptions.Fault as e:
                failure = _Failure(f"SOAP Fault: {str(e.message)[:300]}", SOAP_FAULT)
            except zeep.exceptions.TransportError as e:
                if e.status_code and e.status_code != 200:
                    failure = _Failure(f"HTTP {e.status_code}", HTTP_ERROR)
                else:
                    failure = _Failure("malformed reply: not a SOAP envelope", MALFORMED)
            except Exception as e:  # whatever else zeep or lxml make of a bad reply
                failure = _Failure(f"malformed reply: {_describe(e)[:300]}", MALFORMED)
            else:
                if result is None:
                    return _Failure("malformed reply: empty result", MALFORMED)
                return result
        message = self._transport.redact(failure.message)
        logger.debug("%s for %s failed: %s", operation, uuid, message)
        return _Failure(message, failure.classification)


def _int(value: object) -> int | None:
    """A status code (``xs:int``): a 32-bit integer, given as such or in ASCII digits; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not _INT_TEXT.fullmatch(text):
            return None
        value = int(text)
    if isinstance(value, int) and INT32_MIN <= value <= INT32_MAX:
        return value
    return None


def _code(result: Any) -> tuple[int | None, str]:
    """The reply's status code, or None and why (missing, or not a 32-bit integer)."""
    raw = getattr(result, "status", None)
    code = _int(raw)
    if code is not None:
        return code, ""
    if raw is None:
        return None, "malformed reply: no status code (missing, or not an integer)"
    shown = one_line(repr(raw if isinstance(raw, int | str) else type(raw).__name__)[:60])
    return None, f"malformed reply: status {shown} is not a 32-bit integer"


def _text(value: object) -> str:
    return "" if value is None else str(value)


def _acuse(result: Any, message: str) -> tuple[bytes | None, str | None]:
    """The acuse as received and where it came from.

    ``acuseSat`` or ``acuseSAT``: base64Binary (decoded by zeep), base64 text, or XML text; else
    ``mensaje`` when it holds XML (``<?xml`` in it, or it starts with ``<``), as a public client of the
    real service reads it.  Bytes are kept as received (text as UTF-8); :func:`reconciler.provider.acuse.check`
    judges them wherever they came from.
    """
    for name in ("acuseSat", "acuseSAT"):
        value = getattr(result, name, None)
        if isinstance(value, str):
            value = value.encode("utf-8")
        if isinstance(value, bytes) and value.strip():
            return _unbase64(value), name
    if "<?xml" in message or message.lstrip().startswith("<"):
        return message.encode("utf-8"), "mensaje"
    return None, None


def _unbase64(value: bytes) -> bytes:
    """``value`` itself when it is XML or not base64, else its base64 decoding when that is XML."""
    if value.lstrip().startswith(b"<"):
        return value
    try:
        decoded = base64.b64decode(b"".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        return value
    return decoded if decoded.lstrip().startswith(b"<") else value

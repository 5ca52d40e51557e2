"""Replies no honest provider sends, for tests and benchmarks: any status text, any size.

``sandbox.hostile.set(uuid, status="99999999999999999999")`` makes both operations answer
that status text, as is, for that UUID (before credentials or rules are looked at, and
without touching the simulated transactions); ``size=50_000_000`` pads the reply's
``mensaje`` so the body is that many bytes.  The body is streamed in chunks with its
``Content-Length`` (or, with ``chunked=True``, in HTTP chunked encoding, so the client
learns the size only by reading), never built in memory; the client may hang up at any point.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

from reconciler.sandbox import soap

RESULT_TYPES: dict[str, str] = {
    "cancelarAsincrono": "CancelacionAsincronoResponse",
    "getStatusCancelacionAsincrona": "StatusCancelacionAsincronaResponse",
}
CHUNK = 64 * 1024
_PAD = "\ue000PAD\ue000"  # a private-use marker: never in a test's mensaje, untouched by XML escaping


@dataclass(frozen=True, slots=True)
class HostileReply:
    """What to answer: ``status`` sent verbatim, ``mensaje``, and the body's size (0: unpadded)."""

    status: str = "200"
    mensaje: str = ""
    size: int = 0
    chunked: bool = False  # no Content-Length: the client learns the size only by reading


class HostileReplies:
    """UUID -> the hostile reply for it; thread-safe (the HTTP server runs a thread per connection)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._by_uuid: dict[str, HostileReply] = {}

    def set(self, uuid: str, *, status: str = "200", mensaje: str = "", size: int = 0, chunked: bool = False) -> None:
        with self._lock:
            self._by_uuid[uuid.strip().upper()] = HostileReply(status, mensaje, size, chunked)

    def clear(self, uuid: str | None = None) -> None:
        with self._lock:
            if uuid is None:
                self._by_uuid.clear()
            else:
                self._by_uuid.pop(uuid.strip().upper(), None)

    def lookup(self, operation: str, fields: Mapping[str, str | None]) -> HostileReply | None:
        """The reply for the request's UUID (``uuid`` or ``transactionId``, before any ``|``), if one is set."""
        if operation not in RESULT_TYPES:
            return None
        field = fields.get("uuid") or fields.get("transactionId") or ""
        uuid = field.split("|", 1)[0].strip().upper()
        with self._lock:
            return self._by_uuid.get(uuid)


def body(version: int, operation: str, reply: HostileReply) -> tuple[int, Iterator[bytes]]:
    """The reply envelope's length and its bytes in chunks, ``mensaje`` padded up to ``reply.size``."""
    values: list[tuple[str, str | None]] = [("mensaje", reply.mensaje + _PAD), ("status", reply.status)]
    whole = soap.reply(version, operation, RESULT_TYPES[operation], values)
    head, tail = whole.split(_PAD.encode(), 1)
    pad = max(0, reply.size - len(head) - len(tail))

    def chunks() -> Iterator[bytes]:
        yield head
        block = b"x" * CHUNK
        left = pad
        while left > 0:
            yield block[: min(left, CHUNK)]
            left -= CHUNK
        yield tail

    return len(head) + pad + len(tail), chunks()

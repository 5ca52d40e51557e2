"""The seam to the SAT's status service (``ConsultaCFDIService``): the only module that talks to it.

A fixed SOAP 1.1 envelope over httpx, no WSDL (the SAT's was unavailable for years while
requests kept working).  Every outcome is an :class:`~reconciler.sat.answer.Answer`:
a timeout, a refused connection, a 5xx, an oversized or garbled reply is an answer with
``problem`` set, which the follower treats as transient.  Nothing here raises for the SAT
being down.

Requests pass one process-wide :class:`RateLimiter`: at most ``max_rps`` in every
one-second window, never a burst above it.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from xml.sax.saxutils import escape

import httpx

from reconciler.sat.answer import MAX_BYTES, Answer, parse

log = logging.getLogger(__name__)

PRODUCTION_URL = "https://consultaqr.facturaelectronica.sat.gob.mx/ConsultaCFDIService.svc"
SOAP_ACTION = "http://tempuri.org/IConsultaCFDIService/Consulta"


def envelope(expression: str) -> bytes:
    """The request body for one expression (escaped once more for XML: ``&`` -> ``&amp;``)."""
    return (
        '<s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body>'
        '<Consulta xmlns="http://tempuri.org/">'
        f"<expresionImpresa>{escape(expression)}</expresionImpresa>"
        "</Consulta></s:Body></s:Envelope>"
    ).encode()


class RateLimiter:
    """At most ``max_rps`` acquisitions in every one-second window (a sliding log, no bursts).

    With ``max_rps`` below 1 it is one acquisition every ``1/max_rps`` seconds; a fractional
    rate above 1 is rounded down (2.5 -> 2 a second).
    """

    def __init__(
        self,
        max_rps: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not max_rps > 0:
            raise ValueError("max_rps must be positive")
        self.slots = max(1, math.floor(max_rps))
        self.window = max(1.0, self.slots / max_rps)
        self._clock = clock
        self._sleep = sleep
        self._times: deque[float] = deque()
        self._lock = asyncio.Lock()

    async def acquire(self) -> float:
        """Wait for a slot; returns the clock time the slot was taken."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._times and now - self._times[0] >= self.window:
                    self._times.popleft()
                if len(self._times) < self.slots:
                    self._times.append(now)
                    return now
                # At least a millisecond: a wait rounded to nothing would spin without the clock moving.
                await self._sleep(max(self._times[0] + self.window - now, 1e-3))


class SatClient:
    """One HTTP client and one limiter for the whole process."""

    def __init__(
        self,
        url: str = PRODUCTION_URL,
        *,
        timeout_s: float = 30.0,
        max_rps: float = 2.0,
        limiter: RateLimiter | None = None,
        verify: bool | str = True,
    ) -> None:
        self.url = url
        self.limiter = limiter or RateLimiter(max_rps)
        self._http = httpx.AsyncClient(timeout=timeout_s, verify=verify, follow_redirects=False)
        self.calls = 0

    async def consulta(self, expression: str) -> Answer:
        """Ask about one CFDI; never raises for anything the network or the SAT does."""
        await self.limiter.acquire()
        self.calls += 1
        headers = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": f'"{SOAP_ACTION}"'}
        try:
            async with self._http.stream("POST", self.url, content=envelope(expression), headers=headers) as reply:
                body = bytearray()
                async for chunk in reply.aiter_bytes():
                    body += chunk
                    if len(body) > MAX_BYTES:
                        return Answer(problem=f"the SAT's reply is larger than {MAX_BYTES} bytes")
                status = reply.status_code
        except httpx.TimeoutException:
            return Answer(problem="the SAT did not answer in time")
        except httpx.HTTPError as e:
            return Answer(problem=f"the SAT could not be reached: {type(e).__name__}")
        answer = parse(bytes(body))
        if status >= 400 and answer.problem is None:
            return Answer(problem=f"HTTP {status} from the SAT")
        if status >= 400:
            return Answer(problem=f"HTTP {status} from the SAT: {answer.problem}")
        return answer

    async def aclose(self) -> None:
        await self._http.aclose()

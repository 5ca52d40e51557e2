"""The one seam to webhook receivers: an HTTP POST of an outbox event, signed per Standard Webhooks.

No redirects are followed (a 3xx is a failed attempt, so a receiver cannot bounce a
signed payload elsewhere), TLS is verified (plus an optional extra CA file), and the
reply body is never read past a few kilobytes.  Plain ``http://`` is accepted only
for loopback receivers.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from reconciler import __version__
from reconciler.events.outbox import Attempt, OutboxEvent
from reconciler.events.signature import headers
from reconciler.events.urls import display_url

_REPLY_PEEK = 4096  # bytes of a reply read at most: the status is all we need


class WebhookSender:
    """POSTs events to one receiver; one pooled connection set per endpoint."""

    def __init__(
        self,
        url: str,
        keys: list[bytes],
        *,
        timeout_s: float,
        ca_file: Path | None = None,
        concurrency: int = 4,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._keys = keys
        self._clock = clock
        self._timeout_s = timeout_s
        verify: ssl.SSLContext | bool = True
        if ca_file is not None:
            verify = ssl.create_default_context()
            verify.load_verify_locations(cafile=str(ca_file))
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout_s),
            follow_redirects=False,
            verify=verify,
            limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency),
            headers={"user-agent": f"reconciler/{__version__}"},
            trust_env=False,
        )

    async def send(self, event: OutboxEvent) -> Attempt:
        body = event.body()
        hdrs = headers(self._keys, event.id, int(self._clock()), body)
        try:
            async with self._client.stream("POST", self.url, content=body, headers=hdrs) as reply:
                async for _ in reply.aiter_bytes(_REPLY_PEEK):
                    break
                status = reply.status_code
                location = reply.headers.get("location", "")
        except httpx.TimeoutException:
            return Attempt(ok=False, error=f"timed out after {self._timeout_s:g}s")
        except httpx.HTTPError as e:
            return Attempt(ok=False, error=f"{type(e).__name__}: {e}".splitlines()[0][:300])
        if 200 <= status < 300:
            return Attempt(ok=True, status=status)
        if status == 410:
            return Attempt(ok=False, status=status, gone=True, error="HTTP 410 Gone: the receiver asked us to stop")
        if 300 <= status < 400:
            where = display_url(location) if location else "nowhere"
            return Attempt(ok=False, status=status, error=f"HTTP {status} redirect to {where} not followed")
        return Attempt(ok=False, status=status, error=f"HTTP {status}")

    async def aclose(self) -> None:
        await self._client.aclose()

"""The one seam to webhook receivers: an HTTP POST of an outbox event, signed per Standard Webhooks.

No redirects are followed (a 3xx is a failed attempt, so a receiver cannot bounce a
signed payload elsewhere), TLS is verified (plus an optional extra CA file), and the
reply body is never read past a few kilobytes.  Plain ``http://`` is accepted only
for loopback receivers.
"""

from __future__ import annotations

import ipaddress
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import httpx

from reconciler import __version__
from reconciler.events.outbox import Attempt, OutboxEvent
from reconciler.events.signature import headers

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
_REPLY_PEEK = 4096


def _is_loopback(host: str) -> bool:
    if host.lower() in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_url(url: str) -> str:
    """A webhook URL: https, or http to a loopback address; no credentials in it."""
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ValueError("expected an https:// URL")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ValueError("plain http is only allowed to a loopback receiver; use https")
    if parts.username or parts.password:
        raise ValueError("credentials do not belong in the URL; the payload is signed with the secret")
    return url


def display_url(url: str) -> str:
    """The URL without its query (which may carry a token) for names, logs and metrics."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}{parts.path}"


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

"""The webhook seam against real loopback servers: TLS verified, redirects refused, 410 understood."""

from __future__ import annotations

import ssl
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import trustme

from reconciler.events.outbox import OutboxEvent
from reconciler.events.signature import key_of
from reconciler.events.webhooks import WebhookSender

from .receiver import Receiver
from .test_delivery import SECRET

EVENT = OutboxEvent(1, "evt_0123", "2026-12-03T12:00:00.000Z", "job.ok", "U", {"uuid": "U", "new_state": "ok"})


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(SECRET).start()
    yield r
    r.stop()


def _serve(handler: type[BaseHTTPRequestHandler], tls: ssl.SSLContext | None = None) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


async def test_tls_is_verified_and_an_extra_ca_can_be_trusted(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    seen: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["content-length"]))
            seen.append(self.headers["webhook-id"])
            self.send_response(204)
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = _serve(Handler, ctx)
    url = f"https://127.0.0.1:{server.server_address[1]}/hook"
    try:
        plain = WebhookSender(url, [key_of(SECRET)], timeout_s=5)
        refused = await plain.send(EVENT)
        await plain.aclose()
        assert not refused.ok and "CERTIFICATE_VERIFY_FAILED" in (refused.error or "")
        assert seen == []
        pem = tmp_path / "ca.pem"
        ca.cert_pem.write_to_path(str(pem))
        trusting = WebhookSender(url, [key_of(SECRET)], timeout_s=5, ca_file=pem)
        assert (await trusting.send(EVENT)).ok
        await trusting.aclose()
        assert seen == ["evt_0123"]
    finally:
        server.shutdown()
        server.server_close()


async def test_a_redirect_is_not_followed(receiver: Receiver) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(307)
            self.send_header("location", receiver.url)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = _serve(Redirect)
    try:
        sender = WebhookSender(f"http://127.0.0.1:{server.server_address[1]}/", [key_of(SECRET)], timeout_s=5)
        attempt = await sender.send(EVENT)
        await sender.aclose()
    finally:
        server.shutdown()
        server.server_close()
    assert not attempt.ok and attempt.status == 307 and "not followed" in (attempt.error or "")
    assert "t0k3n" not in (attempt.error or "")  # the Location's query is not repeated
    assert receiver.deliveries == []


async def test_statuses(receiver: Receiver) -> None:
    sender = WebhookSender(receiver.url, [key_of(SECRET)], timeout_s=5)
    try:
        assert (await sender.send(EVENT)).ok
        receiver.status = 410
        gone = await sender.send(EVENT)
        assert gone.gone and not gone.ok
        receiver.status = 503
        failed = await sender.send(EVENT)
        assert not failed.ok and not failed.gone and failed.error == "HTTP 503"
    finally:
        await sender.aclose()
    assert [d.verified for d in receiver.deliveries] == [True, True, True]

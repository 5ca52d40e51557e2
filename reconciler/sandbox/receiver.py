"""A webhook receiver on loopback for the demo: it checks each Standard Webhooks signature itself.

Written from the specification, not from the product's signer, so the demo shows two
independent implementations agreeing: HMAC-SHA256 over ``id.timestamp.body`` with the
base64 key of a ``whsec_`` secret, any one ``v1,`` signature matching.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def verified(secret: str, headers: dict[str, str], body: bytes) -> bool:
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers.get('webhook-id', '')}.{headers.get('webhook-timestamp', '')}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    given = [s.partition(",")[2] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, g) for g in given)


@dataclass
class WebhookReceiver:
    secret: str = field(default_factory=new_secret)
    ids: set[str] = field(default_factory=set)
    types: Counter[str] = field(default_factory=Counter)
    forged: int = 0
    _server: ThreadingHTTPServer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}/reconciler"

    def start(self) -> WebhookReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                headers = {k.lower(): v for k, v in self.headers.items()}
                good = verified(receiver.secret, headers, body)
                with receiver._lock:
                    if not good:
                        receiver.forged += 1
                    elif headers["webhook-id"] not in receiver.ids:
                        receiver.ids.add(headers["webhook-id"])
                        receiver.types[str(json.loads(body).get("type"))] += 1
                self.send_response(204 if good else 401)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def summary(self) -> str:
        with self._lock:
            kinds = ", ".join(f"{n} {t}" for t, n in sorted(self.types.items()))
            return f"{len(self.ids)} events, every signature verified ({kinds})" + (
                f"; {self.forged} REFUSED" if self.forged else ""
            )

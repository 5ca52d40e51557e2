"""A fast webhook receiver for the benches: HTTP/1.1 keep-alive, 204 to every POST, counts in a file.

Run: python bench/webhook_receiver.py COUNT_FILE   (prints its URL on the first line)
With --verify SECRET it checks every signature with the official standardwebhooks package.
"""

from __future__ import annotations

import argparse
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("count_file", type=Path)
    parser.add_argument("--verify", metavar="SECRET")
    args = parser.parse_args()
    verifier = None
    if args.verify:
        from standardwebhooks.webhooks import Webhook

        verifier = Webhook(args.verify)
    lock = threading.Lock()
    counts = {"ok": 0, "bad": 0, "ids": set()}

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["content-length"]))
            good = True
            if verifier is not None:
                try:
                    verifier.verify(body, {k.lower(): v for k, v in self.headers.items()})
                except Exception:
                    good = False
            with lock:
                counts["ok" if good else "bad"] += 1  # type: ignore[operator]
                counts["ids"].add(self.headers.get("webhook-id"))  # type: ignore[union-attr]
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *a: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    print(f"http://127.0.0.1:{server.server_address[1]}/hook", flush=True)

    def report() -> None:
        while True:
            time.sleep(0.2)
            with lock:
                text = f"{counts['ok']} {counts['bad']} {len(counts['ids'])}\n"  # type: ignore[arg-type]
            args.count_file.write_text(text)

    threading.Thread(target=report, daemon=True).start()
    server.serve_forever()


if __name__ == "__main__":
    main()

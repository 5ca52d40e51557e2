"""Whether ``metrics.listen`` can be served here: resolved and free, or held by the running daemon.

``reconciler config check`` asks before the daemon does, so a typo or a port taken by another
program shows up as one line with a fix, not as a daemon that exits at start.
"""

from __future__ import annotations

import errno
import socket


def probe(listen: str, daemon_running: bool) -> tuple[bool, str]:
    """``(ok, detail)``: bind ``host:port`` for a moment (port in use is fine when our daemon runs)."""
    host, _, port = listen.rpartition(":")
    host = host.strip("[]") or "127.0.0.1"
    try:
        infos = socket.getaddrinfo(host, int(port), type=socket.SOCK_STREAM)
    except (OSError, UnicodeError, ValueError) as e:
        return False, f"metrics.listen {listen}: cannot resolve {host!r}: {getattr(e, 'strerror', None) or e}"
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(address)
        except OSError as e:
            if e.errno == errno.EADDRINUSE and daemon_running:
                return True, f"metrics.listen {listen}: in use (the running daemon serves it)"
            return False, f"metrics.listen {listen}: cannot listen: {e.strerror or e}"
    return True, f"metrics.listen {listen}: free"

"""Webhook URLs: what is accepted and how one is shown.  Pure, no I/O (config validates with it)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}


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

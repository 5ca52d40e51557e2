"""The one seam to the IMAP server: connecting and logging in, the header fetch and its splitter.

Everything here is synchronous imapclient code; :mod:`reconciler.mailbox.watcher` runs it
on its worker thread. As imapclient keeps its response parser beside its client, the poller's
fast FETCH-response splitter (:func:`split_fetch`) lives here, beside the one fetch that uses it.
"""

from __future__ import annotations

import logging
import re
import shlex
import ssl
import subprocess
from collections.abc import Mapping, Sequence
from typing import Any

from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError
from imapclient.response_parser import parse_fetch_response

from reconciler.config import Settings, credential, read_secret_file
from reconciler.errors import MailboxError, MailboxLoginError
from reconciler.redact import describe

log = logging.getLogger(__name__)

# IMAPClientError is imaplib.IMAP4.error under another name: imapclient's own errors and imaplib's both.
IMAP_ERRORS: tuple[type[BaseException], ...] = (IMAPClientError, OSError)


def open_imap(settings: Settings) -> IMAPClient:
    """Connect and log in as ``settings.mailbox`` says; MailboxError with one line that carries no secret.

    TLS (port 993) verifies the certificate against the system store or ``ca_file``; STARTTLS
    upgrades before login; plain text only with ``security = "none"``. Login by password, or
    XOAUTH2 with a token from ``oauth2_token_file``, ``oauth2_token_command`` or the systemd
    credential ``mailbox_oauth2_token`` (read again on every connection: tokens expire).
    """
    mb = settings.mailbox
    where = f"mailbox {mb.host}:{mb.effective_port}"
    context = None
    if mb.security != "none":
        context = ssl.create_default_context(cafile=str(mb.ca_file) if mb.ca_file else None)
    try:
        client = IMAPClient(
            mb.host, port=mb.effective_port, ssl=mb.security == "tls", ssl_context=context, timeout=mb.timeout_s
        )
    except IMAP_ERRORS as e:
        raise MailboxError(f"{where}: cannot connect: {describe(e)}") from e
    quiet_protocol_trace(client)
    secret = ""
    try:
        if mb.security == "starttls":
            client.starttls(context)
        if mb.auth == "password":
            secret = settings.mailbox_password().get_secret_value()
            client.login(mb.username, secret)
        else:
            secret = oauth2_token(settings)
            client.oauth2_login(mb.username, secret)
    except IMAP_ERRORS as e:
        close_quietly(client)
        said = describe(e, secret)
        refused = isinstance(e, LoginError)
        # RFC 5530 [UNAVAILABLE]: the server cannot check credentials right now (Dovecot's auth
        # process restarting): an outage, retried soon, not a refusal of the password.
        error = MailboxLoginError if refused and "[UNAVAILABLE]" not in said.upper() else MailboxError
        what = "login refused" if refused else "cannot log in"
        raise error(f"{where}: {what} for {mb.username}: {said}") from None
    except BaseException:
        close_quietly(client)
        raise
    return client


def quiet_protocol_trace(client: IMAPClient) -> None:
    """Stop imaplib formatting a trace nobody reads, unless ``imapclient.imaplib`` logs at DEBUG.

    imapclient sets imaplib's debug level to 5 and routes the trace to that logger, so imaplib
    builds a repr of every line and every literal it reads before the logger drops it. For a
    header fetch that is more than half of the client's CPU: measured on 55,000 messages in
    1,000-UID ranges, 0.80-0.92 s at level 5 against 0.38 s at level 0.
    """
    if not logging.getLogger("imapclient.imaplib").isEnabledFor(logging.DEBUG):
        # No public API: imapclient sets the level on its private imaplib object and offers no setter.
        client._imap.debug = 0


def oauth2_token(settings: Settings) -> str:
    """The XOAUTH2 access token: from the file, else the command's stdout, else the systemd credential."""
    mb = settings.mailbox
    if mb.oauth2_token_file is not None:
        return read_secret_file(mb.oauth2_token_file, "mailbox.oauth2_token_file").get_secret_value().strip()
    if mb.oauth2_token_command:
        try:
            done = subprocess.run(
                shlex.split(mb.oauth2_token_command), capture_output=True, timeout=mb.timeout_s, check=False
            )
        except (OSError, ValueError, subprocess.TimeoutExpired) as e:
            raise MailboxError(f"mailbox.oauth2_token_command: cannot run it: {describe(e)}") from e
        token = done.stdout.decode("utf-8", "replace").strip()
        if done.returncode != 0 or not token:
            said = done.stderr.decode("utf-8", "replace").strip().splitlines()[-1:] or ["no output"]
            raise MailboxError(f"mailbox.oauth2_token_command exited with {done.returncode}: {said[0][:200]}")
        return token
    path = credential("mailbox_oauth2_token")
    if path is not None:
        return read_secret_file(path, "credential mailbox_oauth2_token").get_secret_value().strip()
    raise MailboxError("mailbox.oauth2_token_file: missing (xoauth2 needs a token file, command or credential)")


def uid_set(uids: Sequence[int]) -> str:
    """A compact IMAP UID set: ``[1, 2, 3, 7]`` -> ``"1:3,7"``."""
    parts: list[str] = []
    ordered = sorted(set(uids))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}:{ordered[j]}")
        i = j + 1
    return ",".join(parts)


def close_quietly(client: IMAPClient) -> None:
    """Drop the connection without caring whether the socket is still alive."""
    try:
        client.shutdown()
    except Exception:  # closing a dead socket: nothing left to do
        log.debug("closing the IMAP socket failed", exc_info=True)


def header_fetch_items(fields: Sequence[str]) -> str:
    """The FETCH items that read only ``fields`` of each header, without setting ``\\Seen``."""
    return f"(UID BODY.PEEK[HEADER.FIELDS ({' '.join(fields).upper()})])"


def fetch_headers(client: IMAPClient, first: int, last: int, items: str, where: str) -> dict[int, bytes]:
    """UID -> header block for every message in the UID range ``first:last``: one ``UID FETCH``.

    This reaches into imapclient's private imaplib object (``client._imap``) on purpose: no
    public call returns the raw answer. The public ``fetch()`` parses every answer with
    imapclient's general response parser, which takes about a hundred times longer than
    :func:`split_fetch` on header blocks (123 ms against 0.9 ms per 1,000 here; bench/reconcile.py
    measures the whole poller), and in imapclient 4.1 it cannot take a ``first:last`` range
    anyway: it sends one as given but then drops unsolicited answers with ``int("first:last")``,
    which raises. Unusual layouts still go to imapclient's parser; UIDs outside the range
    (unsolicited FETCH answers) are dropped.
    """
    typ, data = client._imap.uid("FETCH", f"{first}:{last}", items)
    if typ != "OK":
        raise MailboxError(f"{where}: UID FETCH {first}:{last} refused: {describe(data)}")
    headers = split_fetch(data)
    if headers is None:  # a layout the fast path does not know: imapclient's full parser
        response = parse_fetch_response([d for d in data if d is not None], False, True)
        headers = {uid: body for uid, item in response.items() if (body := _body(item)) is not None}
    return {uid: body for uid, body in headers.items() if first <= uid <= last}


_UID = re.compile(rb"\bUID (\d+)")


def split_fetch(data: Sequence[Any]) -> dict[int, bytes] | None:
    """UID -> header literal from imaplib's raw ``UID FETCH`` answer, or None if its shape is unusual.

    imaplib hands each literal over as ``(b'n (UID u BODY[...] {len}', literal)``; the UID may
    also follow the literal (``b' UID u)'``).  Splitting that directly is about a hundred times
    cheaper than imapclient's general response parser, which stays the fallback.
    """
    out: dict[int, bytes] = {}
    pending: bytes | None = None
    for item in data:
        if isinstance(item, tuple):
            if pending is not None or len(item) != 2:
                return None
            prefix, literal = item
            found = _UID.search(prefix)
            if found is None:
                pending = literal
            else:
                out[int(found.group(1))] = literal
        elif pending is not None:
            found = _UID.search(item) if isinstance(item, bytes) else None
            if found is None:
                return None
            out[int(found.group(1))] = pending
            pending = None
    return None if pending is not None else out


def select_info(info: Mapping[bytes, Any]) -> tuple[int, int | None]:
    """UIDVALIDITY and UIDNEXT (None when the server did not say) from a SELECT answer."""
    uidnext = info.get(b"UIDNEXT")
    return int(info[b"UIDVALIDITY"]), int(uidnext) if uidnext is not None else None


def _body(item: Mapping[bytes, Any]) -> bytes | None:
    for key, value in item.items():
        if key.startswith(b"BODY[") and isinstance(value, bytes):
            return value
    return None

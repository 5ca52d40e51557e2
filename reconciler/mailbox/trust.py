"""Whether to believe a notification: pure, apart from DKIM's DNS lookups.

Anyone who can send mail to the mailbox can write ``X-StatusCancelacion: OK``,
so a notification changes a job only when

1. its From header holds exactly one mailbox and that addr-spec matches one of
   ``mailbox.trust.allowed_senders`` (shell globs, case-insensitive; the display
   name never counts), and
2. when ``mailbox.trust.authserv_id`` is set, the topmost
   ``Authentication-Results`` header carrying that authserv-id says
   ``dkim=pass`` for a domain aligned with the sender's, or ``dmarc=pass`` for the
   sender's domain; and
3. when ``mailbox.trust.verify_dkim`` is set, a DKIM signature aligned with the
   sender's domain and covering From, X-UUIDCancelacion and X-StatusCancelacion
   verifies (dkimpy).

A DKIM key lookup that fails for a reason of the message's own making (a label over 63
octets, a name that is no name, NXDOMAIN, no TXT record, a malformed key) is a verdict:
untrusted. Only a temporary DNS failure (timeout, SERVFAIL, no nameserver answering) raises
:class:`DkimUnavailable`; the watcher then puts that one message off to a later pass, at most
:data:`DKIM_ATTEMPTS` passes (:class:`Postponements`), after which it is untrusted too.

Why the *topmost* header with our authserv-id: each MTA adds its header on top,
so headers above ours were added after our server's check by hops we trust
anyway, and headers below it may be the sender's forgeries (RFC 8601 §5 asks
the receiving MTA to remove those, not every one does). As in Discourse's
``Email::AuthenticationResults``, only the server named by configuration is
believed, and anything missing or unclear is a refusal, never a pass.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from reconciler.config import TrustSettings
from reconciler.errors import MailboxError
from reconciler.mailbox.notification import INVALID, STATUS_HEADER, UUID_HEADER, Notification
from reconciler.redact import show

log = logging.getLogger(__name__)

_SHOWN = 80  # characters of a From header or a DKIM error quoted in a reason

#: dkimpy's DNS hook: a fully qualified TXT name (bytes) in, the record (bytes) or None out.
DnsFunc = Callable[..., bytes | None]
#: Header fields a trusted DKIM signature must cover.
SIGNED_FIELDS = (b"from", UUID_HEADER.lower().encode(), STATUS_HEADER.lower().encode())


class DkimUnavailable(MailboxError):
    """A DKIM key could not be looked up right now (DNS timeout): judge the message later, not as untrusted."""


#: Passes a message may be put off for a temporary DKIM lookup failure before it is judged untrusted.
DKIM_ATTEMPTS = 5


class Postponements:
    """How many passes each message was put off for a temporary DKIM failure, bounded.

    Kept in memory: a restart starts the counts afresh, which only grants a few more passes.
    """

    def __init__(self, limit: int = DKIM_ATTEMPTS) -> None:
        self._limit = limit
        self._tries: dict[int, int] = {}

    def again(self, uid: int) -> bool:
        """Count one more put-off for ``uid``; False when it has had its ``limit``: judge it now."""
        tries = self._tries.get(uid, 0) + 1
        if tries >= self._limit:
            self._tries.pop(uid, None)
            return False
        self._tries[uid] = tries
        return True

    def judge(
        self,
        uid: int,
        notification: Notification,
        trust: TrustSettings,
        raw_message: bytes | None,
        dnsfunc: DnsFunc | None = None,
    ) -> Verdict | None:
        """:func:`assess`, or None to put the message off to the next pass (DKIM unavailable for now)."""
        try:
            verdict = assess(notification, trust, raw_message, dnsfunc=dnsfunc)
        except DkimUnavailable as e:
            if self.again(uid):
                log.warning("notification uid %d put off to the next pass: %s", uid, e)
                return None
            return Verdict(False, f"{e}; still failing after {self._limit} passes")
        self._tries.pop(uid, None)
        return verdict


@dataclass(frozen=True, slots=True)
class Verdict:
    trusted: bool
    reason: str  # why not, or what vouched for it


@dataclass(frozen=True, slots=True)
class AuthResult:
    """One ``method=result`` clause of an Authentication-Results header."""

    method: str
    result: str
    props: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class AuthResults:
    authserv_id: str
    results: tuple[AuthResult, ...]


def assess(
    notification: Notification,
    trust: TrustSettings,
    raw_message: bytes | None = None,
    *,
    dnsfunc: DnsFunc | None = None,
) -> Verdict:
    """Decide whether ``notification`` may change a job; the reason names what failed.

    Raises :class:`DkimUnavailable` only when a DKIM key lookup fails transiently.
    """
    verdict = check_sender(notification, trust.allowed_senders)
    if not verdict.trusted:
        return verdict
    domain = notification.sender_domain
    assert domain is not None  # check_sender passed: exactly one sender
    reasons = [verdict.reason]
    if trust.authserv_id:
        verdict = check_authentication_results(notification.authentication_results, trust.authserv_id, domain)
        if not verdict.trusted:
            return verdict
        reasons.append(verdict.reason)
    if trust.verify_dkim:
        if raw_message is None:
            return Verdict(False, "DKIM check needs the whole message and it was not fetched")
        verdict = check_dkim(raw_message, domain, dnsfunc)
        if not verdict.trusted:
            return verdict
        reasons.append(verdict.reason)
    return Verdict(True, "; ".join(reasons))


def check_sender(notification: Notification, allowed: Sequence[str]) -> Verdict:
    """Exactly one From mailbox, and its addr-spec matches an allowed glob."""
    addresses = notification.from_addresses
    if not addresses:
        return Verdict(False, "no From address")
    if len(addresses) > 1:
        return Verdict(False, f"From holds {len(addresses)} mailboxes; exactly one is required")
    sender = addresses[0]
    if sender == INVALID:
        return Verdict(False, f"From is not a valid address: {show(notification.raw_from or '', _SHOWN)}")
    for pattern in allowed:
        if fnmatch.fnmatchcase(sender, pattern.strip().lower()):
            return Verdict(True, f"sender {sender} matches {pattern}")
    return Verdict(False, f"sender {sender} is not in mailbox.trust.allowed_senders")


def check_authentication_results(headers: Sequence[str], authserv_id: str, domain: str) -> Verdict:
    """The topmost header from ``authserv_id`` must report dkim=pass (aligned) or dmarc=pass for ``domain``."""
    wanted = authserv_id.strip().lower()
    for header in headers:  # topmost first
        parsed = parse_authentication_results(header)
        if parsed is None or parsed.authserv_id.lower() != wanted:
            continue
        seen: list[str] = []
        for r in parsed.results:
            if r.method == "dmarc":
                header_from = r.props.get("header.from", "").lower()
                if r.result == "pass" and header_from == domain:
                    return Verdict(True, f"{authserv_id}: dmarc=pass for {domain}")
                seen.append(f"dmarc={r.result}" + (f" for {header_from}" if header_from else ""))
            elif r.method == "dkim":
                signer = _dkim_domain(r.props)
                if r.result == "pass" and signer and aligned(domain, signer):
                    return Verdict(True, f"{authserv_id}: dkim=pass for {signer}")
                seen.append(f"dkim={r.result}" + (f" for {signer}" if signer else ""))
        found = ", ".join(seen) if seen else "no dkim or dmarc result"
        return Verdict(False, f"Authentication-Results from {authserv_id}: {found}; need a pass for {domain}")
    return Verdict(False, f"no Authentication-Results header from {authserv_id}")


def check_dkim(raw_message: bytes, domain: str, dnsfunc: DnsFunc | None = None) -> Verdict:
    """A DKIM signature aligned with ``domain``, covering the notification headers, verifies.

    Raises :class:`DkimUnavailable` only when a key lookup failed for a temporary reason
    (:func:`temporary`); every other lookup failure (a name the message made invalid, NXDOMAIN, no
    key, a malformed key record) is the message's own doing and a verdict.
    """
    import dkim

    try:
        signer = dkim.DKIM(raw_message)
    except Exception as e:
        return Verdict(False, f"DKIM: message unreadable ({type(e).__name__})")
    signatures = [value for name, value in signer.headers if name.lower() == b"dkim-signature"]
    if not signatures:
        return Verdict(False, "no DKIM-Signature header")
    reasons: list[str] = []
    for idx, signature in enumerate(signatures):
        try:
            tags = dkim.util.parse_tag_value(signature)
        except Exception:
            reasons.append("unparseable DKIM-Signature")
            continue
        d = tags.get(b"d", b"").decode("ascii", "replace").strip().lower()
        signed = {h.strip().lower() for h in tags.get(b"h", b"").split(b":")}
        if not aligned(domain, d):
            reasons.append(f"DKIM d={d or '?'} does not align with {domain}")
            continue
        missing = [f.decode() for f in SIGNED_FIELDS if f not in signed]
        if missing:
            reasons.append(f"DKIM d={d} does not sign {', '.join(missing)}")
            continue
        lookup = _Lookup(dnsfunc if dnsfunc is not None else resolve_txt)
        try:
            ok = signer.verify(idx, dnsfunc=lookup)
        except Exception as e:  # dkimpy's own refusals, and anything a hostile signature provokes
            why = str(e).split(" (", 1)[0] or type(e).__name__  # drop dkimpy's hash dump
            ok, failure = False, f"DKIM signature d={d} does not verify: {show(why, _SHOWN)}"
        else:
            failure = f"DKIM signature d={d} does not verify"
        if lookup.temporary is not None:  # dkimpy reports a lookup timeout as "does not verify"
            raise DkimUnavailable(f"DKIM key lookup for d={d} failed for now: {lookup.temporary}")
        if ok:
            return Verdict(True, f"DKIM signature d={d} verified")
        reasons.append(lookup.permanent or failure)
    return Verdict(False, "; ".join(reasons))


def temporary(error: BaseException) -> bool:
    """Whether a DNS lookup failure says nothing about the message: a timeout, SERVFAIL from every
    nameserver, no resolver configured, the network unreachable. NXDOMAIN, no TXT record, a label
    over 63 octets or a name that is no name are the message's doing and are not temporary."""
    import dkim
    import dns.exception
    import dns.resolver

    if isinstance(error, dns.resolver.NXDOMAIN | dns.resolver.NoAnswer | dns.resolver.YXDOMAIN):
        return False
    return isinstance(
        error,
        dns.exception.Timeout
        | dns.resolver.NoNameservers
        | dns.resolver.NoResolverConfiguration
        | dkim.DnsTimeoutError
        | OSError,
    )


def resolve_txt(name: bytes, timeout: float = 5) -> bytes | None:
    """The TXT record at ``name`` (the first one, strings joined), or None when there is none.

    Unlike dkimpy's own lookup this lets every failure through, so :class:`_Lookup` can tell a
    temporary one from a verdict.
    """
    import dns.rdatatype
    import dns.resolver

    answer = dns.resolver.resolve(name.decode("ascii"), dns.rdatatype.TXT, raise_on_no_answer=False, lifetime=timeout)
    for rrset in answer.response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b"".join(next(iter(rrset)).strings)
    return None


class _Lookup:
    """dkimpy's ``dnsfunc``, recording why a lookup failed: dkimpy itself turns a timeout into
    "does not verify" and lets a malformed name's exception escape."""

    def __init__(self, inner: DnsFunc) -> None:
        self._inner = inner
        self.temporary: str | None = None
        self.permanent: str | None = None

    def __call__(self, name: bytes, timeout: float = 5) -> bytes | None:
        try:
            return self._inner(name, timeout=timeout)
        except Exception as e:
            shown = f"{type(e).__name__} for {show(name.decode('ascii', 'replace'), _SHOWN)}"
            if temporary(e):
                self.temporary = shown
            else:
                self.permanent = f"DKIM key lookup failed: {shown}"
            return None


def aligned(from_domain: str, signer: str) -> bool:
    """Relaxed alignment without a public-suffix list: equal, or From is a subdomain of the signer.

    The signer needs at least two labels, so ``d=com`` never vouches for anything.
    """
    from_domain, signer = from_domain.lower().rstrip("."), signer.lower().rstrip(".")
    if not signer or signer.count(".") < 1:
        return False
    return from_domain == signer or from_domain.endswith("." + signer)


def _dkim_domain(props: dict[str, str]) -> str:
    if "header.d" in props:
        return props["header.d"].lower()
    identity = props.get("header.i", "")
    return identity.rpartition("@")[2].lower()


# -- RFC 8601 parsing ----------------------------------------------------------


def parse_authentication_results(value: str) -> AuthResults | None:
    """Parse one header value; None when it has no authserv-id. Comments are dropped, quotes honoured."""
    try:
        tokens = _tokens(value)
    except ValueError:
        return None
    segments: list[list[str]] = [[]]
    for tok in tokens:
        if tok == ";":
            segments.append([])
        else:
            segments[-1].append(tok)
    head = segments[0]
    if not head or head[0] in ("=",):
        return None
    results: list[AuthResult] = []
    for segment in segments[1:]:
        result = _resinfo(segment)
        if result is not None:
            results.append(result)
    return AuthResults(_unquote(head[0]), tuple(results))


def _resinfo(tokens: list[str]) -> AuthResult | None:
    # method [/version] = result, then key = value pairs (reason=..., ptype.property=...)
    if len(tokens) < 3 or tokens[1] != "=":
        return None
    method = tokens[0].split("/", 1)[0].strip().lower()
    result = _unquote(tokens[2]).lower()
    props: dict[str, str] = {}
    i = 3
    while i < len(tokens):
        if i + 2 < len(tokens) and tokens[i + 1] == "=" and tokens[i] != "=":
            props.setdefault(tokens[i].lower(), _unquote(tokens[i + 2]))
            i += 3
        else:
            i += 1
    return AuthResult(method, result, props)


def _tokens(text: str) -> list[str]:
    """Words, quoted strings (kept with their quotes), ``;`` and ``=``; comments removed."""
    out: list[str] = []
    word: list[str] = []
    i, n = 0, len(text)

    def flush() -> None:
        if word:
            out.append("".join(word))
            word.clear()

    while i < n:
        c = text[i]
        if c == "(":
            flush()
            depth = 1
            i += 1
            while i < n and depth:
                if text[i] == "\\":
                    i += 1
                elif text[i] == "(":
                    depth += 1
                elif text[i] == ")":
                    depth -= 1
                i += 1
            if depth:
                raise ValueError("unterminated comment")
            continue
        if c == '"':
            flush()
            j = i + 1
            buf = ['"']
            while j < n and text[j] != '"':
                if text[j] == "\\" and j + 1 < n:
                    j += 1
                buf.append(text[j])
                j += 1
            if j >= n:
                raise ValueError("unterminated quoted string")
            out.append("".join([*buf, '"']))
            i = j + 1
            continue
        if c in ";=":
            flush()
            out.append(c)
        elif c.isspace():
            flush()
        else:
            word.append(c)
        i += 1
    flush()
    return out


def _unquote(token: str) -> str:
    if len(token) >= 2 and token[0] == token[-1] == '"':
        return token[1:-1]
    return token

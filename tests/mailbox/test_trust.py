"""Trust: sender globs, Authentication-Results from our own server, DKIM with a local key."""

from __future__ import annotations

import base64
import logging
import re
import socket
import subprocess
import tempfile
import threading
from pathlib import Path

import dkim
import dns.exception
import dns.message
import dns.name
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
import dns.resolver
import dns.rrset
import pytest

from reconciler.config import TrustSettings
from reconciler.mailbox.notification import Malformed, Notification, parse
from reconciler.mailbox.trust import (
    DKIM_ATTEMPTS,
    DkimUnavailable,
    Postponements,
    Verdict,
    aligned,
    assess,
    check_authentication_results,
    check_dkim,
    parse_authentication_results,
    resolve_txt,
)
from tests.fixtures_imap import new_uuid, notification

DOMAIN = "solucionfactible.com"
DEFAULT = TrustSettings()


def _keypair() -> tuple[bytes, bytes]:
    with tempfile.TemporaryDirectory() as d:
        key = Path(d) / "key.pem"
        subprocess.run(["openssl", "genrsa", "-out", str(key), "2048"], check=True, capture_output=True, timeout=60)
        der = subprocess.run(
            ["openssl", "rsa", "-in", str(key), "-pubout", "-outform", "DER"],
            check=True,
            capture_output=True,
            timeout=60,
        ).stdout
        return key.read_bytes(), base64.b64encode(der)


KEY, PUBLIC = _keypair()
INCLUDE = [b"from", b"date", b"message-id", b"x-uuidcancelacion", b"x-statuscancelacion"]


def dnsfunc(name: bytes, timeout: float = 5) -> bytes | None:
    """A local DNS: the test key at sel._domainkey.solucionfactible.com, nothing else."""
    if name.rstrip(b".") == b"sel._domainkey." + DOMAIN.encode():
        return b"v=DKIM1; k=rsa; p=" + PUBLIC
    return None


def note(sender: str = f"Solución Factible <notificaciones@{DOMAIN}>", extra: str = "") -> Notification:
    parsed = parse(notification(new_uuid(), sender=sender, extra=extra))
    assert isinstance(parsed, Notification)
    return parsed


@pytest.mark.parametrize(
    "sender",
    [
        f"notificaciones@{DOMAIN}",
        f"Solución Factible <NOTIFICACIONES@{DOMAIN.upper()}>",
        f"=?utf-8?q?Soluci=C3=B3n?= <avisos@{DOMAIN}>",
        f"(the provider) avisos@{DOMAIN}",
    ],
)
def test_allowed_senders(sender: str) -> None:
    verdict = assess(note(sender), DEFAULT)
    assert verdict.trusted, verdict.reason


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("attacker@evil.example", "not in mailbox.trust.allowed_senders"),
        (f"notificaciones@{DOMAIN}.mx", "not in"),
        ("notificaciones@solucionfactib1e.com", "not in"),
        (f"x@sub.{DOMAIN}.evil.com", "not in"),
        (f"x@sub.{DOMAIN}", "not in"),  # the default glob names the domain exactly
        (f'"notificaciones@{DOMAIN}" <attacker@evil.example>', "attacker@evil.example"),  # display name never counts
        (f"notificaciones@{DOMAIN} <attacker@evil.example>", "not a valid address"),  # parsers disagree: refuse
        (f"a@{DOMAIN}, attacker@evil.example", "2 mailboxes"),
        (f"notificaciones@{DOMAIN}@evil.example", "not a valid address"),
        (f"notificaciones@{DOMAIN}.", "not a valid address"),
        ("notificaciones@[127.0.0.1]", "not a valid address"),
        ("", "no From"),
        (f"notificaciones@=?utf-8?q?{DOMAIN}?=", "not a valid address"),  # an addr-spec is never decoded
        (f"Avisos <notificaciones@=?utf-8?q?{DOMAIN}?=>", "not a valid address"),
    ],
)
def test_refused_senders(sender: str, reason: str) -> None:
    verdict = assess(note(sender), DEFAULT)
    assert not verdict.trusted
    assert reason in verdict.reason


def test_repeated_from_headers_are_malformed() -> None:
    parsed = parse(notification(new_uuid(), extra="From: attacker@evil.example\r\n"))
    assert isinstance(parsed, Malformed) and "From appears 2 times" in parsed.reason


def test_custom_globs() -> None:
    trust = TrustSettings(allowed_senders=["*@*.solucionfactible.com", "avisos@example.org"])
    assert assess(note(f"x@mx1.{DOMAIN}"), trust).trusted
    assert assess(note("AVISOS@example.org"), trust).trusted
    assert not assess(note(f"x@{DOMAIN}"), trust).trusted


AR = "Authentication-Results: {}\r\n"
GATED = TrustSettings(authserv_id="mx.example.com")


@pytest.mark.parametrize(
    "headers",
    [
        [f"mx.example.com; dkim=pass header.d={DOMAIN}"],
        [f"mx.example.com; dmarc=pass (p=reject) header.from={DOMAIN}"],
        [f"mx.example.com 1; spf=fail smtp.mailfrom=x; dkim=pass (2048-bit key) header.i=@{DOMAIN}"],
        [f'"mx.example.com"; dkim = pass header.d="{DOMAIN}"'],
        # a later hop's header above ours is ignored; ours decides
        ["relay.internal; dkim=none", f"MX.EXAMPLE.COM; dmarc=pass header.from={DOMAIN}"],
        [f"mx.example.com; dkim=pass header.d={DOMAIN}", "mx.example.com; dkim=fail header.d=evil.example"],
    ],
)
def test_authentication_results_pass(headers: list[str]) -> None:
    n = note(extra="".join(AR.format(h) for h in headers))
    verdict = assess(n, GATED)
    assert verdict.trusted, verdict.reason


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "no Authentication-Results header from mx.example.com"),
        ([f"other.example; dkim=pass header.d={DOMAIN}"], "no Authentication-Results header from"),
        ([f"mx.example.com; dkim=fail header.d={DOMAIN}"], "dkim=fail"),
        (["mx.example.com; dkim=pass header.d=evil.example"], "dkim=pass for evil.example"),
        ([f"mx.example.com; dkim=pass header.d={DOMAIN}.evil.example"], "need a pass"),
        (["mx.example.com; dkim=pass header.d=com"], "need a pass"),
        (["mx.example.com; dmarc=pass header.from=evil.example"], "dmarc=pass for evil.example"),
        (["mx.example.com; none"], "no dkim or dmarc result"),
        (["mx.example.com; spf=pass smtp.mailfrom=notificaciones@solucionfactible.com"], "no dkim or dmarc"),
        # the topmost header from our server failed; a forged pass below it does not help
        (
            [
                "mx.example.com; dmarc=fail header.from=solucionfactible.com",
                f"mx.example.com; dkim=pass header.d={DOMAIN}",
            ],
            "dmarc=fail",
        ),
        ([f"mx.example.com; dkim=pass (comment header.d={DOMAIN})"], "need a pass"),
        (["mx.example.com; dkim=pass header.d=(unterminated"], "no Authentication-Results header from"),
    ],
)
def test_authentication_results_fail_closed(headers: list[str], reason: str) -> None:
    n = note(extra="".join(AR.format(h) for h in headers))
    verdict = assess(n, GATED)
    assert not verdict.trusted
    assert reason in verdict.reason, verdict.reason


def test_authentication_results_parser() -> None:
    parsed = parse_authentication_results(
        'mx.google.com;\r\n dkim=pass header.i=@a.example header.s=s1 header.b="AbC";'
        " spf=pass (google.com: 1.2.3.4 is ok) smtp.mailfrom=x@a.example; dmarc=pass (p=NONE) header.from=a.example"
    )
    assert parsed is not None and parsed.authserv_id == "mx.google.com"
    assert [(r.method, r.result) for r in parsed.results] == [("dkim", "pass"), ("spf", "pass"), ("dmarc", "pass")]
    assert parsed.results[0].props == {"header.i": "@a.example", "header.s": "s1", "header.b": "AbC"}
    assert parse_authentication_results("") is None
    assert check_authentication_results([], "mx", DOMAIN).reason == "no Authentication-Results header from mx"


def test_alignment() -> None:
    assert aligned(DOMAIN, DOMAIN)
    assert aligned(f"mail.{DOMAIN}", DOMAIN)
    assert not aligned(DOMAIN, f"mail.{DOMAIN}")
    assert not aligned(f"x{DOMAIN}", DOMAIN)
    assert not aligned(DOMAIN, "com")


# -- DKIM ------------------------------------------------------------------------

DKIM_ON = TrustSettings(verify_dkim=True)


def signed(raw: bytes, domain: str = DOMAIN, include: list[bytes] = INCLUDE) -> bytes:
    signature: bytes = dkim.sign(raw, b"sel", domain.encode(), KEY, include_headers=include)
    return signature + raw


def judge(raw: bytes, trust: TrustSettings = DKIM_ON) -> tuple[bool, str]:
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    verdict = assess(parsed, trust, raw, dnsfunc=dnsfunc)
    return verdict.trusted, verdict.reason


def test_dkim_valid_signature() -> None:
    trusted, reason = judge(signed(notification(new_uuid())))
    assert trusted, reason
    assert "d=solucionfactible.com verified" in reason


def test_dkim_body_altered() -> None:
    raw = signed(notification(new_uuid())).replace(b"procesada", b"rechazada")
    assert judge(raw) == (False, "DKIM signature d=solucionfactible.com does not verify: 'body hash mismatch'")


def test_dkim_status_header_altered() -> None:
    raw = signed(notification(new_uuid(), "ERROR")).replace(b"X-StatusCancelacion: ERROR", b"X-StatusCancelacion: OK")
    trusted, reason = judge(raw)
    assert not trusted and "does not verify" in reason


def test_dkim_wrong_domain() -> None:
    trusted, reason = judge(signed(notification(new_uuid()), domain="evil.example"))
    assert not trusted
    assert reason == "DKIM d=evil.example does not align with solucionfactible.com"


def test_dkim_must_cover_the_notification_headers() -> None:
    trusted, reason = judge(signed(notification(new_uuid()), include=[b"from", b"date"]))
    assert not trusted and "does not sign x-uuidcancelacion, x-statuscancelacion" in reason


def test_dkim_missing_signature_and_missing_message() -> None:
    raw = notification(new_uuid())
    assert judge(raw) == (False, "no DKIM-Signature header")
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    assert not assess(parsed, DKIM_ON, None).trusted


def test_dkim_unknown_key_is_untrusted() -> None:
    raw = notification(new_uuid())
    trusted, reason = judge(dkim.sign(raw, b"other", DOMAIN.encode(), KEY, include_headers=INCLUDE) + raw)
    assert (trusted, reason) == (False, "DKIM signature d=solucionfactible.com does not verify")


def test_dkim_dns_failure_is_not_a_verdict() -> None:
    def broken(name: bytes, timeout: float = 5) -> bytes | None:
        raise OSError("resolver unreachable")

    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    with pytest.raises(DkimUnavailable, match="failed"):
        assess(parsed, DKIM_ON, raw, dnsfunc=broken)


def test_sender_is_checked_before_dkim() -> None:
    raw = signed(notification(new_uuid(), sender="attacker@evil.example"))
    trusted, reason = judge(raw)
    assert not trusted and "attacker@evil.example" in reason


def test_dkim_poisoned_selector_is_a_verdict_through_the_real_resolver() -> None:
    raw = notification(new_uuid())
    raw = dkim.sign(raw, b"a" * 70, DOMAIN.encode(), KEY, include_headers=INCLUDE) + raw
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    verdict = assess(parsed, DKIM_ON, raw)  # no dnsfunc: trust.resolve_txt, dnspython refuses the name itself
    assert not verdict.trusted and "LabelTooLong" in verdict.reason


@pytest.mark.parametrize(
    ("error", "temporary"),
    [
        (dns.resolver.NXDOMAIN(), False),
        (dns.resolver.NoAnswer(), False),
        (dns.name.LabelTooLong(), False),
        (dns.name.EmptyLabel(), False),
        (UnicodeDecodeError("ascii", b"\xff", 0, 1, "no"), False),
        (dns.resolver.LifetimeTimeout(timeout=1.0, errors=[]), True),
        (dns.exception.Timeout(), True),
        (dns.resolver.NoNameservers(), True),  # SERVFAIL (or no answer) from every nameserver
        (dkim.DnsTimeoutError("timed out"), True),
        (OSError("network unreachable"), True),
    ],
)
def test_dkim_lookup_failures_are_verdicts_unless_temporary(error: Exception, temporary: bool) -> None:
    def lookup(name: bytes, timeout: float = 5) -> bytes | None:
        raise error

    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    if temporary:
        with pytest.raises(DkimUnavailable, match="failed for now"):
            assess(parsed, DKIM_ON, raw, dnsfunc=lookup)
    else:
        verdict = assess(parsed, DKIM_ON, raw, dnsfunc=lookup)
        assert not verdict.trusted and f"DKIM key lookup failed: {type(error).__name__}" in verdict.reason


# -- RFC 8601 tokens, word for word ---------------------------------------------------------------


def _parsed(value: str) -> tuple[str, list[tuple[str, str, dict[str, str]]]] | None:
    parsed = parse_authentication_results(value)
    if parsed is None:
        return None
    return parsed.authserv_id, [(r.method, r.result, r.props) for r in parsed.results]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mx;dkim=pass header.d=a.example", ("mx", [("dkim", "pass", {"header.d": "a.example"})])),
        ("mx; DKIM/1 = PASS Header.D = a.example", ("mx", [("dkim", "pass", {"header.d": "a.example"})])),
        ('mx; dkim="pass" header.d="a;b=c"', ("mx", [("dkim", "pass", {"header.d": "a;b=c"})])),
        ('mx; dkim=pass header.d="a\\"b"', ("mx", [("dkim", "pass", {"header.d": 'a"b'})])),
        (
            "mx; dkim=pass (nested (deep) comment) header.d=a.example",
            ("mx", [("dkim", "pass", {"header.d": "a.example"})]),
        ),
        ("mx; dkim=pass (escaped \\) paren) header.d=a.example", ("mx", [("dkim", "pass", {"header.d": "a.example"})])),
        ("mx; dkim=pass header.d=first header.d=second", ("mx", [("dkim", "pass", {"header.d": "first"})])),
        ("mx; dkim=pass = header.d=a x", ("mx", [("dkim", "pass", {"header.d": "a"})])),
        ("mx; dkim=pass header.d=", ("mx", [("dkim", "pass", {})])),
        ("mx; dkim pass; =x; dmarc=fail", ("mx", [("dmarc", "fail", {})])),
        ("mx 1 (version); none", ("mx", [])),
        ("mx(comment)x; none", ("mx", [])),
        ('"m x"; none', ("m x", [])),
        ('mx; reason="un', None),
        ("mx; dkim=pass (open", None),
        ("; dkim=pass", None),
        ("= x; dkim=pass", None),
        ("", None),
    ],
)
def test_authentication_results_tokens(value: str, expected: object) -> None:
    assert _parsed(value) == expected


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        (
            ["mx; dkim=fail header.d=a.example"],
            "Authentication-Results from mx: dkim=fail for a.example; need a pass for a.example",
        ),
        (["mx; dkim=fail"], "Authentication-Results from mx: dkim=fail; need a pass for a.example"),
        (
            ["mx; dmarc=fail header.from=A.example"],
            "Authentication-Results from mx: dmarc=fail for a.example; need a pass for a.example",
        ),
        (["mx; dmarc=none"], "Authentication-Results from mx: dmarc=none; need a pass for a.example"),
        # a subdomain's signature does not vouch for its parent
        (
            ["mx; dkim=pass header.i=x@Sub.A.example"],
            "Authentication-Results from mx: dkim=pass for sub.a.example; need a pass for a.example",
        ),
        (["mx; dkim=pass header.i=x@A.example"], "mx: dkim=pass for a.example"),
        (["mx; dkim=pass header.d=A.example; dmarc=fail"], "mx: dkim=pass for a.example"),
        (["mx; dmarc=pass header.from=a.example"], "mx: dmarc=pass for a.example"),
        (
            ["MX; dkim=neutral; dmarc=temperror"],
            "Authentication-Results from mx: dkim=neutral, dmarc=temperror; need a pass for a.example",
        ),
    ],
)
def test_authentication_results_reasons_word_for_word(headers: list[str], reason: str) -> None:
    assert check_authentication_results(headers, " MX ".lower().strip(), "a.example").reason == reason


# -- Postponements: a temporary DKIM failure puts a message off, a bounded number of passes ----------


def test_again_counts_to_the_limit_per_message_then_starts_afresh() -> None:
    p = Postponements(limit=3)
    assert [p.again(7), p.again(7), p.again(8), p.again(7)] == [True, True, True, False]
    assert [p.again(7), p.again(8), p.again(8)] == [True, True, False]  # 7 started afresh; 8 reached 3


def test_judge_puts_off_then_decides_naming_the_passes() -> None:
    calls = {"n": 0}

    def flaky(name: bytes, timeout: float = 5) -> bytes | None:
        calls["n"] += 1
        raise OSError("resolver unreachable")

    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    p = Postponements(limit=2)
    assert p.judge(5, parsed, DKIM_ON, raw, dnsfunc=flaky) is None
    verdict = p.judge(5, parsed, DKIM_ON, raw, dnsfunc=flaky)
    assert verdict is not None and not verdict.trusted
    assert verdict.reason.endswith("; still failing after 2 passes") and "OSError" in verdict.reason
    assert calls["n"] == 2
    assert p.judge(5, parsed, DKIM_ON, raw, dnsfunc=flaky) is None  # the count starts again after a verdict


def test_a_verdict_clears_the_count() -> None:
    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)

    def down(name: bytes, timeout: float = 5) -> bytes | None:
        raise OSError("resolver unreachable")

    p = Postponements(limit=2)
    assert p.judge(9, parsed, DKIM_ON, raw, dnsfunc=down) is None
    verdict = p.judge(9, parsed, DKIM_ON, raw, dnsfunc=dnsfunc)
    assert verdict is not None and verdict.trusted, verdict
    assert p.judge(9, parsed, DKIM_ON, raw, dnsfunc=down) is None  # one put-off again, not the verdict


def test_the_default_limit_is_dkim_attempts() -> None:
    p = Postponements()
    assert [p.again(1) for _ in range(DKIM_ATTEMPTS)] == [True] * (DKIM_ATTEMPTS - 1) + [False]


# -- every verdict whole: trusted or not, and the reason recorded for a human, word for word ------------


@pytest.mark.parametrize(
    ("sender", "reason"),
    [
        ("attacker@evil.example", "sender attacker@evil.example is not in mailbox.trust.allowed_senders"),
        (f"a@{DOMAIN}, attacker@evil.example", "From holds 2 mailboxes; exactly one is required"),
        ("", "no From address"),
        (
            f"notificaciones@{DOMAIN}@evil.example",
            f"From is not a valid address: 'notificaciones@{DOMAIN}@evil.example'",
        ),
    ],
)
def test_refused_senders_word_for_word(sender: str, reason: str) -> None:
    assert assess(note(sender), DEFAULT) == Verdict(False, reason)


def test_every_check_that_vouched_is_named_in_the_reason() -> None:
    raw = signed(notification(new_uuid(), extra=AR.format(f"mx.example.com; dkim=pass header.d={DOMAIN}")))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    both = TrustSettings(authserv_id="mx.example.com", verify_dkim=True)
    assert assess(parsed, both, raw, dnsfunc=dnsfunc) == Verdict(
        True,
        f"sender notificaciones@{DOMAIN} matches *@{DOMAIN}; mx.example.com: dkim=pass for {DOMAIN}; "
        f"DKIM signature d={DOMAIN} verified",
    )
    assert assess(parsed, DKIM_ON, None) == Verdict(False, "DKIM check needs the whole message and it was not fetched")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ([], "no Authentication-Results header from mx"),
        (
            ["mx; spf=pass smtp.mailfrom=a@a.example"],
            "Authentication-Results from mx: no dkim or dmarc result; need a pass for a.example",
        ),
        (
            ["mx; dkim=fail header.i=x@y@Sub.A.example"],
            "Authentication-Results from mx: dkim=fail for sub.a.example; need a pass for a.example",
        ),
    ],
)
def test_authentication_results_refusals_are_whole_verdicts(headers: list[str], reason: str) -> None:
    assert check_authentication_results(headers, "mx", "a.example") == Verdict(False, reason)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        # a comment may hold a parenthesis, escaped or nested; what is inside never counts
        ("mx; dkim=pass (\\)) header.d=a.example", ("mx", [("dkim", "pass", {"header.d": "a.example"})])),
        (
            "mx; dkim=pass (a \\) header.d=evil) header.d=a.example",
            ("mx", [("dkim", "pass", {"header.d": "a.example"})]),
        ),
        (
            "mx; dkim=pass (a (b) header.d=evil) header.d=a.example",
            ("mx", [("dkim", "pass", {"header.d": "a.example"})]),
        ),
        ("mx(); none", ("mx", [])),
        # an escape at the very end leaves the quoted string open; an empty quoted string is empty
        ('mx; dkim=pass header.d="a\\', None),
        ('mx; dkim=pass header.d="a\\"', None),
        ('mx; dkim=pass header.d=""', ("mx", [("dkim", "pass", {"header.d": ""})])),
        # a stray "=" never becomes a property name; the method is what comes before the version
        ("mx; dkim=pass = = x header.d=a", ("mx", [("dkim", "pass", {"header.d": "a"})])),
        ("mx; dkim/1/2 = pass", ("mx", [("dkim", "pass", {})])),
    ],
)
def test_authentication_results_comments_quotes_and_strays(value: str, expected: object) -> None:
    assert _parsed(value) == expected


@pytest.mark.parametrize(
    ("from_domain", "signer", "expected"),
    [
        ("A.Example.", "a.example", True),
        ("a.example", "a.example.", True),
        ("mail.a.example.", "A.EXAMPLE.", True),
        ("a.example.", "b.example", False),
        (".a.example", "a.example", True),
    ],
)
def test_alignment_ignores_case_and_the_root_dot(from_domain: str, signer: str, expected: bool) -> None:
    assert aligned(from_domain, signer) is expected


def _header_value(raw: bytes) -> bytes:
    return raw.split(b"\r\n\r\n", 1)[0]


def test_dkim_a_foreign_or_broken_signature_before_ours_does_not_hide_ours() -> None:
    raw = notification(new_uuid())
    ours = dkim.sign(raw, b"sel", DOMAIN.encode(), KEY, include_headers=INCLUDE)
    foreign = dkim.sign(raw, b"sel", b"evil.example", KEY, include_headers=INCLUDE)
    broken = b"DKIM-Signature: v=1; d=a; d=b\r\n"  # a tag twice: not a tag list
    for first in (foreign, broken):
        assert check_dkim(first + ours + raw, DOMAIN, dnsfunc) == Verdict(True, f"DKIM signature d={DOMAIN} verified")
    assert check_dkim(broken + foreign + raw, DOMAIN, dnsfunc) == Verdict(
        False, f"unparseable DKIM-Signature; DKIM d=evil.example does not align with {DOMAIN}"
    )


@pytest.mark.parametrize(
    ("signature", "reason"),
    [
        (b"DKIM-Signature: v=1; a=rsa-sha256; s=sel; h=from; bh=x; b=y\r\n", f"DKIM d=? does not align with {DOMAIN}"),
        (
            f"DKIM-Signature: v=1; a=rsa-sha256; d={DOMAIN}; s=sel; bh=x; b=y\r\n".encode(),
            f"DKIM d={DOMAIN} does not sign from, x-uuidcancelacion, x-statuscancelacion",
        ),
        (
            b"DKIM-Signature: v=1; d=\xc3\xb1.example; s=sel; h=from; bh=x; b=y\r\n",
            f"DKIM d=\ufffd\ufffd.example does not align with {DOMAIN}",
        ),
    ],
)
def test_dkim_signatures_that_cannot_vouch_say_why(signature: bytes, reason: str) -> None:
    assert check_dkim(signature + notification(new_uuid()), DOMAIN, dnsfunc) == Verdict(False, reason)


def test_dkim_header_list_without_spaces_is_read_field_by_field() -> None:
    raw = notification(new_uuid())
    sig = dkim.sign(raw, b"sel", DOMAIN.encode(), KEY, include_headers=INCLUDE)
    # The same fields listed "a:b:c" (dkimpy writes "a : b"): they are covered, so it comes down to the signature
    tight = re.sub(rb"(?<=[;\s])h=[^;]*;", b"h=from:x-uuidcancelacion:x-statuscancelacion;", sig, flags=re.S)
    assert tight != sig
    assert check_dkim(tight + raw, DOMAIN, dnsfunc) == Verdict(False, f"DKIM signature d={DOMAIN} does not verify")


def test_dkim_unreadable_message_is_untrusted() -> None:
    assert check_dkim(b"no colon line\r\n\r\nbody", DOMAIN) == Verdict(
        False, "DKIM: message unreadable (MessageFormatError)"
    )


def test_dkim_key_lookup_gets_the_name_and_dkimpys_timeout() -> None:
    asked: list[tuple[bytes, float]] = []

    def recording(name: bytes, timeout: float = -1) -> bytes | None:
        asked.append((name, timeout))
        return dnsfunc(name)

    raw = signed(notification(new_uuid()))
    assert check_dkim(raw, DOMAIN, recording).trusted
    assert asked == [(b"sel._domainkey." + DOMAIN.encode() + b".", 5)]


def test_a_verdict_on_a_message_never_put_off_and_a_limit_of_one() -> None:
    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    assert Postponements().judge(3, parsed, DKIM_ON, raw, dnsfunc=dnsfunc) == Verdict(
        True, f"sender notificaciones@{DOMAIN} matches *@{DOMAIN}; DKIM signature d={DOMAIN} verified"
    )
    assert Postponements(limit=1).again(3) is False  # judged at once, nothing kept


def test_a_put_off_is_logged_with_the_reason_and_the_final_verdict_is_whole(caplog: pytest.LogCaptureFixture) -> None:
    def down(name: bytes, timeout: float = 5) -> bytes | None:
        raise OSError("resolver unreachable")

    raw = signed(notification(new_uuid()))
    parsed = parse(raw)
    assert isinstance(parsed, Notification)
    p = Postponements(limit=2)
    with caplog.at_level(logging.WARNING, logger="reconciler.mailbox.trust"):
        assert p.judge(4, parsed, DKIM_ON, raw, dnsfunc=down) is None
    lookup = f"DKIM key lookup for d={DOMAIN} failed for now: OSError for 'sel._domainkey.{DOMAIN}.'"
    assert [r.getMessage() for r in caplog.records if r.name == "reconciler.mailbox.trust"] == [
        f"notification uid 4 put off to the next pass: {lookup}"
    ]
    assert p.judge(4, parsed, DKIM_ON, raw, dnsfunc=down) == Verdict(False, f"{lookup}; still failing after 2 passes")


# -- resolve_txt against a DNS server on loopback -------------------------------------------------


class _LoopbackDns:
    """Answers TXT queries for ``records`` (a name's TXT strings) over UDP on 127.0.0.1; anything else: no answer."""

    def __init__(self, records: dict[str, list[bytes]]) -> None:
        self.records = records
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            query = dns.message.from_wire(data)
            reply = dns.message.make_response(query)
            question = query.question[0]
            strings = self.records.get(question.name.to_text())
            if strings is not None and question.rdtype == dns.rdatatype.TXT:
                reply.answer.append(
                    dns.rrset.from_rdata(
                        question.name, 60, dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings)
                    )
                )
            self.sock.sendto(reply.to_wire(), peer)

    def close(self) -> None:
        self.sock.close()


def test_resolve_txt_joins_the_strings_of_the_record_and_finds_none_where_there_is_none(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = _LoopbackDns({f"sel._domainkey.{DOMAIN}.": [b"v=DKIM1; k=rsa; ", b"p=" + PUBLIC[:20]]})
    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers, resolver.port = ["127.0.0.1"], server.port
    monkeypatch.setattr(dns.resolver, "default_resolver", resolver)
    try:
        assert resolve_txt(f"sel._domainkey.{DOMAIN}.".encode()) == b"v=DKIM1; k=rsa; p=" + PUBLIC[:20]
        assert resolve_txt(b"other._domainkey.example.com.") is None  # NOERROR without a record: no key
    finally:
        server.close()

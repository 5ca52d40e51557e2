"""The acuse parser: which bytes are evidence that a UUID's cancellation was accepted.  Pure."""

from __future__ import annotations

import ast
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reconciler.provider import acuse
from reconciler.provider.acuse import Kind, check
from reconciler.sandbox.acuses import SHAPES, AcuseControl, render

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
OTHER = "5B4B180D-5B6C-4392-B204-252215A1AB84"
WHEN = datetime(2024, 5, 5, 12, 34, 56, tzinfo=UTC)

# The SAT's own shape, as public clients show it (SAT.md).
REAL = f"""<?xml version="1.0" encoding="utf-8"?>
<Acuse xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
       Fecha="2024-05-05T12:34:56.789" RfcEmisor="EKU9003173C9">
  <Folios xmlns="http://cancelacfd.sat.gob.mx">
    <UUID>{U}</UUID>
    <EstatusUUID>201</EstatusUUID>
  </Folios>
  <Signature Id="SelloSAT" xmlns="http://www.w3.org/2000/09/xmldsig#">...</Signature>
</Acuse>""".encode()


def folio(uuid: str, code: str) -> str:
    return f'<s:Folios xmlns:s="http://cancelacfd.sat.gob.mx"><s:UUID>{uuid}</s:UUID><s:EstatusUUID>{code}</s:EstatusUUID></s:Folios>'


def doc(*folios: str, root: str = "Acuse") -> bytes:
    return f"<{root}>{''.join(folios)}</{root}>".encode()


def test_the_sats_own_acuse_is_an_acceptance() -> None:
    v = check(REAL, U)
    assert (v.kind, v.estatus, v.accepted, v.refused) == (Kind.ACCEPTED, 201, True, False)
    assert "received" in v.meaning


@pytest.mark.parametrize("shape", ["real", "namespaced", "wrapped", "result"])
@pytest.mark.parametrize("estatus", [201, 202])
def test_every_acuse_shape_a_provider_forwards_is_read(shape: str, estatus: int) -> None:
    data = render(AcuseControl(shape, estatus), U, "EKU9003173C9", WHEN)  # type: ignore[arg-type]
    assert check(data, U).kind is Kind.ACCEPTED
    assert check(data, U).estatus == estatus


@pytest.mark.parametrize("code", [203, 204, 205, 206, 207, 208, 209, 210, 211, 212, 300, 301, 305, 310, 999, 0])
def test_any_other_estatus_is_the_sats_refusal_with_its_meaning(code: int) -> None:
    v = check(REAL.replace(b">201<", f">{code}<".encode()), U)
    assert (v.kind, v.estatus) == (Kind.REFUSED, code)
    assert str(code) in v.reason and v.meaning in v.reason
    if code == 205:
        assert v.meaning == "the UUID does not exist at the SAT"
    if code == 999:
        assert v.meaning == "unknown SAT code 999"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no acuse"),
        (b"", "the acuse is empty"),
        (b"  \n\t", "the acuse is empty"),
        (b"null", "the acuse is not XML"),
        (b"\x8b\xffPK\x03\x04 garbage", "the acuse is not XML"),
        (b"<html><body>Please log in</body></html>", "not an acuse: root element 'html'"),
        (b"<Acuse><Folios><UUID>" + U.encode() + b"</UUID>", "the acuse is not XML"),
        (b'<Acuse Fecha="x"/>', "the acuse has no Folios"),
        (b'<Acuse CodEstatus="305"/>', "the acuse has no Folios (CodEstatus '305')"),
        (doc(folio(OTHER, "201")), f"the acuse names another UUID: {OTHER!r}"),
        (doc(folio(U, "201"), folio(U, "205")), "conflicting folios for this UUID: EstatusUUID '201', '205'"),
        (doc(folio(U, "")), "EstatusUUID is not a number: ''"),
        (doc(folio(U, "2O1")), "EstatusUUID is not a number: '2O1'"),
        (doc(folio(U, "２０１")), "EstatusUUID is not a number"),  # fullwidth digits are digits to Python
        (doc(folio(U, "201201")), "EstatusUUID is not a number"),
        (doc("<Folios><UUID>" + U + "</UUID></Folios>"), "1 UUID and 0 EstatusUUID"),
        (doc("<Folios><UUID><b>" + U + "</b></UUID><EstatusUUID>201</EstatusUUID></Folios>"), "holds elements"),
        (doc("<Folios><UUID/><EstatusUUID>201</EstatusUUID></Folios>"), "names another UUID: ''"),
        (doc(folio(U, "201"), root="CancelaCFDResponse"), "not an acuse: root element 'CancelaCFDResponse'"),
        (b"<CancelaCFDResult><Acuse/><Acuse/></CancelaCFDResult>", "not an acuse"),
        (b"<!DOCTYPE Acuse><Acuse>" + folio(U, "201").encode() + b"</Acuse>", "the acuse declares a DTD"),
        (
            b'<!DOCTYPE a [<!ENTITY u "' + U.encode() + b'">]><Acuse><Folios><UUID>&u;</UUID>'
            b"<EstatusUUID>201</EstatusUUID></Folios></Acuse>",
            "the acuse declares a DTD",
        ),
        (b'<!DOCTYPE a SYSTEM "http://127.0.0.1:9/x.dtd"><Acuse/>', "the acuse declares a DTD"),
        (b"<Acuse>&u;</Acuse>", "the acuse is not XML"),
    ],
)
def test_what_is_not_evidence_says_why(data: bytes | None, reason: str) -> None:
    v = check(data, U)
    assert (v.kind, v.estatus, v.accepted, v.refused) == (Kind.UNUSABLE, None, False, False)
    assert reason in v.reason
    assert "\n" not in v.reason and "\r" not in v.reason


def test_billion_laughs_is_refused_without_expanding() -> None:
    lol = b'<!DOCTYPE l [<!ENTITY a "' + b"x" * 1000 + b'">'
    lol += b"".join(b'<!ENTITY %c "%s">' % (ord("b") + i, (b"&%c;" % (ord("a") + i)) * 10) for i in range(8))
    lol += b"]><Acuse>&i;</Acuse>"
    v = check(lol, U)  # libxml2 stops it (amplification limit) or we do (the DTD): either way, quickly
    assert v.kind is Kind.UNUSABLE and ("DTD" in v.reason or "amplification" in v.reason)


def test_uuids_compare_ascii_case_insensitively_and_only_ascii() -> None:
    assert check(REAL, U.lower()).accepted
    assert check(REAL.replace(U.encode(), U.lower().encode()), U).accepted
    assert check(REAL.replace(U.encode(), b"  " + U.encode() + b"\n "), U).accepted
    # U+FB00 folds to "FF" under .upper(): a look-alike is another UUID, never this one.
    ff = "71452784-AFC7-4BE5-8623-3BA1436D57ﬀ"
    assert (
        check(
            doc(folio(ff, "201")).replace(b"<Acuse>", b"<?xml version='1.0' encoding='utf-8'?><Acuse>"), U[:-2] + "FF"
        ).kind
        is Kind.UNUSABLE
    )
    assert not check(doc(folio(U, "201")), ff).accepted


def test_folios_for_other_uuids_beside_this_one_are_ignored() -> None:
    assert check(doc(folio(OTHER, "205"), folio(U, "201")), U).accepted
    assert check(doc(folio(U, "201"), folio(U, "201")), U).accepted  # the same folio twice agrees
    assert check(doc(folio(OTHER, "201"), folio(U, "205")), U).estatus == 205


def test_prefixes_comments_and_encodings_do_not_matter() -> None:
    latin = '<?xml version="1.0" encoding="ISO-8859-1"?><a:Acuse xmlns:a="urn:x" Rfc="Ñ"><!-- c -->'
    latin += folio(U, "202") + "</a:Acuse>"
    assert check(latin.encode("latin-1"), U).estatus == 202
    assert check(b"\xef\xbb\xbf" + REAL, U).accepted  # a UTF-8 BOM
    assert check(REAL.decode().encode("utf-16"), U).accepted


def test_a_huge_acuse_is_not_read() -> None:
    big = REAL.replace(b"...", b"A" * acuse.MAX_BYTES)
    assert "more than" in check(big, U).reason


def test_sha256_is_the_hex_digest_of_the_bytes() -> None:
    assert acuse.sha256(b"") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=2000), st.sampled_from([U, U.lower(), "", "x"]))
def test_never_raises_on_arbitrary_bytes(data: bytes, uuid: str) -> None:
    v = check(data, uuid)
    assert v.kind in Kind and isinstance(v.reason, str) and "\n" not in v.reason
    assert not v.accepted  # random bytes are never evidence


_TAGS = st.sampled_from(["Acuse", "Folios", "UUID", "EstatusUUID", "CancelaCFDResult", "s:Folios", "x", "!--"])
_TEXT = st.sampled_from([U, U.lower(), OTHER, "201", "202", "205", "", " ", "&amp;", "&x;", "<", "]]>", "ñ"])


@st.composite
def xmlish(draw: st.DrawFn) -> str:
    """Random nestings of the acuse's own element names and texts, well-formed or not."""
    parts = []
    for _ in range(draw(st.integers(0, 12))):
        tag = draw(_TAGS)
        parts.append(draw(st.sampled_from([f"<{tag}>", f"</{tag}>", f"<{tag}/>", draw(_TEXT)])))
    head = draw(st.sampled_from(["", '<?xml version="1.0"?>', "<!DOCTYPE a>", '<?xml version="1.0" encoding="x"?>']))
    return head + "".join(parts)


@settings(max_examples=500, deadline=None)
@given(xmlish(), st.sampled_from(["utf-8", "utf-16", "latin-1"]))
def test_never_raises_on_xml_ish_text(text: str, encoding: str) -> None:
    v = check(text.encode(encoding, "replace"), U)
    assert v.kind in Kind and "\n" not in v.reason
    if v.accepted:
        assert U in text.upper() and v.estatus in (201, 202)


def test_sandbox_shapes_cover_each_bad_case() -> None:
    bad = {s: check(render(AcuseControl(s), U, "EKU9003173C9", WHEN), U) for s in SHAPES}  # type: ignore[arg-type]
    assert {s for s, v in bad.items() if v.accepted} == {"real", "namespaced", "wrapped", "result"}
    assert check(render(AcuseControl(names=OTHER), U, "R", WHEN), U).kind is Kind.UNUSABLE
    with pytest.raises(ValueError, match="unknown 'nope'"):
        AcuseControl("nope")  # type: ignore[arg-type]


def test_module_is_pure() -> None:
    tree = ast.parse(Path(acuse.__file__).read_text())
    imported = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert imported <= {"__future__", "dataclasses", "enum", "hashlib", "lxml", "reconciler"}


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (None, "no acuse"),
        (b" \r\n", "the acuse is empty"),
        (b"<html><body/></html>", "not an acuse: root element 'html'"),
        (b'<Acuse Fecha="x"/>', "the acuse has no Folios"),
        (doc(folio("x" * 70, "201")), f"the acuse names another UUID: '{'x' * 60}...'"),
        (doc(folio("y" * 60, "201")), f"the acuse names another UUID: '{'y' * 60}'"),
        (b"<!DOCTYPE Acuse><Acuse>" + folio(U, "201").encode() + b"</Acuse>", "the acuse declares a DTD"),
        (
            doc("<Folios><UUID><b>" + U + "</b></UUID><EstatusUUID>201</EstatusUUID></Folios>"),
            "a Folios' UUID or EstatusUUID holds elements, not text",
        ),
        (doc(folio(U, "20100")), "EstatusUUID is not a number: '20100'"),
    ],
)
def test_what_is_not_evidence_word_for_word(data: bytes | None, reason: str) -> None:
    assert check(data, U) == acuse.Verdict(Kind.UNUSABLE, reason)


def test_an_acuse_of_exactly_the_limit_is_read() -> None:
    padded = REAL + b" " * (acuse.MAX_BYTES - len(REAL))
    assert len(padded) == acuse.MAX_BYTES and check(padded, U).accepted
    assert check(padded + b" ", U).reason == f"the acuse is {acuse.MAX_BYTES + 1} bytes, more than {acuse.MAX_BYTES}"


def test_a_verdict_as_recorded_in_an_event() -> None:
    assert check(REAL, U).as_dict() == {
        "verdict": "accepted",
        "reason": check(REAL, U).reason,
        "estatus_uuid": 201,
        "meaning": "the SAT received the cancellation request",
    }
    assert check(None, U).as_dict() == {
        "verdict": "unusable",
        "reason": "no acuse",
        "estatus_uuid": None,
        "meaning": "",
    }


def test_an_estatus_of_four_digits_is_the_sats_word_and_an_acceptance_names_it() -> None:
    assert check(doc(folio(U, "2010")), U) == acuse.Verdict(
        Kind.REFUSED, "the SAT refused: EstatusUUID 2010: unknown SAT code 2010", 2010, "unknown SAT code 2010"
    )
    assert check(REAL, U) == acuse.Verdict(
        Kind.ACCEPTED,
        "EstatusUUID 201: the SAT received the cancellation request",
        201,
        "the SAT received the cancellation request",
    )

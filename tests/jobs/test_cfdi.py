"""CFDI 3.3 and 4.0 files read into jobs: any prefix, Addenda, BOM; a bad file named with what is wrong.  Pure."""

from __future__ import annotations

import pytest

from reconciler.errors import ValidationError
from reconciler.jobs.cfdi import cfdi_job, parse_cfdi
from reconciler.sandbox.cfdis import render, sello_for

U = "71452784-AFC7-4BE5-8623-3BA1436D573B"
FOLIO = "5B4B180D-5B6C-4392-B204-252215A1AB84"


@pytest.mark.parametrize("version", ["3.3", "4.0"])
@pytest.mark.parametrize("prefix", ["cfdi", "", "c"])
@pytest.mark.parametrize(("addenda", "bom"), [(False, False), (True, True)])
def test_real_shaped_cfdis_are_read(version: str, prefix: str, addenda: bool, bom: bool) -> None:
    data = render(
        U.lower(), "EKU9003173C9", "xaxx010101000", "1160.50", version=version, prefix=prefix, addenda=addenda, bom=bom
    )
    cfdi = parse_cfdi(data, "f.xml")
    assert (cfdi.version, cfdi.uuid, cfdi.total, cfdi.sello) == (version, U.lower(), "1160.50", sello_for(U.lower()))
    spec = cfdi_job(data, "f.xml")
    assert (spec.uuid, spec.rfc_emisor, spec.rfc_receptor, spec.total, spec.sello, spec.motivo) == (
        U,
        "EKU9003173C9",
        "XAXX010101000",
        "1160.50",
        sello_for(U.lower())[-8:],
        "02",
    )


def test_motivo_and_folio_apply_and_an_ampersand_rfc_survives() -> None:
    spec = cfdi_job(render(U, "&ÑO0101013A1", "A&B010101AB1"), "f.xml", "01", FOLIO)
    assert (spec.motivo, spec.folio_sustitucion, spec.rfc_emisor, spec.rfc_receptor) == (
        "01",
        FOLIO,
        "&ÑO0101013A1",
        "A&B010101AB1",
    )


def _without(data: bytes, needle: bytes) -> bytes:
    assert needle in data
    return data.replace(needle, b"", 1)


GOOD = render(U)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty file"),
        (GOOD[:200], "not well-formed XML"),
        (b"<html><body>hi</body></html>", "not a CFDI 3.3 or 4.0: root element 'html'"),
        (GOOD.replace(b"cfd/4", b"cfd/2"), "not a CFDI 3.3 or 4.0"),
        (b'<!DOCTYPE x [<!ENTITY e "A">]>' + GOOD.split(b"\n", 1)[1], "declares a DTD"),
        (_without(GOOD, b'UUID="' + U.encode() + b'" '), "TimbreFiscalDigital has no UUID"),
        (GOOD.replace(b"TimbreFiscalDigital xmlns:tfd", b"Otro xmlns:tfd"), "no TimbreFiscalDigital (not stamped)"),
        (GOOD.replace(b'Total="1160.00"', b'Total="1,160.00"'), "total:"),
        (GOOD.replace(b'Total="1160.00" ', b""), "Comprobante has no Total"),
        (GOOD.replace(b'Rfc="XAXX010101000"', b'Rfc="NOPE"'), "rfc_receptor:"),
        (GOOD.replace(b"<cfdi:Emisor ", b"<cfdi:Otro "), "0 Emisor elements"),
        (GOOD.replace(b'UUID="' + U.encode(), b'UUID="not-a-uuid'), "uuid: not a UUID"),
    ],
)
def test_a_bad_file_is_named_with_what_is_wrong(data: bytes, message: str) -> None:
    with pytest.raises(ValidationError) as e:
        cfdi_job(data, "/srv/cfdi/x.xml")
    assert str(e.value).startswith("/srv/cfdi/x.xml: ") and message in str(e.value)

"""The CSD checks before anything is signed: each failure one line naming the issuer and what is wrong."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from reconciler.errors import ConfigError
from reconciler.provider import certificate
from reconciler.sandbox import certs

from ..csd_material import OTHER_RFC, RFC, material

NOW = datetime.now(UTC)


def test_a_sat_shaped_csd_passes_and_keeps_no_password() -> None:
    m = material()
    checked = certificate.check(RFC, m.csd.cer, m.csd.key, m.csd.password, NOW)
    assert checked.rfc == RFC
    assert checked.number.isdigit() and len(checked.number) == 20  # the SAT's certificate number
    assert m.csd.password not in repr(checked)
    assert set(certificate.Checked.__slots__) == {"rfc", "certificate", "key"}  # the password is used once, not kept
    assert certificate.subject_rfc(checked.certificate) == RFC


def plain_key() -> bytes:
    return material().csd.private_key.private_bytes(
        serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def pem_cer() -> bytes:
    return material().csd.cert_pem


CASES = {
    "fiel": (lambda m: (m.fiel.cer, m.fiel.key, m.fiel.password), "a FIEL (e.firma) certificate, not a CSD"),
    "expired": (lambda m: (m.expired.cer, m.expired.key, m.expired.password), "expired on"),
    "other rfc": (lambda m: (m.other.cer, m.other.key, m.other.password), f"belongs to RFC {OTHER_RFC}, not {RFC}"),
    "not a pair": (lambda m: (m.csd.cer, m.other.key, m.other.password), "not a pair"),
    "wrong password": (lambda m: (m.csd.cer, m.csd.key, "not-the-password"), "cannot decrypt: wrong csd_password"),
    "unencrypted key": (lambda m: (m.csd.cer, plain_key(), m.csd.password), "the key is not encrypted"),
    "pem certificate": (lambda m: (pem_cer(), m.csd.key, m.csd.password), "the file is PEM"),
    "garbage certificate": (lambda m: (b"\x30\x03abc", m.csd.key, m.csd.password), "not a DER X.509 certificate"),
    "garbage key": (lambda m: (m.csd.cer, b"not a key", m.csd.password), "cannot decrypt"),
}


@pytest.mark.parametrize("case", CASES)
def test_each_bad_credential_is_one_line_naming_the_issuer(case: str) -> None:
    files, expected = CASES[case]
    cer, key, password = files(material())
    with pytest.raises(ConfigError) as raised:
        certificate.check(RFC, cer, key, password, NOW)
    message = str(raised.value)
    assert message.startswith(f"issuers[{RFC}]"), message
    assert expected in message
    assert "\n" not in message
    assert password not in message


def test_a_certificate_not_yet_valid_is_refused() -> None:
    m = material()
    with pytest.raises(ConfigError, match="not valid before"):
        certificate.check(RFC, m.csd.cer, m.csd.key, m.csd.password, NOW - timedelta(days=400))


def test_a_company_subject_names_the_company_first() -> None:
    ca = material().ca
    files = certs.issue(ca, RFC, subject_rfc=f"{RFC}")
    assert certificate.subject_rfc(files.certificate) == RFC  # "AAA010101AAA / VADA800927DJ3"


def test_the_sat_certificate_number_is_read_from_the_serial() -> None:
    serial = certs.sat_serial("30001000000500003416")
    assert serial == int.from_bytes(b"30001000000500003416", "big")


def test_a_local_issuer_without_its_files_is_one_line(tmp_path: Path) -> None:
    from reconciler.config import Settings
    from reconciler.provider.local import Signers

    m = material()
    cer, _key, password = m.csd.write(tmp_path)
    settings = Settings(
        ledger={"path": tmp_path / "l.sqlite3"},
        issuers=[
            {"rfc": RFC, "signing": "local"},
            {
                "rfc": OTHER_RFC,
                "signing": "local",
                "csd_cer": cer,
                "csd_key": tmp_path / "missing.key",
                "csd_password_file": password,
            },
        ],
    )
    signers = Signers.load(settings, NOW, log=False)
    assert signers.ready == {}
    assert signers.failed == {
        RFC: f'issuers[{RFC}]: signing = "local" needs csd_cer and csd_key (the SAT .cer and .key)',
        OTHER_RFC: f"issuers[{OTHER_RFC}].csd_key: cannot read {tmp_path / 'missing.key'}: No such file or directory",
    }


def test_a_csd_near_its_end_is_a_warning_at_start(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from reconciler.config import Settings
    from reconciler.provider.local import Signers

    ending = certs.issue(material().ca, RFC, now=NOW - timedelta(days=4 * 365 - 10))  # ten days left
    cer, key, password = ending.write(tmp_path)
    issuer = {"rfc": RFC, "signing": "local", "csd_cer": cer, "csd_key": key, "csd_password_file": password}
    settings = Settings(ledger={"path": tmp_path / "l.sqlite3"}, issuers=[issuer])
    with caplog.at_level("INFO", logger="reconciler.provider.local"):
        signers = Signers.load(settings, NOW)
    assert list(signers.ready) == [RFC]
    (record,) = caplog.records
    assert record.levelname == "WARNING" and "days left, renew it at the SAT" in record.getMessage()

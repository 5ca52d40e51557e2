"""Our signatures are exactly Standard Webhooks': the official package verifies them unchanged."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reconciler.events.signature import SecretFormatError, headers, key_of, sign

SECRET_A = "whsec_" + base64.b64encode(b"a" * 24).decode()
SECRET_B = "whsec_" + base64.b64encode(b"rotated-key-0123456789").decode()


def test_every_secret_of_a_rotation_verifies_with_the_official_package() -> None:
    body = b'{"type":"job.ok","data":{"uuid":"X"}}'
    hdrs = headers([key_of(SECRET_A), key_of(SECRET_B)], "evt_1", int(time.time()), body)
    for secret in (SECRET_A, SECRET_B):
        assert Webhook(secret).verify(body, hdrs) == {"type": "job.ok", "data": {"uuid": "X"}}
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(body.replace(b"X", b"Y"), hdrs)
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET_A).verify(body, {**hdrs, "webhook-id": "evt_2"})
    other = "whsec_" + base64.b64encode(b"b" * 24).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(other).verify(body, hdrs)


@pytest.mark.parametrize("bad", ["", "secret", "whsec_", "whsec_!!!!", "whsec_" + base64.b64encode(b"short").decode()])
def test_a_bad_secret_is_refused_without_echoing_it(bad: str) -> None:
    with pytest.raises(SecretFormatError) as e:
        key_of(bad)
    assert bad[6:] not in str(e.value) or not bad[6:]


def test_unpadded_base64_is_accepted_like_the_reference_verifier() -> None:
    assert key_of(SECRET_B.rstrip("=")) == b"rotated-key-0123456789"


@pytest.mark.parametrize(
    ("bad", "reason"),
    [
        ("", "expected a secret starting with whsec_"),
        ("WHSEC_" + base64.b64encode(b"a" * 24).decode(), "expected a secret starting with whsec_"),
        ("whsec_!!!!", "the part after whsec_ is not base64"),
        ("whsec_YWFh YWFh", "the part after whsec_ is not base64"),
        ("whsec_", "the key is shorter than 16 bytes"),
        ("whsec_" + base64.b64encode(b"k" * 15).decode(), "the key is shorter than 16 bytes"),
    ],
)
def test_a_bad_secret_says_what_is_wrong(bad: str, reason: str) -> None:
    with pytest.raises(SecretFormatError) as e:
        key_of(bad)
    assert str(e.value) == reason


@pytest.mark.parametrize("size", [16, 17, 18, 19, 32])
def test_keys_of_16_bytes_and_more_are_read_padded_or_not(size: int) -> None:
    key = bytes(range(size))
    padded = base64.b64encode(key).decode()
    assert key_of(f"  whsec_{padded}\n") == key
    assert key_of("whsec_" + padded.rstrip("=")) == key


def test_the_four_headers_a_delivery_carries() -> None:
    key = key_of(SECRET_A)
    body = b'{"id":"evt_1"}'
    assert headers([key], "evt_1", 1764763200, body) == {
        "webhook-id": "evt_1",
        "webhook-timestamp": "1764763200",
        "webhook-signature": sign([key], "evt_1", 1764763200, body),
        "content-type": "application/json",
    }

"""Our signatures are exactly Standard Webhooks': the official package verifies them unchanged."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from reconciler.events.signature import SecretFormatError, headers, key_of

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

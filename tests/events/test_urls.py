"""Webhook URLs: https, or plain http to a loopback receiver only, no credentials; shown without the query."""

from __future__ import annotations

import pytest

from reconciler.events.urls import check_url, display_url

HTTPS = "expected an https:// URL"
PLAIN = "plain http is only allowed to a loopback receiver; use https"
CREDENTIALS = "credentials do not belong in the URL; the payload is signed with the secret"


@pytest.mark.parametrize(
    "url",
    [
        "https://erp.example.com/hook",
        "https://erp.example.com",
        "http://127.0.0.1:8080/hook",
        "http://127.8.9.10/hook",  # all of 127/8 is loopback
        "http://localhost/hook",
        "http://LOCALHOST:9/hook",
        "http://localhost.localdomain/hook",
        "http://[::1]:9/x",
        "HTTPS://erp.example.com/hook",
    ],
)
def test_accepted_urls_come_back_unchanged(url: str) -> None:
    assert check_url(url) == url


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://erp.example.com/hook", PLAIN),
        ("http://10.0.0.1/hook", PLAIN),
        ("http://localhost.evil.example/hook", PLAIN),
        ("http://[::2]/hook", PLAIN),
        ("https://user:pw@erp.example.com/hook", CREDENTIALS),
        ("https://user@erp.example.com/hook", CREDENTIALS),
        ("https://:pw@erp.example.com/hook", CREDENTIALS),
        ("http://user:pw@127.0.0.1/hook", CREDENTIALS),
        ("ftp://erp.example.com/", HTTPS),
        ("erp.example.com/hook", HTTPS),
        ("https:///hook", HTTPS),
        ("", HTTPS),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    with pytest.raises(ValueError) as caught:
        check_url(url)
    assert str(caught.value) == reason


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("https://erp.example.com:8443/h?token=s3cr3t", "https://erp.example.com:8443/h"),
        ("https://erp.example.com/h/i#frag", "https://erp.example.com/h/i"),
        ("http://127.0.0.1:9/", "http://127.0.0.1:9/"),
        ("https://ERP.example.com", "https://erp.example.com"),
    ],
)
def test_display_url_drops_the_query(url: str, shown: str) -> None:
    assert display_url(url) == shown

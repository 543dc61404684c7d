from __future__ import annotations

import json

import pytest

from security.client_ip import parse_ip, resolve_client_ip


@pytest.mark.parametrize(
    ("remote", "xff", "hops", "expected", "anomaly"),
    [
        ("203.0.113.5", None, 0, "203.0.113.5", False),  # direct
        ("203.0.113.5", "6.6.6.6", 0, "203.0.113.5", False),  # header ignored without proxies
        ("10.0.0.2", "198.51.100.7", 1, "198.51.100.7", False),  # ALB
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", 1, "198.51.100.7", False),  # spoofed first entry
        ("10.0.0.2", "6.6.6.6, 198.51.100.7, 130.176.0.1", 2, "198.51.100.7", False),  # CloudFront + ALB
        ("10.0.0.2", "198.51.100.7:51234", 1, "198.51.100.7", False),  # port
        ("10.0.0.2", "[2001:db8::1]:443", 1, "2001:db8::1", False),  # IPv6 with port
        ("10.0.0.2", "::ffff:198.51.100.7", 1, "198.51.100.7", False),  # IPv4-mapped
        ("10.0.0.2", "not-an-ip", 1, "10.0.0.2", True),  # garbage: the peer, flagged
        ("10.0.0.2", "", 1, "10.0.0.2", True),  # missing behind a proxy
        ("10.0.0.2", "198.51.100.7", 2, "10.0.0.2", True),  # fewer entries than proxies
        ("6.6.6.6, 198.51.100.7", None, 0, "198.51.100.7", False),  # Mangum's whole-header peer
    ],
)
def test_it_resolves_the_client_ip(remote, xff, hops, expected, anomaly):
    result = resolve_client_ip(remote, xff, hops)
    assert (result.ip, result.anomaly) == (expected, anomaly)


def test_parse_ip_rejects_garbage():
    assert parse_ip("999.1.1.1") is None
    assert parse_ip("[::1") is None
    assert str(parse_ip(" 198.51.100.7 ")) == "198.51.100.7"


@pytest.mark.django_db
def test_the_middleware_overwrites_remote_addr(client, settings):
    from sites.models import Site

    site = Site.objects.create(domain="example.com")
    settings.TRUSTED_PROXY_HOPS = 1
    ua = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0 Safari/537.36"
    body = json.dumps({"n": "pageview", "u": "https://example.com/", "sid": site.public_id})
    first = client.post("/api/event", body, content_type="text/plain", HTTP_USER_AGENT=ua,
                        REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="1.1.1.1, 198.51.100.7")  # fmt: skip
    second = client.post("/api/event", body, content_type="text/plain", HTTP_USER_AGENT=ua,
                         REMOTE_ADDR="10.0.0.3", HTTP_X_FORWARDED_FOR="2.2.2.2, 198.51.100.7")  # fmt: skip
    assert first.status_code == second.status_code == 202
    from collector.models import Event

    # Same real client behind different ALB nodes and forged prefixes: one visitor.
    assert len(set(Event.objects.values_list("visitor_id", flat=True))) == 1

"""HTTPS behind the load balancer: HSTS on HTTPS answers, the proxy's protocol header trusted only
when a proxy is declared, redirects that spare the health probes, and a Content-Security-Policy."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION = {"DEBUG": "0", "SECRET_KEY": "x" * 50, "REDIS_URL": "redis://127.0.0.1:6379/0", "ALLOWED_HOSTS": "a.test"}
NAMES = ("SECURE_PROXY_SSL_HEADER", "SECURE_HSTS_SECONDS", "SECURE_SSL_REDIRECT", "CONTENT_SECURITY_POLICY")


def settings_with(**env: str) -> dict[str, object]:
    """The HTTPS settings fathom/settings.py computes for this environment (a fresh interpreter)."""
    ignored = {"SECRET_KEY", "DEBUG", "REDIS_URL", "ALLOW_LOCMEM_CACHE", "TRUSTED_PROXY_HOPS", *NAMES}
    clean = {k: v for k, v in os.environ.items() if k not in ignored}
    code = f"import json, fathom.settings as s; print(json.dumps({{n: getattr(s, n, None) for n in {NAMES!r}}}))"
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={**clean, **env}, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_behind_a_load_balancer_production_trusts_its_protocol_header_and_sends_hsts_for_a_year():
    found = settings_with(**PRODUCTION, TRUSTED_PROXY_HOPS="1")
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_X_FORWARDED_PROTO", "https"]
    assert found["SECURE_HSTS_SECONDS"] == 31_536_000
    assert "frame-ancestors 'none'" in found["CONTENT_SECURITY_POLICY"]


def test_without_a_proxy_no_client_header_can_claim_https():
    found = settings_with(**PRODUCTION, TRUSTED_PROXY_HOPS="0")
    assert found["SECURE_PROXY_SSL_HEADER"] is None


def test_cloudfront_in_front_of_the_balancer_can_name_its_own_header():
    found = settings_with(**PRODUCTION, TRUSTED_PROXY_HOPS="2", SECURE_PROXY_SSL_HEADER="CloudFront-Forwarded-Proto")
    assert found["SECURE_PROXY_SSL_HEADER"] == ["HTTP_CLOUDFRONT_FORWARDED_PROTO", "https"]


def test_local_development_sends_no_hsts():
    assert settings_with(DEBUG="1")["SECURE_HSTS_SECONDS"] == 0


@pytest.fixture
def behind_alb(settings):
    """What production behind an ALB computes (see the first test), with redirects turned on."""
    settings.TRUSTED_PROXY_HOPS = 1
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31_536_000
    settings.SECURE_SSL_REDIRECT = True
    return settings


@pytest.mark.django_db
def test_an_https_page_gets_hsts_and_a_content_security_policy(client, behind_alb):
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="https", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 200
    assert response["Strict-Transport-Security"] == "max-age=31536000"
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "'unsafe-inline'" not in policy


@pytest.mark.django_db
def test_plain_http_is_redirected_to_https_without_hsts(client, behind_alb):
    response = client.get("/accounts/login/", HTTP_X_FORWARDED_PROTO="http", HTTP_X_FORWARDED_FOR="198.51.100.4")
    assert response.status_code == 301
    assert response["Location"] == "https://testserver/accounts/login/"
    assert "Strict-Transport-Security" not in response


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_health_probes_answer_on_plain_http_with_redirects_on(client, behind_alb, path):
    # The load balancer checks its targets directly: no X-Forwarded-Proto, no X-Forwarded-For.
    response = client.get(path)
    assert response.status_code == 200
    assert response.json()["status"] == "ok"


def test_an_empty_policy_setting_sends_no_header(client, settings):
    settings.CONTENT_SECURITY_POLICY = ""
    assert "Content-Security-Policy" not in client.get("/healthz")

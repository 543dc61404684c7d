"""Rate limits on real Redis: collector per IP and per (IP, site), login per IP and username."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from collector.models import Event
from testing import CHROME_UA, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_cache", "frozen_clock")]


def pageview(site):
    return {"n": "pageview", "u": "https://example.com/", "sid": site.public_id}


def test_the_collector_limits_each_ip_per_site_with_retry_after(site, settings):
    settings.COLLECTOR_SITE_RATE = "5/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.20")
    statuses = [send(client, pageview(site)).status_code for _ in range(7)]
    assert statuses == [202] * 5 + [429] * 2
    response = send(client, pageview(site))
    assert response.status_code == 429
    assert response.json() == {"error": "rate limited, retry later"}
    assert 1 <= int(response["Retry-After"]) <= 60
    assert Event.objects.count() == 5
    other = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.21")
    assert send(other, pageview(site)).status_code == 202


def test_the_per_ip_limit_applies_before_the_body_is_read(site, settings):
    settings.COLLECTOR_RATE = "3/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.30")
    statuses = [send(client, "garbage").status_code for _ in range(3)]
    assert statuses == [400, 400, 400]
    assert send(client, pageview(site)).status_code == 429


def test_rotating_a_spoofed_x_forwarded_for_does_not_escape_the_limit(site, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    settings.COLLECTOR_SITE_RATE = "5/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="10.0.0.2")  # the ALB
    statuses = [
        send(client, pageview(site), HTTP_X_FORWARDED_FOR=f"198.18.{i}.{i}, 203.0.113.40").status_code for i in range(8)
    ]
    assert statuses == [202] * 5 + [429] * 3


def test_ipv6_clients_are_limited_per_slash_64(site, settings):
    settings.COLLECTOR_SITE_RATE = "4/m"
    statuses = [
        send(Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR=f"2001:db8:7:1::{i:x}"), pageview(site)).status_code
        for i in range(1, 7)
    ]
    assert statuses == [202] * 4 + [429] * 2
    assert send(Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="2001:db8:7:2::1"), pageview(site)).status_code == 202


def test_the_collector_fails_open_when_redis_is_down(site, settings, caplog):
    settings.CACHES = {
        "default": {
            "BACKEND": "fathom.cache.FastRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    settings.CELERY_TASK_ALWAYS_EAGER = True
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.60")
    # The site lookup also needs the cache; the database answers instead.
    response = send(client, pageview(site))
    assert response.status_code == 202
    assert Event.objects.count() == 1
    assert "rate limit collector-ip skipped, cache unavailable" in caplog.text


def test_login_is_limited_per_ip_and_per_username(client, settings, django_user_model):
    settings.LOGIN_RATE = "3/m"
    django_user_model.objects.create_user("alice", password="right-password", is_staff=True)

    def attempt(ip, username):
        return client.post("/admin/login/", {"username": username, "password": "wrong"}, REMOTE_ADDR=ip).status_code

    assert [attempt("203.0.113.70", f"user{i}") for i in range(4)] == [200, 200, 200, 429]
    # Spreading guesses for one account over many IPs hits the per-username limit.
    assert [attempt(f"198.51.100.{i}", "alice") for i in range(1, 5)] == [200, 200, 200, 429]


def test_login_fails_closed_when_redis_is_down(client, settings):
    settings.CACHES = {
        "default": {
            "BACKEND": "fathom.cache.FastRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    response = client.post("/admin/login/", {"username": "alice", "password": "x"}, REMOTE_ADDR="203.0.113.71")
    assert response.status_code == 503
    assert response["Retry-After"] == "30"


def test_the_429_response_is_json_for_the_tracker(site, settings):
    settings.COLLECTOR_SITE_RATE = "1/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.80")
    send(client, pageview(site))
    response = send(client, pageview(site))
    assert json.loads(response.content) == {"error": "rate limited, retry later"}
    assert response["Access-Control-Allow-Origin"] == "*"

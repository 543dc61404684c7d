"""The entry point's dispatch, driven with recorded event payloads (fathom/tests/events/*.json,
also used to drive the built zip): ALB with multi-value headers, API Gateway v1/v2, function
URL, keep-warm. SQS and schedules: test_lambda_sqs.py and test_lambda_schedule.py."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from collector.models import Event
from fathom.lambda_handler import handler
from testing import CHROME_UA

EVENTS = Path(__file__).parent / "events"
ROOT = Path(__file__).resolve().parents[2]


def recorded(name: str) -> dict[str, Any]:
    return json.loads((EVENTS / name).read_text())


def alb_event(method: str, path: str, body: str = "", headers: dict[str, str] | None = None) -> dict:
    base_headers = {
        "host": "collector.example.net",
        "user-agent": CHROME_UA,
        "x-amzn-trace-id": "Root=1-6745c1d2-0f1e2d3c4b5a69788796a5b4",
        "x-forwarded-for": "198.51.100.7",
        "x-forwarded-port": "443",
        "x-forwarded-proto": "https",
    }
    base_headers.update(headers or {})
    return {
        "requestContext": {
            "elb": {
                "targetGroupArn": "arn:aws:elasticloadbalancing:us-east-1:123456789012:targetgroup/fathom/6d0ecf831eec9f09"
            }
        },
        "httpMethod": method,
        "path": path,
        "multiValueQueryStringParameters": {},
        "multiValueHeaders": {key: [value] for key, value in base_headers.items()},
        "body": base64.b64encode(body.encode()).decode(),
        "isBase64Encoded": True,
    }


def test_keep_warm_pings_return_at_once():
    event = {
        "detail-type": "Scheduled Event",
        "source": "aws.events",
        "resources": [
            "arn:aws:events:us-east-1:123456789012:rule/fathom-production-zappa-keep-warm-handler.keep_warm_callback"
        ],
    }
    assert handler(event, None) == {"warm": True}


def test_an_alb_get_reaches_django(settings):
    settings.ALLOWED_HOSTS = ["collector.example.net"]
    response = handler(alb_event("GET", "/healthz"), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_an_alb_post_is_counted_with_the_real_client_ip(settings, site):
    settings.ALLOWED_HOSTS = ["collector.example.net"]
    settings.TRUSTED_PROXY_HOPS = 1
    body = json.dumps({"n": "pageview", "u": "https://example.com/", "sid": site.public_id})
    first = handler(alb_event("POST", "/api/event", body, {"x-forwarded-for": "6.6.6.6, 198.51.100.7"}), None)
    second = handler(alb_event("POST", "/api/event", body, {"x-forwarded-for": "7.7.7.7, 198.51.100.7"}), None)
    assert first["statusCode"] == second["statusCode"] == 202
    # A forged first entry does not make another visitor: both hits are the same visitor.
    assert Event.objects.count() == 2
    assert len(set(Event.objects.values_list("visitor_id", flat=True))) == 1


def test_unknown_events_are_refused():
    with pytest.raises(ValueError, match="unsupported event"):
        handler({"Records": [{"eventSource": "aws:s3"}]}, None)


def test_unknown_events_are_logged_by_their_keys_only(caplog):
    event = {"detail-type": "Scheduled Event", "kwargs": {}, "sourceIp": "203.0.113.99"}
    with pytest.raises(ValueError, match="unsupported event"):
        handler(event, None)
    assert "sourceIp" in caplog.text
    assert "203.0.113.99" not in caplog.text


def test_the_recorded_keep_warm_ping_does_no_django_work(monkeypatch):
    # No django_db mark: pytest-django makes any database access (a query, a connection) an error.
    from fathom import lambda_handler

    def no_django(*args: Any) -> None:
        raise AssertionError("a keep-warm ping reached Django")

    monkeypatch.setattr(lambda_handler, "_http", no_django)
    monkeypatch.setattr(lambda_handler.lambda_commands, "run", no_django)
    assert handler(recorded("keep_warm.json"), None) == {"warm": True}


@pytest.mark.parametrize(
    "name",
    ["alb_get_healthz.json", "apigw_v1_get_healthz.json", "apigw_v2_get_healthz.json", "function_url_get_healthz.json"],
)
def test_every_recorded_http_shape_reaches_django(name, settings):
    settings.ALLOWED_HOSTS = [".example.net", ".amazonaws.com", ".on.aws"]
    response = handler(recorded(name), None)
    assert response["statusCode"] == 200
    assert json.loads(response["body"]) == {"status": "ok"}


@pytest.mark.django_db(transaction=True)
def test_the_recorded_alb_post_resolves_the_client_behind_the_alb(settings, site):
    """x-forwarded-for is "6.6.6.6, 198.51.100.7": the client wrote the first entry, the ALB
    appended the second. With one trusted hop the client is 198.51.100.7, which the ban proves."""
    from security.services import ban_network

    settings.ALLOWED_HOSTS = ["collector.example.net"]
    settings.TRUSTED_PROXY_HOPS = 1
    event = recorded("alb_post_event.json")
    body = base64.b64decode(event["body"]).decode().replace("REPLACE_SITE_ID", site.public_id)
    event["body"] = base64.b64encode(body.encode()).decode()
    event["multiValueHeaders"]["content-length"] = [str(len(body))]

    assert handler(event, None)["statusCode"] == 202
    assert Event.objects.get().path == "/pricing"

    ban_network(network="6.6.6.6")  # the forged entry: not the client
    assert handler(event, None)["statusCode"] == 202
    ban_network(network="198.51.100.7")
    assert handler(event, None)["statusCode"] == 403


PYMYSQL_PROBE = """
import importlib.abc, sys

class NoMysqlclient(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        # mysqlclient's own modules; MySQLdb.* found inside pymysql (the stand-in) are fine.
        if name in ("MySQLdb", "_mysql") or (name.startswith("MySQLdb.") and "pymysql" not in str(path)):
            raise ImportError(f"blocked: {name}")
        return None

sys.meta_path.insert(0, NoMysqlclient())
import fathom.lambda_handler  # noqa: F401
import pymysql
assert sys.modules["MySQLdb"] is pymysql
from django.db.backends.mysql import base  # Django's version check and imports pass
print("backend", base.Database.__name__)
import os
from django.db import connection
if connection.vendor == "mysql":
    connection.settings_dict["NAME"] = os.environ["PROBE_DATABASE"]  # the test database
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        print("query", cursor.fetchone()[0], type(connection.connection).__module__)
"""


@pytest.mark.django_db  # creates the test database the probe connects to
def test_without_mysqlclient_pymysql_stands_in_for_it():
    """The Lambda zip ships PyMySQL, not mysqlclient: the handler installs it as MySQLdb
    before Django loads. On MariaDB (DATABASE_URL=mysql://...) a query goes through it."""
    pytest.importorskip("pymysql")
    from django.db import connection

    probe_db = str(connection.settings_dict["NAME"])
    env = {**os.environ, "DEBUG": "1", "DJANGO_SETTINGS_MODULE": "fathom.test_settings", "PROBE_DATABASE": probe_db}
    result = subprocess.run(
        [sys.executable, "-c", PYMYSQL_PROBE], cwd=ROOT, env=env, capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "backend pymysql" in result.stdout
    if os.environ.get("DATABASE_URL", "").startswith("mysql"):
        assert "query 1 pymysql.connections" in result.stdout

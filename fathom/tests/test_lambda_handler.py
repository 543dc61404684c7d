"""The web function's entry point, driven with a recorded ALB event (multi-value headers)."""

from __future__ import annotations

import base64
import json

import pytest

from collector.models import Event
from conftest import CHROME_UA
from fathom.lambda_handler import handler


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

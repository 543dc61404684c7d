"""With a real Redis broker: the warm request runs no SQL, and what is queued holds no IP or UA."""

from __future__ import annotations

import json

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector.ingest import ingest_batch
from collector.models import Event, HourlyTotal
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db


def pageview(site, path="/"):
    return {"n": "pageview", "u": f"https://example.com{path}", "sid": site.public_id, "r": "https://duckduckgo.com/"}


def test_a_warm_request_runs_no_sql_query(browser_client, site, redis_broker):
    assert send(browser_client, pageview(site)).status_code == 202  # cold: site and salts are loaded
    with CaptureQueriesContext(connection) as queries:
        for path in ("/a", "/b", "/c"):
            response = send(browser_client, pageview(site, path))
            assert response.status_code == 202
        bad = send(browser_client, {"n": "pageview", "u": "https://example.com/", "sid": "ZZZZ2345"})
        assert bad.status_code == 404
        again = send(browser_client, {"n": "pageview", "u": "https://example.com/", "sid": "ZZZZ2345"})
        assert again.status_code == 404
        impossible = send(browser_client, {"n": "pageview", "u": "https://example.com/", "sid": "lower-0O1"})
        assert impossible.status_code == 404  # not even looked up: no such id can exist
    # The unknown site costs one lookup, then its absence is cached too.
    assert [q["sql"] for q in queries.captured_queries if "ZZZZ2345" not in q["sql"]] == []
    assert len(queries.captured_queries) == 1
    assert len(redis_broker()) == 4
    assert Event.objects.count() == 0  # nothing was written in the request


def test_queued_messages_carry_no_ip_or_user_agent_and_the_worker_counts_them(browser_client, site, redis_broker):
    ip = "203.0.113.77"
    for path in ("/", "/pricing", "/pricing"):
        send(browser_client, pageview(site, path), REMOTE_ADDR=ip)
    raw = b"".join(redis_broker.raw())
    messages = redis_broker()
    assert len(messages) == 3
    for text in (ip, CHROME_UA, "Mozilla", "203.0.113"):
        assert text.encode() not in raw
        assert text not in json.dumps(messages)
    envelope = messages[0]["envelope"]
    assert envelope["headers"]["task"] == "collector.tasks.ingest_hits"
    assert envelope["properties"]["delivery_info"]["routing_key"] == "ingest"
    # A worker draining the queue writes them once; a redelivery of the same messages adds nothing.
    for _ in range(2):
        for message in messages:
            ingest_batch(message["args"][0])
    assert Event.objects.count() == 3
    assert HourlyTotal.objects.get().pageviews == 3
    assert HourlyTotal.objects.get().new_visitors == 1

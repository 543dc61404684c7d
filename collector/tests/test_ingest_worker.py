"""The batching ingest consumer against a real Redis broker."""

from __future__ import annotations

import json

import pytest
from django.core.management import call_command
from django.db import OperationalError

from collector.models import Event, HourlyTotal
from testing import send

pytestmark = pytest.mark.django_db(transaction=True)


def pageview(site, path):
    return {"n": "pageview", "u": f"https://example.com{path}", "sid": site.public_id}


def test_it_writes_many_queued_hits_in_one_batch(browser_client, site, redis_broker, django_assert_max_num_queries):
    for i in range(30):
        assert send(browser_client, pageview(site, f"/{i % 4}"), REMOTE_ADDR=f"198.51.100.{i}").status_code == 202
    assert len(redis_broker()) == 30
    # One batch: a handful of statements for 30 hits, not 30 transactions.
    with django_assert_max_num_queries(12):
        call_command("ingest_worker", "--once", "--wait", "0.5")
    assert redis_broker() == []
    assert Event.objects.count() == 30
    assert HourlyTotal.objects.get().pageviews == 30
    assert HourlyTotal.objects.get().new_visitors == 30


def test_foreign_messages_are_rejected_and_the_rest_written(browser_client, site, redis_broker):
    import redis

    send(browser_client, pageview(site, "/a"))
    client = redis.Redis.from_url(redis_broker.url)
    client.lpush("ingest", json.dumps({"body": "bm90IGpzb24=", "headers": {"task": "something.else"},
                                       "content-type": "application/json", "content-encoding": "utf-8",
                                       "properties": {"body_encoding": "base64", "delivery_tag": "x",
                                                      "delivery_info": {"exchange": "", "routing_key": "ingest"}}}))  # fmt: skip
    send(browser_client, pageview(site, "/b"))
    call_command("ingest_worker", "--once", "--wait", "0.5")
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/a", "/b"]
    assert redis_broker() == []


def test_a_database_error_puts_the_messages_back(browser_client, site, redis_broker, monkeypatch):
    send(browser_client, pageview(site, "/a"))

    def down(hits):
        raise OperationalError("database is down")

    monkeypatch.setattr("collector.management.commands.ingest_worker.ingest_batch", down)
    with pytest.raises(OperationalError):
        call_command("ingest_worker", "--once", "--wait", "0.2")
    monkeypatch.undo()
    assert Event.objects.count() == 0
    call_command("ingest_worker", "--once", "--wait", "0.5")
    assert Event.objects.count() == 1

"""The worker function on moto's SQS: real Celery messages published through kombu's SQS
transport, received with boto3, and handed to the handler as Lambda's event source does."""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.client import BaseClient
from django.db import OperationalError
from django.utils import timezone
from moto import mock_aws

from collector.models import Event, HourlyTotal, Visit
from fathom import lambda_sqs
from fathom.celery import app
from fathom.lambda_handler import handler
from testing import REGION, reset_celery_connections, send

pytestmark = pytest.mark.django_db(transaction=True)

EVENTS = Path(__file__).parent / "events"
ROOT = Path(__file__).resolve().parents[2]
CALLS: dict[str, int] = {}


# Test-only tasks, registered on the real app.
@app.task(bind=True, name="fathom.tests.retry_in_30", max_retries=2, ignore_result=True)
def retry_in_30(self: Any, label: str) -> None:
    CALLS[label] = CALLS.get(label, 0) + 1
    raise self.retry(countdown=30)


@app.task(bind=True, name="fathom.tests.retry_in_an_hour", ignore_result=True)
def retry_in_an_hour(self: Any) -> None:
    raise self.retry(countdown=3600)


@app.task(name="fathom.tests.boom", ignore_result=True)
def boom() -> None:
    raise ValueError("boom")


@app.task(name="fathom.tests.ok", ignore_result=True)
def ok(label: str) -> None:
    CALLS[label] = CALLS.get(label, 0) + 1


class SQS:
    """moto's queues as the Celery app's broker, plus what a test needs to drive the worker."""

    def __init__(self, client: Any, urls: dict[str, str]) -> None:
        self.client = client
        self.urls = urls
        self.sent: list[dict[str, Any]] = []  # SendMessage parameters, whoever sent them

    def receive(self, queue: str = "ingest") -> list[dict[str, Any]]:
        messages = []
        while True:
            batch = self.client.receive_message(
                QueueUrl=self.urls[queue], MaxNumberOfMessages=10, AttributeNames=["All"], WaitTimeSeconds=0
            ).get("Messages", [])
            if not batch:
                return messages
            messages.extend(batch)

    def event(self, messages: list[dict[str, Any]], queue: str = "ingest") -> dict[str, Any]:
        """The Lambda event for these messages, shaped like the recorded sqs_batch.json."""
        template = json.loads((EVENTS / "sqs_batch.json").read_text())["Records"][0]
        records = []
        for message in messages:
            record = copy.deepcopy(template)
            record.update(
                messageId=message["MessageId"],
                receiptHandle=message["ReceiptHandle"],
                body=message["Body"],
                md5OfBody=message["MD5OfBody"],
                eventSourceARN=f"arn:aws:sqs:{REGION}:123456789012:fathom-{queue}",
            )
            record["attributes"] = {k: v for k, v in message["Attributes"].items() if k in template["attributes"]}
            records.append(record)
        return {"Records": records}

    def delayed(self, queue: str) -> int:
        attributes = self.client.get_queue_attributes(
            QueueUrl=self.urls[queue], AttributeNames=["ApproximateNumberOfMessagesDelayed"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesDelayed"])

    def sent_to(self, queue: str) -> list[dict[str, Any]]:
        return [params for params in self.sent if params["QueueUrl"] == self.urls[queue]]


def envelope(body: str) -> dict[str, Any]:
    """A message body as kombu wrote it → {"headers", "properties", "args", "kwargs"}."""
    env = json.loads(base64.b64decode(body))
    args, kwargs, _embed = json.loads(base64.b64decode(env["body"]))
    return {"headers": env["headers"], "properties": env["properties"], "args": args, "kwargs": kwargs}


@pytest.fixture
def sqs(monkeypatch: pytest.MonkeyPatch, settings: Any) -> Iterator[SQS]:
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_SQS"):
        monkeypatch.delenv(name, raising=False)
    CALLS.clear()
    with mock_aws():
        client = boto3.client("sqs", region_name=REGION)
        urls = {name: client.create_queue(QueueName=f"fathom-{name}")["QueueUrl"] for name in ("ingest", "default")}
        queues = SQS(client, urls)
        real_call = BaseClient._make_api_call

        def spy(self: Any, operation: str, params: dict[str, Any]) -> Any:
            if operation == "SendMessage":
                queues.sent.append(params)
            return real_call(self, operation, params)

        monkeypatch.setattr(BaseClient, "_make_api_call", spy)
        keys = ("broker_url", "task_always_eager", "broker_transport_options")
        old = {key: app.conf[key] for key in keys}
        app.conf.broker_url = "sqs://"
        app.conf.task_always_eager = False
        # What settings.py builds for sqs:// (see test_the_settings_build_the_sqs_transport_options).
        app.conf.broker_transport_options = {
            "region": REGION,
            "predefined_queues": {name: {"url": url} for name, url in urls.items()},
            "client-config": {"connect_timeout": 1, "read_timeout": 1, "retries": {"total_max_attempts": 2}},
        }
        settings.CELERY_TASK_ALWAYS_EAGER = False
        settings.CELERY_BROKER_URL = "sqs://"
        reset_celery_connections(app)
        try:
            yield queues
        finally:
            for key, value in old.items():
                app.conf[key] = value
            reset_celery_connections(app)


def pageview(site: Any, path: str) -> dict[str, Any]:
    return {"n": "pageview", "u": f"https://example.com{path}", "sid": site.public_id}


def post_hits(client: Any, site: Any, paths: list[str]) -> None:
    """The collector's real enqueue path: POST /api/event → ingest_hits.apply_async → kombu → SQS."""
    for i, path in enumerate(paths):
        assert send(client, pageview(site, path), REMOTE_ADDR=f"198.51.100.{i + 1}").status_code == 202


def failures(result: dict[str, Any]) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


@pytest.fixture
def ingest_spy(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Records the number of hits of each ingest_batch call (one call = one transaction)."""
    from collector import tasks

    calls: list[int] = []
    real = tasks.ingest_batch

    def spy(hits: list[dict[str, Any]]) -> Any:
        calls.append(len(hits))
        return real(hits)

    monkeypatch.setattr(tasks, "ingest_batch", spy)
    return calls


@pytest.fixture
def tasks_loaded() -> None:
    """Load the tasks the way the handler's first call does, before the test runs: Celery's Django
    fixup then runs django.setup(), whose logging config replaces the root handlers, and with them
    the handler caplog installed for the test (its log lines would be lost when run alone)."""
    lambda_sqs._import_tasks()


# --- ingest: one transaction per batch --------------------------------------------------------------


def test_the_ingest_messages_of_a_batch_are_written_in_one_transaction(browser_client, site, sqs, ingest_spy):
    post_hits(browser_client, site, ["/", "/pricing", "/pricing", "/docs"])
    messages = sqs.receive("ingest")
    assert len(messages) == 4
    assert envelope(messages[0]["Body"])["headers"]["task"] == "collector.tasks.ingest_hits"

    result = handler(sqs.event(messages), None)

    assert result == {"batchItemFailures": []}
    assert ingest_spy == [4]
    assert Event.objects.count() == 4
    assert Visit.objects.count() == 4  # four addresses, four visitors
    assert HourlyTotal.objects.get().pageviews == 4
    assert sqs.sent_to("ingest") == sqs.sent[:4]  # nothing republished


def test_messages_published_by_apply_async_are_written_too(browser_client, site, sqs, ingest_spy):
    from collector.tasks import ingest_hits

    post_hits(browser_client, site, ["/a"])
    hits = envelope(sqs.receive("ingest")[0]["Body"])["args"][0]
    second = [{**hits[0], "id": hits[0]["id"][:-2] + "b2", "ts": hits[0]["ts"] + 1, "p": "/b"}]
    ingest_hits.apply_async((second,))
    ingest_hits.apply_async(kwargs={"hits": [{**second[0], "id": hits[0]["id"][:-2] + "c3", "ts": hits[0]["ts"] + 2}]})
    messages = sqs.receive("ingest")
    assert len(messages) == 2  # the first was received already (in flight)

    assert handler(sqs.event(messages), None) == {"batchItemFailures": []}
    assert ingest_spy == [2]
    assert Event.objects.count() == 2


def test_a_duplicate_delivery_counts_once(browser_client, site, sqs):
    post_hits(browser_client, site, ["/", "/pricing"])
    messages = sqs.receive("ingest")
    event = sqs.event(messages)
    twice_in_one_batch = {"Records": event["Records"] + [event["Records"][0]]}

    assert handler(twice_in_one_batch, None) == {"batchItemFailures": []}
    assert handler(event, None) == {"batchItemFailures": []}  # the whole batch again

    assert Event.objects.count() == 2
    assert HourlyTotal.objects.get().pageviews == 2
    assert HourlyTotal.objects.get().visits == 2


def test_on_clickhouse_the_batch_goes_to_the_analytics_store(browser_client, site, sqs, ingest_spy, clickhouse_store):
    post_hits(browser_client, site, ["/", "/pricing", "/pricing"])
    event = sqs.event(sqs.receive("ingest"))

    assert handler(event, None) == {"batchItemFailures": []}
    assert handler(event, None) == {"batchItemFailures": []}  # redelivered: counts once

    assert ingest_spy == [3, 3]
    paths = clickhouse_store.query("SELECT path FROM events ORDER BY path").result_rows
    assert paths == [("/",), ("/pricing",), ("/pricing",)]
    assert clickhouse_store.query("SELECT sum(sign * pageviews) FROM sessions").result_rows == [(3,)]
    assert Event.objects.count() == Visit.objects.count() == HourlyTotal.objects.count() == 0


# --- poison messages and failing tasks ---------------------------------------------------------------


def test_poison_messages_are_reported_alone_and_the_rest_is_written(browser_client, site, sqs, tasks_loaded, caplog):
    post_hits(browser_client, site, ["/a", "/b"])
    app.send_task("no.such.task", args=[1], queue="ingest")
    sqs.client.send_message(QueueUrl=sqs.urls["ingest"], MessageBody=base64.b64encode(os.urandom(48)).decode())
    sqs.client.send_message(QueueUrl=sqs.urls["ingest"], MessageBody="not json, not base64: 203.0.113.9")
    messages = sqs.receive("ingest")
    by_task = {}
    for message in messages:
        try:
            by_task.setdefault(envelope(message["Body"])["headers"]["task"], []).append(message["MessageId"])
        except ValueError:
            by_task.setdefault("poison", []).append(message["MessageId"])
    assert len(by_task["poison"]) == 2

    result = handler(sqs.event(messages), None)

    assert sorted(failures(result)) == sorted(by_task["poison"] + by_task["no.such.task"])
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/a", "/b"]
    assert "203.0.113.9" not in caplog.text  # bodies are never logged
    assert "unknown task 'no.such.task'" in caplog.text


def test_a_malformed_ingest_message_is_poison_not_a_failed_group(browser_client, site, sqs, ingest_spy):
    post_hits(browser_client, site, ["/a"])
    app.send_task("collector.tasks.ingest_hits", args=["not a list"], queue="ingest")
    messages = sqs.receive("ingest")
    bad = next(m["MessageId"] for m in messages if envelope(m["Body"])["args"] == ["not a list"])

    assert failures(handler(sqs.event(messages), None)) == [bad]
    assert ingest_spy == [1]
    assert Event.objects.count() == 1


def test_a_task_that_raises_is_reported_and_the_others_run(sqs):
    boom.apply_async()
    ok.apply_async(("x",))
    messages = sqs.receive("default")
    failing = next(m["MessageId"] for m in messages if envelope(m["Body"])["headers"]["task"] == "fathom.tests.boom")

    assert failures(handler(sqs.event(messages, "default"), None)) == [failing]
    assert CALLS == {"x": 1}


def test_an_ingest_group_that_fails_for_another_reason_is_split_to_find_the_bad_message(
    browser_client, site, sqs, monkeypatch
):
    from collector import tasks

    post_hits(browser_client, site, ["/a", "/bad", "/c"])
    messages = sqs.receive("ingest")
    bad = next(m["MessageId"] for m in messages if envelope(m["Body"])["args"][0][0]["p"] == "/bad")
    real = tasks.ingest_batch

    def picky(hits: list[dict[str, Any]]) -> Any:
        if any(hit["p"] == "/bad" for hit in hits):
            raise KeyError("a bug that only this hit triggers")
        return real(hits)

    monkeypatch.setattr(tasks, "ingest_batch", picky)

    assert failures(handler(sqs.event(messages), None)) == [bad]
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/a", "/c"]


def test_only_the_projects_tasks_run(sqs):
    app.send_task("celery.backend_cleanup", queue="default")  # registered, but Celery's own
    messages = sqs.receive("default")
    assert failures(handler(sqs.event(messages, "default"), None)) == [messages[0]["MessageId"]]


def test_the_recorded_sqs_event_runs_its_task():
    """sqs_batch.json's shape with a body kombu published to moto (used to drive the built zip)."""
    from security.models import Ban

    Ban.objects.create(network="203.0.113.7", expires_at=timezone.now() - dt.timedelta(minutes=1))
    event = json.loads((EVENTS / "sqs_expire_bans_task.json").read_text())

    assert handler(event, None) == {"batchItemFailures": []}
    assert not Ban.objects.exists()


# --- retries and etas become SQS DelaySeconds --------------------------------------------------------


def test_a_task_asking_to_retry_is_republished_with_delay_seconds(sqs):
    retry_in_30.apply_async(("r",))
    messages = sqs.receive("default")
    original = envelope(messages[0]["Body"])["headers"]

    result = handler(sqs.event(messages, "default"), None)

    assert result == {"batchItemFailures": []}  # done: this record is deleted, not redelivered
    assert CALLS == {"r": 1}  # run once, not again now
    (republished,) = sqs.sent_to("default")[1:]
    assert republished["DelaySeconds"] == 30
    headers = envelope(republished["MessageBody"])["headers"]
    assert headers["id"] == original["id"]
    assert headers["retries"] == 1
    assert headers["eta"] is not None
    assert sqs.delayed("default") == 1
    assert sqs.receive("default") == []  # not deliverable before its delay


def test_past_max_retries_the_message_fails(sqs):
    retry_in_30.apply_async(("r",), retries=2)  # max_retries=2: this run would be the third retry
    messages = sqs.receive("default")

    assert failures(handler(sqs.event(messages, "default"), None)) == [messages[0]["MessageId"]]
    assert CALLS == {"r": 1}
    assert sqs.sent_to("default")[1:] == []


def test_the_waf_sync_retries_in_5_seconds_when_another_sync_holds_the_lock(sqs):
    from django.core.cache import cache

    from security.waf_sync import LOCK_KEY, sync_waf_task

    cache.add(LOCK_KEY, 1, 120)
    sync_waf_task.apply_async()
    messages = sqs.receive("default")

    assert handler(sqs.event(messages, "default"), None) == {"batchItemFailures": []}
    (republished,) = sqs.sent_to("default")[1:]
    assert republished["DelaySeconds"] == 5
    assert envelope(republished["MessageBody"])["headers"]["task"] == "security.tasks.sync_waf_task"


def test_a_message_with_a_future_eta_is_delayed_by_sqs_not_run(sqs):
    ok.apply_async(("later",), countdown=120)
    messages = sqs.receive("default")
    original = envelope(messages[0]["Body"])["headers"]

    assert handler(sqs.event(messages, "default"), None) == {"batchItemFailures": []}

    assert CALLS == {}
    (republished,) = sqs.sent_to("default")[1:]
    assert 119 <= republished["DelaySeconds"] <= 120
    headers = envelope(republished["MessageBody"])["headers"]
    assert (headers["id"], headers["eta"], headers["retries"]) == (original["id"], original["eta"], 0)
    assert sqs.delayed("default") == 1


def test_past_15_minutes_the_delay_is_900_seconds_and_the_eta_is_kept(sqs):
    ok.apply_async(("much later",), countdown=3600)
    retry_in_an_hour.apply_async()
    messages = sqs.receive("default")
    etas = {envelope(m["Body"])["headers"]["id"]: envelope(m["Body"])["headers"]["eta"] for m in messages}

    assert handler(sqs.event(messages, "default"), None) == {"batchItemFailures": []}

    republished = sqs.sent_to("default")[2:]
    assert [params["DelaySeconds"] for params in republished] == [900, 900]
    by_id = {envelope(p["MessageBody"])["headers"]["id"]: envelope(p["MessageBody"])["headers"] for p in republished}
    assert set(by_id) == set(etas)
    later = next(i for i, headers in by_id.items() if headers["task"] == "fathom.tests.ok")
    assert by_id[later]["eta"] == etas[later]  # kept: on arrival it is delayed again
    retried = next(i for i, headers in by_id.items() if headers["task"] == "fathom.tests.retry_in_an_hour")
    eta = dt.datetime.fromisoformat(by_id[retried]["eta"])
    assert 3590 < (eta - dt.datetime.now(dt.UTC)).total_seconds() <= 3600

    # Delivered again after 900 s with the eta still ahead: delayed again, still not run.
    sqs.sent.clear()
    again = {
        "Records": [
            dict(r, body=p["MessageBody"])
            for r, p in zip(sqs.event(messages, "default")["Records"], republished, strict=True)
        ]
    }
    assert handler(again, None) == {"batchItemFailures": []}
    assert [params["DelaySeconds"] for params in sqs.sent] == [900, 900]
    assert CALLS == {}


def test_a_due_eta_runs_now(sqs):
    ok.apply_async(("due",), eta=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5))
    assert handler(sqs.event(sqs.receive("default"), "default"), None) == {"batchItemFailures": []}
    assert CALLS == {"due": 1}


def test_an_expired_message_is_dropped(sqs):
    ok.apply_async(("stale",), expires=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
    assert handler(sqs.event(sqs.receive("default"), "default"), None) == {"batchItemFailures": []}
    assert CALLS == {}


# --- the database is unreachable ---------------------------------------------------------------------


def down(hits: list[dict[str, Any]]) -> Any:
    raise OperationalError('(2003, "Can\'t connect to MySQL server")')


def test_with_the_database_down_the_ingest_messages_are_republished_with_backoff(
    browser_client, site, sqs, monkeypatch
):
    post_hits(browser_client, site, ["/a", "/b"])
    messages = sqs.receive("ingest")
    ids = {envelope(m["Body"])["headers"]["id"] for m in messages}
    sqs.sent.clear()
    monkeypatch.setattr("collector.tasks.ingest_batch", down)

    assert handler(sqs.event(messages), None) == {"batchItemFailures": []}

    assert [params["DelaySeconds"] for params in sqs.sent_to("ingest")] == [1, 1]  # retry_countdown(0)
    republished = [envelope(params["MessageBody"]) for params in sqs.sent_to("ingest")]
    assert {r["headers"]["id"] for r in republished} == ids
    assert {r["headers"]["retries"] for r in republished} == {1}
    assert {r["headers"]["argsrepr"] for r in republished} == {"<1 hits>"}  # no hit rendered into headers

    # The database is back: the republished messages are written once.
    monkeypatch.undo()
    later = {
        "Records": [
            dict(r, body=p["MessageBody"]) for r, p in zip(sqs.event(messages)["Records"], sqs.sent, strict=True)
        ]
    }
    later["Records"] = [dict(r, body=_without_eta(r["body"])) for r in later["Records"]]
    assert handler(later, None) == {"batchItemFailures": []}
    assert Event.objects.count() == 2


def _without_eta(body: str) -> str:
    """The message as it arrives once its delay is over (eta reached): shift the eta back."""
    env = json.loads(base64.b64decode(body))
    env["headers"]["eta"] = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1)).isoformat()
    return base64.b64encode(json.dumps(env).encode()).decode()


def test_with_the_database_and_the_queue_down_every_ingest_message_is_reported(browser_client, site, sqs, monkeypatch):
    ok.apply_async(("fine",))
    post_hits(browser_client, site, ["/a", "/b"])
    messages = sqs.receive("ingest") + sqs.receive("default")
    ingest_ids = [m["MessageId"] for m in messages if envelope(m["Body"])["headers"]["task"].startswith("collector.")]
    monkeypatch.setattr("collector.tasks.ingest_batch", down)
    sqs.client.delete_queue(QueueUrl=sqs.urls["ingest"])

    result = handler(sqs.event(messages), None)

    assert sorted(failures(result)) == sorted(ingest_ids)
    assert CALLS == {"fine": 1}


def test_an_ingest_message_past_max_retries_fails(browser_client, site, sqs, monkeypatch):
    from collector.tasks import ingest_hits

    post_hits(browser_client, site, ["/a"])
    hits = envelope(sqs.receive("ingest")[0]["Body"])["args"][0]
    ingest_hits.apply_async((hits,), retries=ingest_hits.max_retries)
    messages = sqs.receive("ingest")
    sqs.sent.clear()
    monkeypatch.setattr("collector.tasks.ingest_batch", down)

    assert failures(handler(sqs.event(messages), None)) == [messages[0]["MessageId"]]
    assert sqs.sent == []


# --- without ReportBatchItemFailures ----------------------------------------------------------------


def test_without_partial_batch_responses_a_failure_fails_the_batch_and_a_redelivery_counts_once(
    browser_client, site, sqs, monkeypatch
):
    monkeypatch.setenv("SQS_REPORT_BATCH_ITEM_FAILURES", "0")
    post_hits(browser_client, site, ["/a", "/b", "/c"])
    app.send_task("no.such.task", queue="ingest")
    event = sqs.event(sqs.receive("ingest"))

    with pytest.raises(RuntimeError, match="1 message"):
        handler(event, None)
    assert Event.objects.count() == 3
    # Lambda delivers the whole batch again (and again, until maxReceiveCount): nothing is counted twice.
    with pytest.raises(RuntimeError):
        handler(event, None)
    assert Event.objects.count() == 3
    assert HourlyTotal.objects.get().pageviews == 3


def test_with_partial_batch_responses_a_whole_batch_redelivery_adds_nothing(browser_client, site, sqs):
    post_hits(browser_client, site, ["/a", "/b", "/c"])
    app.send_task("no.such.task", queue="ingest")
    event = sqs.event(sqs.receive("ingest"))

    assert len(failures(handler(event, None))) == 1
    assert len(failures(handler(event, None))) == 1  # e.g. the flag is off and Lambda sends it all again
    assert Event.objects.count() == 3
    assert HourlyTotal.objects.get().visitors == 3


# --- decoding -----------------------------------------------------------------------------------------


def test_a_body_without_the_outer_base64_is_read_too(browser_client, site, sqs):
    post_hits(browser_client, site, ["/raw"])
    event = sqs.event(sqs.receive("ingest"))
    event["Records"][0]["body"] = base64.b64decode(event["Records"][0]["body"]).decode()  # sqs_base64_encoding off

    assert handler(event, None) == {"batchItemFailures": []}
    assert Event.objects.get().path == "/raw"


@pytest.mark.parametrize(
    "change",
    [
        lambda env: env.update({"content-type": "application/x-python-serialize"}),
        lambda env: env["headers"].pop("task"),
        lambda env: env.update({"body": "%%%"}),
        lambda env: env.update({"body": base64.b64encode(b'{"not": "a list"}').decode()}),
        lambda env: env["headers"].update({"eta": "tomorrow"}),
    ],
)
def test_unreadable_envelopes_are_poison(change):
    env = {
        "body": base64.b64encode(b'[[], {}, {"callbacks": null}]').decode(),
        "content-encoding": "utf-8",
        "content-type": "application/json",
        "headers": {"task": "fathom.tests.ok", "id": "6a4e0e1c-0000-4000-8000-000000000001", "retries": 0},
        "properties": {"body_encoding": "base64", "delivery_info": {"exchange": "", "routing_key": "default"}},
    }
    assert lambda_sqs.decode({"body": base64.b64encode(json.dumps(env).encode()).decode()}).name == "fathom.tests.ok"
    change(env)
    with pytest.raises(lambda_sqs.Poison):
        lambda_sqs.decode({"messageId": "m", "body": base64.b64encode(json.dumps(env).encode()).decode()})


# --- settings -----------------------------------------------------------------------------------------


def load_settings(code: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "SQS_"))}
    return subprocess.run(
        [sys.executable, "-c", f"import json, fathom.settings as s; {code}"],
        cwd=ROOT,
        env={**clean, "DEBUG": "1", **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_sqs_without_queue_urls_refuses_to_start():
    result = load_settings("", CELERY_BROKER_URL="sqs://", SQS_INGEST_QUEUE_URL="https://sqs.example/1/i")
    assert result.returncode != 0
    assert "SQS_INGEST_QUEUE_URL and SQS_DEFAULT_QUEUE_URL" in result.stderr


def test_the_settings_build_the_sqs_transport_options():
    result = load_settings(
        "print(json.dumps(s.CELERY_BROKER_TRANSPORT_OPTIONS))",
        CELERY_BROKER_URL="sqs://",
        AWS_REGION="eu-west-1",
        BROKER_TIMEOUT="2",
        SQS_INGEST_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/fathom-ingest",
        SQS_DEFAULT_QUEUE_URL="https://sqs.eu-west-1.amazonaws.com/123456789012/fathom-default",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "region": "eu-west-1",
        "predefined_queues": {
            "ingest": {"url": "https://sqs.eu-west-1.amazonaws.com/123456789012/fathom-ingest"},
            "default": {"url": "https://sqs.eu-west-1.amazonaws.com/123456789012/fathom-default"},
        },
        "client-config": {"connect_timeout": 2.0, "read_timeout": 2.0, "retries": {"total_max_attempts": 2}},
    }


def test_redis_keeps_its_socket_timeouts():
    result = load_settings(
        "print(json.dumps(s.CELERY_BROKER_TRANSPORT_OPTIONS))", CELERY_BROKER_URL="redis://127.0.0.1:6379/3"
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {"socket_connect_timeout": 1.0, "socket_timeout": 1.0, "max_retries": 0}


# --- a poison hit among good ones ---------------------------------------------------------------------


def test_a_poison_hit_is_dropped_and_its_record_is_done_with_its_batch_mates_written(
    browser_client, site, sqs, monkeypatch, tasks_loaded, caplog
):
    from collector import ingest
    from collector.tasks import ingest_hits

    post_hits(browser_client, site, ["/a"])
    first = sqs.receive("ingest")
    template = envelope(first[0]["Body"])["args"][0][0]

    def hit(number: int, path: str, **changes: Any) -> dict[str, Any]:
        return {
            **template,
            "id": f"{number:032x}",
            "p": path,
            "vid": template["vid"] + number,
            "ts": template["ts"] + number,
            **changes,
        }

    # A lone surrogate (the collector let it through, or another producer queued it) ...
    ingest_hits.apply_async(([hit(1, "/m1"), hit(2, "/x", id="poison-1", n="s3cr3t\ud800"), hit(3, "/m3")],))
    # ... and a hit the database refuses: its Event row gets a NULL hostname on the way.
    ingest_hits.apply_async(([hit(4, "/m4"), hit(5, "/y", id="poison-2")],))
    real_row = ingest.event_row
    index = ingest.EVENT_COLUMNS.index("hostname")

    def row(hit: dict[str, Any], **kwargs: Any) -> tuple:
        values = real_row(hit, **kwargs)
        return (*values[:index], None, *values[index + 1 :]) if hit["id"] == "poison-2" else values

    monkeypatch.setattr(ingest, "event_row", row)
    post_hits(browser_client, site, ["/b"])
    messages = first + sqs.receive("ingest")
    assert len(messages) == 4
    sent_before = len(sqs.sent)

    assert handler(sqs.event(messages), None) == {"batchItemFailures": []}  # every record is done

    assert sorted(Event.objects.values_list("path", flat=True)) == ["/a", "/b", "/m1", "/m3", "/m4"]
    assert HourlyTotal.objects.get().pageviews == 5
    assert len(sqs.sent) == sent_before  # nothing republished: no retry
    assert "'poison-1'" in caplog.text
    assert "'poison-2'" in caplog.text
    assert "s3cr3t" not in caplog.text
    assert "\\ud800" not in caplog.text

    # The next batch is written as usual.
    post_hits(browser_client, site, ["/c"])
    assert handler(sqs.event(sqs.receive("ingest")), None) == {"batchItemFailures": []}
    assert HourlyTotal.objects.get().pageviews == 6

"""A hit the worker cannot write never stops it and never takes its batch-mates down.

The queue is not trusted (messages of an older release, another producer, a bug), so each path
is fed a poison hit among good ones: (a) a lone UTF-16 surrogate in the name, path or props,
(b) wrong types, missing or out-of-range fields, (c) a value the database refuses (the Event
row is altered on its way to the database, since the worker's own checks stop such hits
earlier), (d) an unexpected exception for one hit. The good hits must be written exactly once,
with their rollups; the poison is dropped with one log line naming its id, never its content;
the next batch is still consumed; an outage still propagates (the batch is retried).

Paths here: ingest_batch itself, `manage.py ingest_worker` on the real Redis broker with real
messages, the Celery task run eagerly, and inline mode (no broker). The non-eager Celery task is
in test_faults.py (a prefork child's trace_task_ret), the Lambda SQS handler in
fathom/tests/test_lambda_sqs.py.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable
from typing import Any

import pytest
from django.core.management import call_command
from django.db import InterfaceError, OperationalError, ProgrammingError, connection
from django.db.models import Sum
from django.test.utils import CaptureQueriesContext

from collector import ingest
from collector.ingest import ingest_batch
from collector.models import DailyBreakdown, Event, HourlyTotal, Visit
from testing import send

SECRET = "s3cr3t-content"  # put in every poison text: it must never reach a log line
SURROGATES = ("\ud800", "\udc00", "\udfff")
MISSING = object()


# -- hits --------------------------------------------------------------------------------------


def good(site: Any, number: int) -> dict[str, Any]:
    """A hit as collector.services.build_messages makes it; each one its own visitor."""
    return {
        "id": f"{number:032x}",
        "site": site.id,
        "ts": int(time.time() * 1000) - 3_600_000 + number * 1000,
        "n": "pageview",
        "p": f"/good-{number}",
        "host": "example.com",
        "b": "Chrome",
        "os": "Windows",
        "dev": "Desktop",
        "cc": "",
        "i": True,
        "vid": 7_000 + number,
        "tok": [number, number + 1, number + 2],
        "pvid": None,
    }


def poisoned(site: Any, changes: dict[str, Any], hit_id: Any = "poison-99") -> dict[str, Any]:
    hit = {**good(site, 99), "id": hit_id}
    for key, value in changes.items():
        if value is MISSING:
            hit.pop(key, None)
        else:
            hit[key] = value
    return hit


# (b) and (a): hits that break the message contract. Field -> value (MISSING: the field is absent).
INVALID: dict[str, dict[str, Any]] = {
    "lone surrogate in the name": {"n": SECRET + "\ud800"},
    "lone surrogate in the path": {"p": "/" + SECRET + "\udfff"},
    "lone surrogate in a props value": {"n": "Signup", "props": {"plan": SECRET + "\ud800"}},
    "lone surrogate in a props name": {"n": "Signup", "props": {SECRET + "\udc00": "pro"}},
    "lone surrogate in a UTM value": {"utm": [SECRET + "\ud800", "", "", "", ""]},
    "lone surrogate in the referrer": {"ref": SECRET + "\udc00", "src": "Google"},
    "NUL in the path": {"p": "/" + SECRET + "\x00"},
    "no name": {"n": MISSING},
    "an empty name": {"n": ""},
    "a name that is a number": {"n": 123456789},
    "a name longer than its column": {"n": SECRET * 9},
    "a path longer than its column": {"p": "/" + SECRET * 150},
    "a hostname longer than its column": {"host": SECRET * 20},
    "a country of three letters": {"cc": "XYZ"},
    "a browser longer than its column": {"b": SECRET * 5},
    "no path": {"p": MISSING},
    "a path that is a list": {"p": [SECRET]},
    "the hostname null": {"host": None},
    "a timestamp as text": {"ts": "1795000000000"},
    "a timestamp as a float": {"ts": 1795000000000.5},
    "a timestamp as a boolean": {"ts": True},
    "a timestamp before 2000": {"ts": 123456789},
    "a timestamp years ahead": {"ts": 4_102_444_800_000},
    "a timestamp past any date": {"ts": 10**30},
    "no timestamp": {"ts": MISSING},
    "a site id as text": {"site": "12345678"},
    "a site id of zero": {"site": 0},
    "no visitor id": {"vid": MISSING},
    "a visitor id past 64 bits": {"vid": 2**63 + 12345},
    "a previous visitor id past 64 bits": {"pvid": -(2**63) - 12345},
    "ban tokens that are text": {"tok": [SECRET]},
    "ban tokens past 64 bits": {"tok": [2**64 + 12345]},
    "too many ban tokens": {"tok": list(range(100, 200))},
    "a value past the collector's bound": {"n": "Purchase", "v": 10**20 + 12345},
    "a value as a float": {"n": "Purchase", "v": 19.99},
    "a scroll depth past 100": {"n": "engagement", "sd": 40001},
    "engaged milliseconds past a day": {"n": "engagement", "e": 2**31 + 12345},
    "props that are a list": {"n": "Signup", "props": [SECRET]},
    "props with a nested object": {"n": "Signup", "props": {"plan": {"x": SECRET}}},
    "props with a number": {"n": "Signup", "props": {"plan": 123456789}},
    "props with too many pairs": {"n": "Signup", "props": {f"k{i}": SECRET for i in range(31)}},
    "a props value longer than the collector keeps": {"n": "Signup", "props": {"plan": SECRET * 150}},
    "UTM values that are not five": {"utm": [SECRET]},
    "a UTM value that is a number": {"utm": [123456789, "", "", "", ""]},
    "an interactive flag as text": {"n": "Signup", "i": SECRET},
}
INVALID_IDS: dict[str, Any] = {
    "an id that is a number": 123456789,
    "an id longer than its column": "poison-" + "9" * 40,
    "no id": MISSING,
    "an empty id": "",
}
NOT_HITS: dict[str, Any] = {"text": SECRET, "a list": [SECRET], "null": None, "a number": 123456789}

# (c): Event column -> a value the database refuses, and per database that refuses it what it
# raises (class and code, as measured with mysqlclient on MariaDB 10.11 strict mode and with
# sqlite3; see MYSQL_DATA_ERRORS and SQLITE_DATA_ERRORS in collector/ingest.py).
REFUSED: dict[str, tuple[str, Any, dict[str, str]]] = {
    "NULL in a NOT NULL column": ("hostname", None, {"mysql": "IntegrityError 1048", "sqlite": "IntegrityError 1299"}),
    "JSON its CHECK constraint refuses": (
        "props",
        '{"' + SECRET,
        {"mysql": "IntegrityError 4025", "sqlite": "IntegrityError 275"},
    ),
    "an integer past 64 bits": ("visitor_id", 2**63 + 12345, {"mysql": "DataError 1264", "sqlite": "OverflowError"}),
    "a lone surrogate": (
        "path",
        "/" + SECRET + "\ud800",
        {"mysql": "UnicodeEncodeError", "sqlite": "UnicodeEncodeError"},
    ),
    "text longer than its column": ("name", SECRET * 9, {"mysql": "DataError 1406"}),
    "a date past the year 9999": ("ts", "10000-01-01 00:00:00", {"mysql": "OperationalError 1292"}),
    "bytes that are not UTF-8": ("path", SECRET.encode() + b"\xff", {"mysql": "OperationalError 1366"}),
}


def refuse(monkeypatch: pytest.MonkeyPatch, hit_id: str, kind: str) -> None:
    """Alter one hit's Event row on its way to the database."""
    column, value, _raised = REFUSED[kind]
    index = ingest.EVENT_COLUMNS.index(column)
    real = ingest.event_row

    def altered(hit: dict[str, Any], **kwargs: Any) -> tuple:
        row = real(hit, **kwargs)
        return (*row[:index], value, *row[index + 1 :]) if hit["id"] == hit_id else row

    monkeypatch.setattr(ingest, "event_row", altered)


def explode(monkeypatch: pytest.MonkeyPatch, hit_id: str, error: Callable[[], Exception]) -> None:
    """(d) and outages: raise while this hit is processed."""
    real = ingest._process

    def process(batch: Any, hit: dict[str, Any], tz: Any) -> bool:
        if hit["id"] == hit_id:
            raise error()
        return real(batch, hit, tz)

    monkeypatch.setattr(ingest, "_process", process)


def db_error(cls: type[Exception], mysql_code: int, sqlite_code: int | None) -> Exception:
    """A database error as the current backend's driver raises it through Django."""
    if connection.vendor == "mysql":
        return cls(mysql_code, "simulated")
    cause = getattr(sqlite3, cls.__name__)("simulated")
    if sqlite_code is not None:
        cause.sqlite_errorcode = sqlite_code
    error = cls("simulated")
    error.__cause__ = cause
    return error


# Outages: the batch must be retried whole, never split or dropped.
OUTAGES: dict[str, Callable[[], Exception]] = {
    "deadlock": lambda: db_error(OperationalError, 1213, 5),  # SQLite: SQLITE_BUSY
    "lock wait timeout": lambda: db_error(OperationalError, 1205, 6),  # SQLite: SQLITE_LOCKED
    "connection lost": lambda: db_error(OperationalError, 2013, 10),  # SQLite: SQLITE_IOERR
    "server gone away": lambda: db_error(OperationalError, 2006, 14),  # SQLite: SQLITE_CANTOPEN
    "connection closed": lambda: db_error(InterfaceError, 0, None),
    "table missing (a deploy half done)": lambda: db_error(ProgrammingError, 1146, 1),
}


# -- assertions ----------------------------------------------------------------------------------


def assert_written(hits: list[dict[str, Any]]) -> None:
    """Exactly these hits are stored, each once, with their rollups (one visit per visitor)."""
    assert sorted(Event.objects.values_list("hit_id", flat=True)) == sorted(hit["id"] for hit in hits)
    pageviews = [hit for hit in hits if hit["n"] == "pageview"]
    assert (HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] or 0) == len(pageviews)
    visitors = {hit["vid"] for hit in hits}
    assert (HourlyTotal.objects.aggregate(n=Sum("visits"))["n"] or 0) == len(visitors)
    assert (HourlyTotal.objects.aggregate(n=Sum("new_visitors"))["n"] or 0) == len(visitors)
    assert Visit.objects.count() == len(visitors)
    pages = DailyBreakdown.objects.filter(dim="page").values_list("value", "pageviews")
    assert sorted(pages) == sorted((hit["p"], 1) for hit in pageviews)


def dropped_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if "dropped hit" in record.getMessage()]


def assert_no_content(caplog: pytest.LogCaptureFixture) -> None:
    text = caplog.text
    assert SECRET not in text
    for surrogate in SURROGATES:
        assert surrogate not in text
        assert ascii(surrogate)[1:-1] not in text
    for number in (123456789, 40001, 1795000000000, 2**63 + 12345, 2**64 + 12345, 10**20 + 12345, 2**31 + 12345):
        assert str(number) not in text


def assert_one_line_naming(caplog: pytest.LogCaptureFixture, hit_id: Any) -> None:
    (line,) = dropped_lines(caplog)
    if isinstance(hit_id, str) and hit_id:
        assert ascii(hit_id[:32]) in line
    assert_no_content(caplog)


# -- ingest_batch: the one place every path goes through --------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(INVALID))
def test_a_hit_breaking_the_contract_is_dropped_and_its_batch_mates_written(site, kind, caplog):
    goods = [good(site, n) for n in range(1, 5)]
    poison = poisoned(site, INVALID[kind])

    result = ingest_batch([goods[0], goods[1], poison, goods[2], goods[3]])

    assert (result.written, result.dropped, result.invalid, result.poison) == (4, 1, 1, 0)
    assert_written(goods)
    assert_one_line_naming(caplog, "poison-99")


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(INVALID_IDS))
def test_a_hit_with_a_bad_id_is_dropped_and_named_without_content(site, kind, caplog):
    goods = [good(site, n) for n in range(1, 4)]
    poison = poisoned(site, {}, hit_id=INVALID_IDS[kind])
    if poison["id"] is MISSING:
        del poison["id"]

    result = ingest_batch([*goods, poison])

    assert (result.written, result.invalid) == (3, 1)
    assert_written(goods)
    (line,) = dropped_lines(caplog)
    assert ("without an id" in line) == (not isinstance(poison.get("id"), str))
    assert "9" * 33 not in line  # a long id is cut
    assert_no_content(caplog)


@pytest.mark.django_db
@pytest.mark.parametrize("kind", list(NOT_HITS))
def test_something_that_is_not_a_hit_is_dropped(site, kind, caplog):
    goods = [good(site, n) for n in range(1, 3)]

    result = ingest_batch([goods[0], NOT_HITS[kind], goods[1]])

    assert (result.written, result.invalid) == (2, 1)
    assert_written(goods)
    assert_one_line_naming(caplog, None)


# Only what this run's database refuses (SQLite stores the last three as they are): chosen when the
# tests are collected, so no case is skipped.
REFUSED_HERE = [kind for kind, (_, _, raised) in REFUSED.items() if connection.vendor in raised]


@pytest.mark.django_db
@pytest.mark.parametrize("kind", REFUSED_HERE)
def test_a_hit_the_database_refuses_is_isolated_and_the_rest_written_once(site, kind, monkeypatch, caplog):
    refuse(monkeypatch, "poison-99", kind)
    goods = [good(site, n) for n in range(1, 10)]
    batch = [*goods[:4], poisoned(site, {}), *goods[4:]]

    result = ingest_batch(batch)

    assert (result.written, result.dropped, result.poison, result.invalid) == (9, 1, 1, 0)
    assert_written(goods)
    (line,) = dropped_lines(caplog)
    assert "'poison-99'" in line
    assert f"cannot be written ({REFUSED[kind][2][connection.vendor]})" in line
    assert_no_content(caplog)
    # Redelivered: the good hits count once, the poison is dropped again.
    again = ingest_batch(batch)
    assert (again.written, again.duplicates, again.poison) == (0, 9, 1)
    assert_written(goods)


@pytest.mark.django_db
def test_the_isolation_names_the_database_error_code_not_its_message(site, monkeypatch, caplog):
    refuse(monkeypatch, "poison-99", "NULL in a NOT NULL column")
    ingest_batch([good(site, 1), poisoned(site, {})])
    (line,) = dropped_lines(caplog)
    expected = "IntegrityError 1048" if connection.vendor == "mysql" else "IntegrityError 1299"
    assert expected in line
    assert "hostname" not in caplog.text  # the driver's message names the column and quotes values


@pytest.mark.django_db
@pytest.mark.parametrize("position", [0, 3, 7])
def test_several_poison_hits_in_one_batch_are_each_isolated(site, position, monkeypatch, caplog):
    goods = [good(site, n) for n in range(1, 9)]
    bad = ["poison-1", "poison-2"]
    real = ingest._process

    def process(batch: Any, hit: dict[str, Any], tz: Any) -> bool:
        if hit["id"] in bad:
            raise KeyError(SECRET)
        return real(batch, hit, tz)

    monkeypatch.setattr(ingest, "_process", process)
    batch = list(goods)
    batch.insert(position, poisoned(site, {}, hit_id="poison-1"))
    batch.append(poisoned(site, {"ts": goods[0]["ts"] - 1}, hit_id="poison-2"))

    result = ingest_batch(batch)

    assert (result.written, result.poison) == (8, 2)
    assert_written(goods)
    assert len(dropped_lines(caplog)) == 2
    assert_no_content(caplog)


@pytest.mark.django_db
def test_an_unexpected_exception_for_one_hit_drops_only_that_hit(site, monkeypatch, caplog):
    explode(monkeypatch, "poison-99", lambda: RuntimeError(SECRET))
    goods = [good(site, n) for n in range(1, 6)]

    result = ingest_batch([*goods[:2], poisoned(site, {}), *goods[2:]])

    assert (result.written, result.poison) == (5, 1)
    assert_written(goods)
    (line,) = dropped_lines(caplog)
    assert "RuntimeError" in line
    assert_no_content(caplog)


@pytest.mark.django_db
@pytest.mark.parametrize("outage", list(OUTAGES))
def test_an_outage_is_not_mistaken_for_a_poison_hit(site, outage, monkeypatch, caplog):
    explode(monkeypatch, "poison-99", OUTAGES[outage])
    goods = [good(site, n) for n in range(1, 6)]

    with pytest.raises((OperationalError, InterfaceError, ProgrammingError)):
        ingest_batch([*goods[:2], poisoned(site, {}), *goods[2:]])

    assert Event.objects.count() == 0  # the whole batch goes back, none of it dropped
    assert not HourlyTotal.objects.exists()
    assert dropped_lines(caplog) == []


@pytest.mark.django_db
def test_a_batch_without_poison_is_one_transaction_of_the_same_statements_whatever_its_size(site):
    ingest_batch([])  # the ban list is loaded (and then cached) on the first call

    def statements(hits: list[dict[str, Any]]) -> list[str]:
        with CaptureQueriesContext(connection) as queries:
            assert ingest_batch(hits).written == len(hits)
        return [query["sql"].split(" ", 1)[0] for query in queries.captured_queries]

    small = statements([good(site, n) for n in range(1, 4)])
    large = statements([good(site, n) for n in range(100, 160)])

    assert small == large
    assert small.count("SAVEPOINT") <= 1  # one atomic block (a savepoint inside the test's transaction)
    inserts = [q for q in large if q == "INSERT"]
    assert len(inserts) == 5  # events, visits, hourly, daily, monthly: one statement each
    assert len(large) <= 12


# -- the Celery task, eager ------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["lone surrogate in the name", "a timestamp as text"])
def test_the_eager_task_writes_the_batch_mates_of_an_invalid_hit(site, kind, caplog):
    from collector.tasks import ingest_hits

    goods = [good(site, n) for n in range(1, 4)]
    result = ingest_hits.apply(([goods[0], poisoned(site, INVALID[kind]), *goods[1:]],)).get()

    assert result["written"] == 3
    assert result["invalid"] == 1
    assert_written(goods)
    assert_one_line_naming(caplog, "poison-99")


@pytest.mark.django_db
def test_the_eager_task_writes_the_batch_mates_of_a_hit_the_database_refuses(site, monkeypatch, caplog):
    from collector.tasks import ingest_hits

    refuse(monkeypatch, "poison-99", "an integer past 64 bits")
    goods = [good(site, n) for n in range(1, 4)]
    result = ingest_hits.delay([goods[0], poisoned(site, {}), *goods[1:]]).get()  # always eager here

    assert (result["written"], result["poison"]) == (3, 1)
    assert_written(goods)
    assert_one_line_naming(caplog, "poison-99")


# -- inline mode: no broker, the request writes its own hits -----------------------------------------


@pytest.fixture
def two_sites(site: Any) -> tuple[Any, Any]:
    """A hit on example.com counts for both sites: one request, two queued hits."""
    from sites.models import Site

    other = Site.objects.create(domain="example.org", name="Other", timezone="UTC", allowed_hostnames="example.com")
    return site, other


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["refused", "unexpected"])
def test_inline_a_request_whose_hit_one_site_cannot_write_is_accepted_for_the_other(
    two_sites, browser_client, kind, monkeypatch, caplog
):
    site, other = two_sites
    real_process = ingest._process
    real_row = ingest.event_row

    def process(batch: Any, hit: dict[str, Any], tz: Any) -> bool:
        if kind == "unexpected" and hit["site"] == other.id:
            raise ValueError(SECRET)
        return real_process(batch, hit, tz)

    def row(hit: dict[str, Any], **kwargs: Any) -> tuple:
        values = real_row(hit, **kwargs)
        if kind == "refused" and hit["site"] == other.id:
            index = ingest.EVENT_COLUMNS.index("hostname")
            values = (*values[:index], None, *values[index + 1 :])  # NULL: refused by every database
        return values

    monkeypatch.setattr(ingest, "_process", process)
    monkeypatch.setattr(ingest, "event_row", row)

    body = {"n": "pageview", "u": "https://example.com/inline", "d": "example.com,example.org"}
    response = send(browser_client, body)

    assert response.status_code == 202
    assert list(Event.objects.values_list("site_id", "path")) == [(site.id, "/inline")]
    assert HourlyTotal.objects.get(site=site).pageviews == 1
    assert not HourlyTotal.objects.filter(site=other).exists()
    assert len(dropped_lines(caplog)) == 1
    assert_no_content(caplog)
    assert "203.0.113.10" not in caplog.text  # the client's address
    # The next request is written as usual.
    assert send(browser_client, {**body, "u": "https://example.com/next", "d": "example.com"}).status_code == 202
    assert Event.objects.filter(path="/next").count() == 1


@pytest.mark.django_db
def test_inline_an_outage_is_still_a_503(site, browser_client, monkeypatch):
    def down(hits: list[dict[str, Any]]) -> Any:
        raise OUTAGES["connection lost"]()

    monkeypatch.setattr(ingest, "_write", down)

    response = send(browser_client, {"n": "pageview", "u": "https://example.com/", "d": "example.com"})

    assert response.status_code == 503
    assert response.json() == {"error": "temporarily unavailable, retry later"}


@pytest.mark.django_db
@pytest.mark.parametrize("kind", ["lone surrogate in the path", "lone surrogate in a props value", "no timestamp"])
def test_inline_enqueue_writes_the_batch_mates_of_an_invalid_hit(site, kind, caplog):
    from collector.services import enqueue_hits

    goods = [good(site, n) for n in range(1, 3)]
    enqueue_hits([goods[0], poisoned(site, INVALID[kind]), goods[1]])  # no broker: runs here

    assert_written(goods)
    assert_one_line_naming(caplog, "poison-99")


# -- manage.py ingest_worker on the real Redis broker -----------------------------------------------


def post(client: Any, site: Any, path: str, ip: str) -> None:
    body = {"n": "pageview", "u": f"https://example.com{path}", "sid": site.public_id}
    assert send(client, body, REMOTE_ADDR=ip).status_code == 202


def queue_poison_message(redis_broker: Any, site: Any, poison_changes: dict[str, Any]) -> list[dict[str, Any]]:
    """Publish a real ingest_hits message whose batch is [good, poison, good] (hits shaped like the
    collector's, taken from a real queued message). Returns its good hits."""
    from collector.tasks import ingest_hits

    template = redis_broker()[0]["args"][0][0]
    mates = [
        {**template, "id": f"{900 + n:032x}", "p": f"/mate-{n}", "vid": template["vid"] + n, "ts": template["ts"] + n}
        for n in (1, 2)
    ]
    poison = {**template, "id": "poison-99", "vid": template["vid"] + 3, **poison_changes}
    ingest_hits.apply_async(([mates[0], poison, mates[1]],), argsrepr="<3 hits>")
    return mates


WORKER_POISONS = {
    "(a) lone surrogate in the name": {"n": SECRET + "\ud800"},
    "(a) lone surrogate in props": {"n": "Signup", "props": {"plan": SECRET + "\udfff"}},
    "(b) timestamp as text": {"ts": "1795000000000"},
    "(b) visitor id past 64 bits": {"vid": 2**63 + 12345},
    "(c) refused by the database": {},
    "(d) unexpected exception": {},
}


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("kind", list(WORKER_POISONS))
def test_the_worker_writes_the_batch_mates_acks_the_poison_and_consumes_the_next_batch(
    site, browser_client, redis_broker, kind, monkeypatch, caplog
):
    if kind.startswith("(c)"):
        refuse(monkeypatch, "poison-99", "NULL in a NOT NULL column")
    if kind.startswith("(d)"):
        explode(monkeypatch, "poison-99", lambda: AttributeError(SECRET))
    post(browser_client, site, "/first", "198.51.100.1")
    mates = queue_poison_message(redis_broker, site, WORKER_POISONS[kind])
    post(browser_client, site, "/last", "198.51.100.2")
    assert len(redis_broker()) == 3
    queued = {hit["id"]: hit for message in redis_broker() for hit in message["args"][0]}
    if "surrogate" in kind:  # the real message really carries a lone surrogate
        assert "\\ud800" in json.dumps(queued["poison-99"]) or "\\udfff" in json.dumps(queued["poison-99"])

    call_command("ingest_worker", "--once", "--wait", "0.5")

    assert redis_broker() == []  # every message acknowledged, the poison's too
    assert sorted(Event.objects.values_list("path", flat=True)) == sorted(["/first", "/last"] + [m["p"] for m in mates])
    assert HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] == 4
    assert Visit.objects.count() == 4
    assert_one_line_naming(caplog, "poison-99")
    assert "198.51.100" not in caplog.text

    post(browser_client, site, "/next", "198.51.100.3")
    call_command("ingest_worker", "--once", "--wait", "0.5")
    assert redis_broker() == []
    assert Event.objects.filter(path="/next").count() == 1
    assert HourlyTotal.objects.aggregate(n=Sum("pageviews"))["n"] == 5


class StopWorker(BaseException):
    """Ends the worker's endless loop from the test (a BaseException: the loop must not catch it)."""


@pytest.mark.django_db(transaction=True)
def test_the_running_worker_loop_survives_a_poison_batch(site, browser_client, redis_broker, monkeypatch, caplog):
    from collector.management.commands import ingest_worker

    post(browser_client, site, "/first", "198.51.100.1")
    queue_poison_message(redis_broker, site, {"p": "/" + SECRET + "\ud800"})
    real = ingest_worker.drain_once
    rounds: list[tuple[int, int]] = []

    def drain(consumer: Any, batch: int, wait: float) -> tuple[int, int]:
        if len(rounds) == 1:
            post(browser_client, site, "/while-running", "198.51.100.2")
        if len(rounds) == 2:
            raise StopWorker
        rounds.append(real(consumer, batch, wait))
        return rounds[-1]

    monkeypatch.setattr(ingest_worker, "drain_once", drain)
    with pytest.raises(StopWorker):
        call_command("ingest_worker", "--wait", "0.5")

    assert rounds == [(2, 3), (1, 1)]
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/first", "/mate-1", "/mate-2", "/while-running"]
    assert redis_broker() == []
    assert_one_line_naming(caplog, "poison-99")


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("outage", ["deadlock", "connection lost"])
def test_an_outage_inside_the_worker_still_puts_the_messages_back(
    site, browser_client, redis_broker, outage, monkeypatch
):
    from collector.management.commands.ingest_worker import BatchFailed

    post(browser_client, site, "/a", "198.51.100.1")
    post(browser_client, site, "/b", "198.51.100.2")
    first = redis_broker()[0]["args"][0][0]["id"]
    explode(monkeypatch, first, OUTAGES[outage])

    with pytest.raises(OperationalError):
        call_command("ingest_worker", "--once", "--wait", "0.5")
    assert len(redis_broker()) == 2  # requeued, nothing dropped
    assert Event.objects.count() == 0

    def broken() -> set[int]:
        raise RuntimeError(SECRET)

    monkeypatch.setattr(ingest, "banned_tokens", broken)
    with pytest.raises(BatchFailed):  # a bug for the whole batch: back to the queue as well
        call_command("ingest_worker", "--once", "--wait", "0.5")
    assert len(redis_broker()) == 2

    monkeypatch.undo()
    call_command("ingest_worker", "--once", "--wait", "0.5")
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/a", "/b"]
    assert redis_broker() == []

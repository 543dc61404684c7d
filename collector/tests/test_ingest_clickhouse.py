"""The ClickHouse write path (collector/ingest_clickhouse.py) on chdb, the engine in-process.

Every test reads what a reader of the store would: the `events` rows and each visit's final
state in `sessions` (FINAL: the cancel/state pairs collapsed), and checks the Django database
got no event, visit or rollup row.
"""

from __future__ import annotations

import random
import time
from typing import Any

import pytest
from django.core.management import call_command
from django.db import OperationalError

from collector import ingest_clickhouse
from collector.ingest import ingest_batch
from collector.models import DailyBreakdown, Event, HourlyTotal, MonthlyBreakdown, Visit
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db

MIN = 60_000
T0 = int(time.time() * 1000) - 6 * 3_600_000  # six hours ago
STATE = "visit_key, visitor_id, started, last_seen, pageviews, events, interactive, engaged_ms, entry_path, exit_path"


def hit(site: Any, number: int, *, at: int, vid: int = 1, **fields: Any) -> dict[str, Any]:
    """A hit as collector.services.build_messages makes it."""
    return {
        "id": f"{number:032x}",
        "site": site.id,
        "ts": T0 + at,
        "n": "pageview",
        "p": "/",
        "host": "example.com",
        "ref": "",
        "src": "",
        "b": "Chrome",
        "os": "Windows",
        "dev": "Desktop",
        "cc": "DE",
        "i": True,
        "vid": vid,
        "pvid": None,
        "tok": [number],
        **fields,
    }


def events(client: Any, columns: str = "hit_id, name, path") -> list[tuple]:
    return client.query(f"SELECT {columns} FROM events ORDER BY ts, hit_id").result_rows


def visits(client: Any) -> list[tuple]:
    """Each visit's state after collapsing (what the read side sees)."""
    return client.query(f"SELECT {STATE} FROM sessions FINAL WHERE sign = 1 ORDER BY started").result_rows


def totals(client: Any) -> tuple:
    """The additive sums the read side computes without FINAL (x * sign over unmerged rows)."""
    return client.query(
        "SELECT sum(sign), sum(sign * pageviews), sum(sign * events), sum(sign * engaged_ms) FROM sessions"
    ).result_rows[0]


def assert_nothing_in_the_django_database() -> None:
    for model in (Event, Visit, HourlyTotal, DailyBreakdown, MonthlyBreakdown):
        assert model.objects.count() == 0, model.__name__


def test_rows_carry_the_visit_attributes_and_props_as_arrays(clickhouse_store, site):
    batch = [
        hit(site, 1, at=0, p="/landing", ref="google.com", src="Google", utm=["news", "email", "spring", "c", "t"]),
        hit(site, 2, at=MIN, n="Signup", p="/signup", ref="example.org", src="example.org", v=1999,
            props={"plan": "pro", "seats": "3"}),
        hit(site, 3, at=2 * MIN, n="engagement", p="/signup", sd=80, e=15_000),
    ]  # fmt: skip
    result = ingest_batch(batch)
    assert (result.written, result.dropped) == (3, 0)

    rows = events(
        clickhouse_store,
        "name, path, referrer_source, utm_source, entry_path, visit_source, visit_referrer, visit_utm_source,"
        " visit_utm_medium, visit_utm_campaign, browser, os, device, country, value, prop_keys, prop_values,"
        " scroll_depth, engaged_ms",
    )
    visit = ("/landing", "Google", "google.com", "news", "email", "spring", "Chrome", "Windows", "Desktop", "DE")
    assert rows == [
        ("pageview", "/landing", "Google", "news", *visit, None, [], [], None, None),
        ("Signup", "/signup", "example.org", "", *visit, 1999, ["plan", "seats"], ["pro", "3"], None, None),
        ("engagement", "/signup", "", "", *visit, None, [], [], 80, 15_000),
    ]
    [(_key, vid, started, last_seen, pageviews, n_events, interactive, engaged, entry, exit_)] = visits(
        clickhouse_store
    )
    assert (vid, pageviews, n_events, interactive, engaged, entry, exit_) == (
        1,
        1,
        1,
        1,
        15_000,
        "/landing",
        "/landing",
    )
    assert (last_seen - started).total_seconds() == 120
    keys = {row[0] for row in events(clickhouse_store, "visit_key")}
    assert keys == {_key}
    assert_nothing_in_the_django_database()


def test_a_redelivered_batch_counts_once_and_so_does_an_overlapping_one(clickhouse_store, site):
    first = [hit(site, n, at=n * MIN, vid=n % 3) for n in range(10)]
    assert ingest_batch(first).written == 10
    before = (events(clickhouse_store), visits(clickhouse_store), totals(clickhouse_store))

    again = ingest_batch(first)  # the whole batch redelivered
    assert (again.written, again.duplicates) == (0, 10)
    assert (events(clickhouse_store), visits(clickhouse_store), totals(clickhouse_store)) == before

    overlap = first[5:] + [hit(site, n, at=n * MIN, vid=n % 3) for n in range(10, 15)]
    result = ingest_batch(overlap)
    assert (result.written, result.duplicates) == (5, 5)
    assert len(events(clickhouse_store)) == 15
    assert totals(clickhouse_store) == (3, 15, 0, 0)  # three visitors, one visit each, 15 pageviews
    assert sorted(v[4] for v in visits(clickhouse_store)) == [5, 5, 5]


def test_ids_with_quotes_backslashes_and_braces_are_written_and_deduplicated(clickhouse_store, site):
    """The ids go into the lookup's SQL text as one escaped literal: any text the message check
    lets through must round-trip, and find itself on redelivery."""
    odd = ["it's", "back\\slash", "\\'", "{ids:String}", "%(ids)s", "'); DROP TABLE events; --", "é-ü-日本", "a,b"]
    batch = [hit(site, n, at=n * MIN, vid=n, id=hit_id) for n, hit_id in enumerate(odd)]
    assert ingest_batch(batch).written == len(odd)
    assert sorted(row[0] for row in events(clickhouse_store)) == sorted(odd)
    again = ingest_batch(batch)
    assert (again.written, again.duplicates) == (0, len(odd))
    assert len(events(clickhouse_store)) == len(odd)


def test_a_redelivered_hit_of_a_visit_begun_under_yesterdays_id_counts_once(clickhouse_store, site):
    """The existence check is pruned by the batch's visitor ids; a hit that joined a visit under
    its previous id (pvid) is stored with that visit's visitor id, and must still be found."""
    first = hit(site, 1, at=0, vid=111)
    second = hit(site, 2, at=MIN, vid=222, pvid=111)  # the next UTC day's hash of the same visitor
    assert ingest_batch([first]).written == 1
    assert ingest_batch([second]).written == 1
    assert [row[0] for row in events(clickhouse_store, "visitor_id")] == [111, 111]
    again = ingest_batch([second])
    assert (again.written, again.duplicates) == (0, 1)
    assert totals(clickhouse_store) == (1, 2, 0, 0)


def test_a_visitors_other_stored_hits_in_the_batchs_time_range_are_not_duplicates(clickhouse_store, site):
    """The lookup returns every stored hit id of the batch's visitors in its time range; only the
    batch's own ids among them are duplicates."""
    assert ingest_batch([hit(site, n, at=n * MIN, vid=7) for n in (0, 2, 4)]).written == 3
    result = ingest_batch([hit(site, n, at=n * MIN, vid=7) for n in (1, 2, 3)])  # 2 is stored, 0 and 4 too
    assert (result.written, result.duplicates) == (2, 1)
    assert [row[0] for row in events(clickhouse_store)] == [f"{n:032x}" for n in range(5)]
    assert totals(clickhouse_store) == (1, 5, 0, 0)


def test_a_batch_of_many_visitors_is_looked_up_and_written(clickhouse_store, site):
    """15,000 visitors: their ids make the lookup ~0.3 MB, over ClickHouse's default
    max_query_size (256 KiB), which the worker raises to the statement's size."""
    batch = [hit(site, n, at=n, vid=-(10**18) - n) for n in range(15_000)]
    assert ingest_batch(batch).written == 15_000
    again = ingest_batch([*batch[-10:], hit(site, 15_000, at=15_000, vid=-(10**18) - 1)])
    assert (again.written, again.duplicates) == (1, 10)
    assert totals(clickhouse_store)[:2] == (15_000, 15_001)


def test_the_insert_column_types_are_the_tables(clickhouse_store):
    """The INSERTs name the column types (no DESCRIBE TABLE per INSERT): they must be the tables'."""
    for table, columns, types in (
        ("events", ingest_clickhouse.EVENT_COLUMNS, ingest_clickhouse.EVENT_TYPES),
        ("sessions", ingest_clickhouse.SESSION_COLUMNS, ingest_clickhouse.SESSION_TYPES),
    ):
        described = {row[0]: row[1] for row in clickhouse_store.query(f"DESCRIBE TABLE {table}").result_rows}
        assert dict(zip(columns, types, strict=True)) == {column: described[column] for column in columns}


def test_visits_continue_across_batches_and_worker_restarts(clickhouse_store, site):
    from analytics import store

    assert ingest_batch([hit(site, 1, at=0, p="/a", vid=11)]).written == 1
    store.reset()  # a new worker process: nothing but what ClickHouse holds
    clickhouse_store = store.client()
    ingest_batch([hit(site, 2, at=10 * MIN, p="/b", vid=11)])
    # across UTC midnight the visitor hash changes: the hit carries yesterday's as pvid
    ingest_batch([hit(site, 3, at=20 * MIN, p="/c", vid=12, pvid=11)])
    ingest_batch([hit(site, 4, at=5 * MIN, p="/early", vid=11)])  # out of order: not the exit page
    ingest_batch([hit(site, 5, at=21 * MIN, n="engagement", p="/c", vid=12, pvid=11, e=30_000)])
    ingest_batch([hit(site, 6, at=22 * MIN, n="Outbound", p="/c", vid=12, pvid=11, i=False)])
    # 31 minutes after the last hit: a new visit; an engagement report with no visit is dropped
    late = ingest_batch(
        [hit(site, 7, at=53 * MIN, p="/again", vid=12), hit(site, 8, at=200 * MIN, n="engagement", vid=99)]
    )
    assert (late.written, late.dropped) == (1, 1)

    first, second = visits(clickhouse_store)
    assert (first[1], *first[4:]) == (11, 4, 1, 0, 30_000, "/a", "/c")  # the Outbound event: not interactive
    assert (first[3] - first[2]).total_seconds() == 22 * 60  # started at /a, last seen at the Outbound event
    assert second[4:] == (1, 0, 0, 0, "/again", "/again")
    assert totals(clickhouse_store) == (2, 5, 1, 30_000)
    assert {row[0] for row in events(clickhouse_store, "visit_key")} == {first[0], second[0]}


def test_same_visits_as_the_sql_path(clickhouse_store, site, settings):
    """A random day of hits, in random batches, through both stores: the same visits."""
    rng = random.Random(11)
    hits = []
    for n in range(400):
        name = rng.choice(["pageview"] * 6 + ["Signup", "engagement"])
        vid = rng.randrange(25)
        extra = {"pvid": vid - 100} if rng.random() < 0.1 else {}
        if name == "engagement":
            extra["e"] = rng.randrange(60_000)
        if name == "Signup" and rng.random() < 0.5:
            extra["i"] = False
        hits.append(
            hit(site, n, at=rng.randrange(0, 5 * 3_600_000), vid=vid if rng.random() < 0.9 else vid - 100, n=name,
                p=f"/{rng.randrange(6)}", src=rng.choice(["", "Google", "Bing"]), **extra)
        )  # fmt: skip
    batches = []
    start = 0
    while start < len(hits):
        size = rng.randrange(1, 60)
        batches.append(hits[start : start + size])
        start += size

    for batch in batches:
        ingest_batch(batch)
    ch = sorted(visits(clickhouse_store))

    settings.ANALYTICS_URL = ""
    for batch in batches:
        ingest_batch(batch)
    columns = [c.strip() for c in STATE.split(",")]
    sql = sorted(
        tuple(v.replace(tzinfo=None) if hasattr(v, "tzinfo") else v for v in row)
        for row in Visit.objects.values_list(*columns)
    )
    assert len(ch) > 25
    assert [(*row[:6], int(row[6]), *row[7:]) for row in sql] == ch
    assert Event.objects.count() == len(events(clickhouse_store))


class Refused(Exception):
    pass


def test_a_hit_clickhouse_refuses_is_isolated_and_the_rest_written_once(clickhouse_store, site, monkeypatch, caplog):
    real = ingest_clickhouse._event_columns

    def columns(hits: list[dict[str, Any]], visits: list) -> list[list]:
        values = real(hits, visits)
        scroll_depth = ingest_clickhouse.EVENT_COLUMNS.index("scroll_depth")
        values[scroll_depth] = [
            40_000 if hit["id"] == f"{7:032x}" else depth  # past Int16: the driver's DataError
            for hit, depth in zip(hits, values[scroll_depth], strict=True)
        ]
        return values

    monkeypatch.setattr(ingest_clickhouse, "_event_columns", columns)
    batch = [hit(site, n, at=n * MIN, vid=n) for n in range(12)]
    result = ingest_batch(batch)
    assert (result.written, result.poison, result.dropped) == (11, 1, 1)
    assert [r[0] for r in events(clickhouse_store)] == [h["id"] for h in batch if h["id"] != f"{7:032x}"]
    assert totals(clickhouse_store) == (11, 11, 0, 0)
    dropped = [r.getMessage() for r in caplog.records if "dropped hit" in r.getMessage()]
    assert dropped == [f"ingest: dropped hit '{7:032x}': it cannot be written (ClickHouse DataError)"]
    assert "40000" not in caplog.text


def test_an_unreachable_clickhouse_propagates_and_writes_nothing(clickhouse_store, site, monkeypatch):
    from clickhouse_connect.driver.exceptions import OperationalError as ClickHouseDown

    def down(*args: Any, **kwargs: Any) -> Any:
        raise ClickHouseDown("Error HTTPConnectionPool(host='ch', port=8123): connection refused")

    monkeypatch.setattr(clickhouse_store, "insert", down)
    with pytest.raises(OperationalError):  # Django's: every caller retries it as an outage
        ingest_batch([hit(site, n, at=n * MIN) for n in range(4)])
    monkeypatch.undo()
    assert events(clickhouse_store) == []
    assert ingest_batch([hit(site, n, at=n * MIN) for n in range(4)]).written == 4  # the retry


def test_a_server_error_code_is_classified():
    from clickhouse_connect.driver.exceptions import DatabaseError

    from collector.write_errors import clickhouse_about_the_data

    assert clickhouse_about_the_data(DatabaseError("Code: 41. Cannot parse datetime", code=41))
    assert not clickhouse_about_the_data(DatabaseError("Code: 252. Too many parts", code=252))
    assert not clickhouse_about_the_data(DatabaseError("Code: 60. Unknown table", code=60))
    assert clickhouse_about_the_data(UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed"))


def test_inline_hits_from_the_browser_hold_no_ip_or_user_agent(clickhouse_store, site, browser_client):
    for i, path in enumerate(["/", "/pricing"]):
        body = {"n": "pageview", "u": f"https://example.com{path}?utm_source=mail", "sid": site.public_id,
                "r": "https://www.google.com/search?q=x"}  # fmt: skip
        assert send(browser_client, body, REMOTE_ADDR=f"203.0.113.{10 + i}").status_code == 202
    assert [(r[1], r[2]) for r in events(clickhouse_store)] == [("pageview", "/"), ("pageview", "/pricing")]
    for table in ("events", "sessions"):
        text = repr(clickhouse_store.query(f"SELECT * FROM {table}").result_rows)
        for secret in ("203.0.113", "Mozilla", CHROME_UA[:40]):
            assert secret not in text, (table, secret)
        assert "Google" in text  # what is kept instead: the source's name
        assert "Chrome" in text  # and the browser's family
    assert_nothing_in_the_django_database()


@pytest.mark.django_db(transaction=True)
def test_the_ingest_worker_writes_through_clickhouse(clickhouse_store, site, browser_client, redis_broker):
    for i in range(20):
        body = {"n": "pageview", "u": f"https://example.com/{i % 4}", "sid": site.public_id}
        assert send(browser_client, body, REMOTE_ADDR=f"198.51.100.{i}").status_code == 202
    assert len(redis_broker()) == 20
    call_command("ingest_worker", "--once", "--wait", "0.5")
    assert redis_broker() == []
    assert len(events(clickhouse_store)) == 20
    assert totals(clickhouse_store)[:2] == (20, 20)
    assert_nothing_in_the_django_database()


def test_deleting_a_site_deletes_its_events_and_visits_in_clickhouse(clickhouse_store, site):
    from dashboard import site_services
    from sites.models import Site

    other = Site.objects.create(domain="other.example", name="Other", timezone="UTC")
    days_ago = -3 * 24 * 60 * MIN
    ingest_batch([hit(site, 4, at=days_ago), hit(other, 5, at=days_ago, vid=2)])
    ingest_batch([hit(site, 1, at=0), hit(site, 2, at=MIN), hit(other, 3, at=0, vid=2)])
    assert len(events(clickhouse_store)) == 5
    call_command("rollup_clickhouse")  # three days ago is rolled up for both sites
    rollups = ("rollup_totals", "rollup_breakdowns", "rollup_months", "rollup_sites")

    def sites_in(table: str) -> list[tuple]:
        return clickhouse_store.query(f"SELECT DISTINCT site_id FROM {table} ORDER BY site_id").result_rows

    for table in ("rollup_totals", "rollup_breakdowns", "rollup_sites"):
        assert sites_in(table) == [(site.pk,), (other.pk,)], table

    site_services.delete_site(site)

    assert not Site.objects.filter(pk=site.pk).exists()
    assert sorted(row[0] for row in events(clickhouse_store, "site_id")) == [other.pk, other.pk]
    assert sites_in("sessions") == [(other.pk,)]
    for table in rollups:
        # rollup_months has a row only if the month of three days ago is over (a whole month)
        assert sites_in(table) in ([(other.pk,)], [] if table == "rollup_months" else None), table


def test_on_a_cluster_a_sites_rows_are_deleted_from_every_shards_local_tables(settings, monkeypatch):
    from analytics import store

    sent = []

    class Recorder:
        def command(self, sql: str, parameters: dict[str, Any]) -> None:
            sent.append((sql, parameters))

    settings.ANALYTICS_CLUSTER = "analytics"
    monkeypatch.setattr(store, "client", Recorder)
    store.delete_site_rows(7)
    assert sent == [
        (f"DELETE FROM `{table}_local` ON CLUSTER `analytics` WHERE site_id = %(site)s", {"site": 7})
        for table in ("events", "sessions", "rollup_totals", "rollup_breakdowns", "rollup_months", "rollup_sites")
    ]

"""MonthlyBreakdown: kept by ingest as the exact sum of DailyBreakdown per local month, and read
by unfiltered breakdowns for the whole months of a period (dashboard.selectors.backends.rollups._rollup_parts).

A scripted, seeded dataset in Europe/Berlin (DST ends Sun 2026-10-25) from mid-August to
mid-November 2026: visitors with 1-4 pageviews a visit, custom events with values, engagement
reports, visits across local midnight and month ends, sent in time-ordered batches (so visits
continue across batches and their exit pages move), some batches delivered twice.
"""

from __future__ import annotations

import datetime as dt
import random
import zoneinfo
from collections import defaultdict
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from collector.ingest import ingest_batch
from collector.models import DailyBreakdown, MonthlyBreakdown
from collector.rollups import BREAKDOWN_COLUMNS, backfill_monthly
from dashboard import selectors
from dashboard.selectors.backends import rollups
from dashboard.selectors.periods import Period

pytestmark = pytest.mark.django_db

BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
FIRST, LAST = dt.date(2026, 8, 20), dt.date(2026, 11, 12)
NOW = dt.datetime(2026, 11, 12, 15, 0, tzinfo=BERLIN)  # "today" of the site: the last day of the data
MATCH_ALL = "visit:entry_page!=/nowhere"  # every visit passes it: forces the raw path
PAGES = ["/", "/pricing", "/blog", "/docs", "/about", "/Blog", "/docs/a", "/docs/b"]
SOURCES = [("", ""), ("https://www.google.com/", "Google"), ("https://t.co/x", "Twitter")]


def _hits(site_id: int) -> list[dict[str, Any]]:
    rng = random.Random(20261126)
    hits: list[dict[str, Any]] = []
    day = FIRST
    n = 0
    while day <= LAST:
        for _visitor in range(rng.randint(2, 6)):
            # Late starts make visits cross local midnight (and month ends).
            hour = rng.choice([9, 13, 18, 23])
            start = dt.datetime(day.year, day.month, day.day, hour, rng.randint(0, 59), tzinfo=BERLIN)
            if start.date() == LAST and hour > 14:
                continue  # nothing after "now"
            vid = rng.randint(1, 40) * 1000 + day.toordinal() % 1000
            ref, src = rng.choice(SOURCES)
            when = start
            for i in range(rng.choice([1, 1, 2, 3, 4])):
                n += 1
                path = rng.choice(PAGES)
                hit: dict[str, Any] = {
                    "id": f"h{n}",
                    "site": site_id,
                    "ts": int(when.timestamp() * 1000),
                    "n": "pageview",
                    "p": path,
                    "vid": vid,
                    "b": rng.choice(["Chrome", "Firefox"]),
                    "os": "Linux",
                    "dev": "Desktop",
                    "cc": rng.choice(["DE", "FR", "US"]),
                }
                if i == 0 and src:
                    hit["ref"], hit["src"] = ref, src
                hits.append(hit)
                if rng.random() < 0.3:
                    n += 1
                    hits.append(
                        {**hit, "id": f"h{n}", "n": "Signup", "v": rng.choice([0, 1999]), "ts": hit["ts"] + 1000}
                    )
                if rng.random() < 0.3:
                    n += 1
                    hits.append({**hit, "id": f"h{n}", "n": "engagement", "e": 4000, "sd": 50, "ts": hit["ts"] + 2000})
                when += dt.timedelta(minutes=rng.choice([3, 11, 25]))
        day += dt.timedelta(days=1)
    hits.sort(key=lambda hit: hit["ts"])
    return hits


def _monthly_from_daily(site_id: int) -> dict[tuple, tuple]:
    sums: dict[tuple, list[int]] = defaultdict(lambda: [0] * len(BREAKDOWN_COLUMNS))
    for row in DailyBreakdown.objects.filter(site_id=site_id).values("dim", "day", "value_hash", *BREAKDOWN_COLUMNS):
        key = (row["dim"], row["day"].replace(day=1), row["value_hash"])
        for i, column in enumerate(BREAKDOWN_COLUMNS):
            sums[key][i] += row[column]
    return {key: tuple(values) for key, values in sums.items() if any(values)}


def _monthly(site_id: int) -> dict[tuple, tuple]:
    rows = MonthlyBreakdown.objects.filter(site_id=site_id).values_list(
        "dim", "month", "value_hash", *BREAKDOWN_COLUMNS
    )
    return {tuple(row[:3]): tuple(row[3:]) for row in rows if any(row[3:])}


def _labels_match(site_id: int) -> None:
    daily = dict(DailyBreakdown.objects.filter(site_id=site_id).values_list("value_hash", "value"))
    for value_hash, value in MonthlyBreakdown.objects.filter(site_id=site_id).values_list("value_hash", "value"):
        assert daily[value_hash] == value


@pytest.fixture
def berlin_site(db: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """monthly.example in Europe/Berlin with the seeded months of traffic above; its "now" is NOW."""
    from sites.models import Site

    monkeypatch.setattr("dashboard.selectors.periods.local_now", lambda tz: NOW.astimezone(tz))
    site = Site.objects.create(domain="monthly.example", timezone="Europe/Berlin")
    hits = _hits(site.id)
    for start in range(0, len(hits), 37):
        batch = hits[start : start + 37]
        ingest_batch(batch)
        if start // 37 % 5 == 0:
            ingest_batch(batch)  # redelivered: counts once
    return site


def test_ingest_keeps_monthly_the_sum_of_daily(berlin_site):
    monthly = _monthly(berlin_site.id)
    assert monthly == _monthly_from_daily(berlin_site.id)
    assert {month for _, month, _ in monthly} == {dt.date(2026, m, 1) for m in (8, 9, 10, 11)}
    _labels_match(berlin_site.id)


def test_exit_pages_moved_by_later_batches_stay_summed(berlin_site):
    """A visit's exit page moves when a later batch continues it: the old one gets -1, on
    both tables; a visit begun on Oct 31 and continued in November counts on October."""
    from collector.models import Visit

    moved = Visit.objects.filter(site=berlin_site, pageviews__gt=1).count()
    assert moved > 10
    exits = _monthly(berlin_site.id)
    daily = _monthly_from_daily(berlin_site.id)
    assert {k: v for k, v in exits.items() if k[0] == "exit_page"} == {
        k: v for k, v in daily.items() if k[0] == "exit_page"
    }
    total_exits = sum(v[1] for k, v in exits.items() if k[0] == "exit_page")
    assert total_exits == Visit.objects.filter(site=berlin_site).count()


def test_backfill_gives_the_same_rows(berlin_site):
    before = set(
        MonthlyBreakdown.objects.filter(site=berlin_site).values_list(
            "dim", "month", "value_hash", "value", *BREAKDOWN_COLUMNS
        )
    )
    MonthlyBreakdown.objects.all().delete()
    backfill_monthly()
    after = set(
        MonthlyBreakdown.objects.filter(site=berlin_site).values_list(
            "dim", "month", "value_hash", "value", *BREAKDOWN_COLUMNS
        )
    )
    assert after == before
    backfill_monthly()  # again: replaces, does not add
    assert MonthlyBreakdown.objects.filter(site=berlin_site).count() == len(before)


def test_backfill_of_an_empty_database(db):
    backfill_monthly()
    assert not MonthlyBreakdown.objects.exists()


def _daily_only(site: Any, period: Period, prop: selectors.Property, metrics: tuple[str, ...]) -> list[dict]:
    """The breakdown as summed from DailyBreakdown alone (the reference the monthly reads must match)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(rollups, "_rollup_parts", lambda period: (None, [(period.start, period.end)]))
        return selectors.breakdown(site, period, prop, metrics, limit=1000)


PERIODS = {
    "whole months": (dt.date(2026, 9, 1), dt.date(2026, 10, 31)),
    "head and tail": (dt.date(2026, 8, 25), dt.date(2026, 11, 3)),
    "inside one month": (dt.date(2026, 10, 3), dt.date(2026, 10, 29)),
    "month to date": (dt.date(2026, 11, 1), dt.date(2026, 11, 30)),
    "12mo": (dt.date(2025, 12, 1), dt.date(2026, 11, 30)),
    "head and month to date": (dt.date(2026, 9, 15), dt.date(2026, 11, 12)),
    "ends yesterday": (dt.date(2026, 10, 1), dt.date(2026, 11, 11)),
}


@pytest.mark.parametrize("name", PERIODS)
def test_breakdowns_match_raw_and_daily(berlin_site, name):
    start, end = PERIODS[name]
    period = Period(start, end, BERLIN)
    for prop in selectors.PROPERTIES.values():
        if prop.dim == "exit_page":
            metrics: tuple[str, ...] = ("visits",)
        else:
            metrics = prop.metrics
        rollup = selectors.breakdown(berlin_site, period, prop, metrics, limit=1000)
        assert rollup == _daily_only(berlin_site, period, prop, metrics), prop.name
        if prop.dim != "exit_page":  # the raw path answers exits with all metrics, ordered by visitors
            assert rollup == selectors.breakdown(berlin_site, period, prop, metrics, MATCH_ALL, limit=1000), prop.name
        # Pages of every size give the same rows as the whole list (ties at the boundary included).
        for limit in (1, 2, 3):
            paged = []
            for page in range(1, len(rollup) // limit + 2):
                paged += selectors.breakdown(berlin_site, period, prop, metrics, limit=limit, page=page)
            assert paged == rollup, (prop.name, limit)


def test_rollup_parts():
    parts = rollups._rollup_parts
    assert parts(Period(dt.date(2026, 9, 1), dt.date(2026, 10, 31), BERLIN)) == (
        (dt.date(2026, 9, 1), dt.date(2026, 10, 1)),
        [],
    )
    assert parts(Period(dt.date(2026, 8, 25), dt.date(2026, 11, 3), BERLIN)) == (
        (dt.date(2026, 9, 1), dt.date(2026, 10, 1)),
        [(dt.date(2026, 8, 25), dt.date(2026, 8, 31)), (dt.date(2026, 11, 1), dt.date(2026, 11, 3))],
    )
    assert parts(Period(dt.date(2026, 10, 3), dt.date(2026, 10, 29), BERLIN)) == (
        None,
        [(dt.date(2026, 10, 3), dt.date(2026, 10, 29))],
    )


def test_month_to_date_reads_the_monthly_row(berlin_site):
    # Today is Nov 12: November up to today (or later) is read whole from MonthlyBreakdown.
    assert rollups._rollup_parts(Period(dt.date(2026, 10, 20), dt.date(2026, 11, 12), BERLIN)) == (
        (dt.date(2026, 11, 1), dt.date(2026, 11, 1)),
        [(dt.date(2026, 10, 20), dt.date(2026, 10, 31))],
    )
    # Ending before today, it is not.
    assert rollups._rollup_parts(Period(dt.date(2026, 10, 20), dt.date(2026, 11, 11), BERLIN)) == (
        None,
        [(dt.date(2026, 10, 20), dt.date(2026, 11, 11))],
    )


def test_unfiltered_12mo_breakdown_reads_monthly(berlin_site):
    period = Period(dt.date(2025, 12, 1), dt.date(2026, 11, 30), BERLIN)
    with CaptureQueriesContext(connection) as queries:
        rows = selectors.breakdown(berlin_site, period, "event:page", ("visitors", "bounce_rate"), limit=10)
    assert rows
    sql = [query["sql"] for query in queries.captured_queries]
    assert any("collector_monthlybreakdown" in text for text in sql)
    assert not any("collector_dailybreakdown" in text for text in sql)  # 12 whole months (to date)
    assert not any("collector_event" in text or "collector_visit" in text for text in sql)

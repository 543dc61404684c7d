"""Stats selectors over traffic replayed through the real collector, checked number by number.

The traffic is testing.replay's (tabled above it in testing.py): a site in America/New_York,
Thursday 2026-11-19 and the scripted Friday 2026-11-20, and the weekend DST ends (Sat 2026-10-31,
Sun 2026-11-01, which has 25 hours).
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from dashboard import access, selectors
from dashboard.selectors.periods import Period, compared_periods, parse_period
from testing import FRIDAY, MATCH_ALL, NOV1, NY, OCT31, SATURDAY

# Every test reads stats through the selectors, on the SQL store or (make test-chdb) on
# ClickHouse, except those marked sql_store: they check which SQL tables a query reads.
pytestmark = [pytest.mark.django_db, pytest.mark.analytics]

ALL_METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events")


def day(date: dt.date) -> Period:
    return Period(date, date, NY)


def span(start: dt.date, end: dt.date) -> Period:
    return Period(start, end, NY)


WHOLE = span(dt.date(2026, 10, 1), dt.date(2026, 11, 30))


# -- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "date", "start", "end", "interval"),
    [
        ("day", "2026-11-20", "2026-11-20", "2026-11-20", "hour"),
        ("day", None, "2026-11-26", "2026-11-26", "hour"),
        ("7d", "2026-11-20", "2026-11-14", "2026-11-20", "date"),
        ("30d", None, "2026-10-28", "2026-11-26", "date"),
        ("month", "2026-02-10", "2026-02-01", "2026-02-28", "date"),
        ("6mo", "2026-11-20", "2026-06-01", "2026-11-30", "month"),
        ("12mo", "2026-03-05", "2025-04-01", "2026-03-31", "month"),
        ("custom", "2026-11-01,2026-11-03", "2026-11-01", "2026-11-03", "date"),
        ("custom", "2026-11-03,2026-11-03", "2026-11-03", "2026-11-03", "hour"),
        ("custom", "2026-01-01,2026-04-03", "2026-01-01", "2026-04-03", "date"),
        ("custom", "2026-01-01,2026-04-04", "2026-01-01", "2026-04-04", "month"),
    ],
)
def test_it_parses_periods_into_local_date_ranges(period, date, start, end, interval):
    parsed = parse_period(period, date, NY, today=dt.date(2026, 11, 26))
    assert (parsed.start.isoformat(), parsed.end.isoformat(), parsed.default_interval) == (start, end, interval)


@pytest.mark.parametrize(
    ("period", "date", "message"),
    [
        ("week", None, "unknown period 'week'"),
        ("day", "2026-13-01", "no such day"),
        ("day", "20261120", "expected YYYY-MM-DD"),
        ("day", "yesterday", "expected YYYY-MM-DD"),
        ("day", "0001-01-01", "year must be between"),
        ("custom", "2026-11-01", "needs date=YYYY-MM-DD,YYYY-MM-DD"),
        ("custom", "2026-11-05,2026-11-01", "end is before the start"),
        ("custom", "2000-01-01,2026-11-01", "at most"),
        ("7d", "2026-11-01,2026-11-05", "only valid with period 'custom'"),
    ],
)
def test_it_refuses_bad_periods_with_a_clear_message(period, date, message):
    with pytest.raises(ValueError, match=message):
        parse_period(period, date, NY, today=dt.date(2026, 11, 26))


def test_the_previous_period_has_the_same_length_and_ends_the_day_before():
    previous = parse_period("7d", "2026-11-20", NY).previous()
    assert (previous.start, previous.end) == (dt.date(2026, 11, 7), dt.date(2026, 11, 13))
    month = parse_period("month", "2026-03-15", NY).previous()
    assert (month.start, month.end) == (dt.date(2026, 1, 29), dt.date(2026, 2, 28))


def test_utc_bounds_follow_the_sites_zone_and_dst():
    assert day(NOV1).utc_bounds() == (
        dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 2, 5, tzinfo=dt.UTC),  # a 25-hour day
    )


def test_intervals_are_checked_against_the_period():
    assert day(FRIDAY).check_interval(None) == "hour"
    assert WHOLE.check_interval("month") == "month"
    with pytest.raises(ValueError, match="unknown interval 'week'"):
        WHOLE.check_interval("week")
    with pytest.raises(ValueError, match="limited to periods of 31 days"):
        WHOLE.check_interval("hour")


# -- aggregate --------------------------------------------------------------------------------


def test_aggregate_of_the_scripted_day(scripted_site):
    assert selectors.aggregate(scripted_site, day(FRIDAY), ALL_METRICS) == {
        "visitors": 4,
        "visits": 5,
        "pageviews": 7,
        "views_per_visit": 1.4,
        "bounce_rate": 40,
        "visit_duration": 672,
        "events": 2,
    }


def test_aggregate_sums_daily_unique_visitors_over_a_range(scripted_site):
    # Oct 31: 1, Nov 1: 1, Nov 19: 2, Nov 20: 4, Nov 21: 1 (C's second page, after local midnight)
    assert selectors.aggregate(scripted_site, WHOLE, ALL_METRICS) == {
        "visitors": 9,
        "visits": 10,
        "pageviews": 14,
        "views_per_visit": 1.4,
        "bounce_rate": 60,
        "visit_duration": 354,
        "events": 2,
    }


def test_aggregate_compared_with_the_previous_period(scripted_site):
    assert selectors.aggregate_compared(scripted_site, day(FRIDAY), ALL_METRICS) == {
        "visitors": {"value": 4, "change": 100},  # Thursday: 2
        "visits": {"value": 5, "change": 150},  # 2
        "pageviews": {"value": 7, "change": 133},  # 3: +133.3 %
        "views_per_visit": {"value": 1.4, "change": -7},  # 1.5: -6.7 %
        "bounce_rate": {"value": 40, "change": -10},  # 50 %: in percentage points, as Plausible
        "visit_duration": {"value": 672, "change": 647},  # 90 s: +646.7 %
        "events": {"value": 2, "change": None},  # 0: no percentage of nothing
    }


def friday_at(hh: int, mm: int) -> dt.datetime:
    return dt.datetime(2026, 11, 20, hh, mm, tzinfo=NY)


@pytest.mark.parametrize("filters", [None, MATCH_ALL], ids=["rollups", "raw"])
def test_a_day_in_progress_compares_with_the_same_hours_of_the_day_before(scripted_site, filters):
    # Friday at 09:30: Friday 00:00-09:59 (A's first visit: /, /pricing, Signup) against
    # Thursday 00:00-09:59 (E's bounce at 08:00), not against the whole of Thursday.
    compared = selectors.aggregate_compared(scripted_site, day(FRIDAY), ALL_METRICS, filters, now=friday_at(9, 30))
    assert compared == {
        "visitors": {"value": 1, "change": 0},  # whole Thursday: 2, which read -50 %
        "visits": {"value": 1, "change": 0},
        "pageviews": {"value": 2, "change": 100},  # 1
        "views_per_visit": {"value": 2.0, "change": 100},  # 1.0
        "bounce_rate": {"value": 0, "change": -100},  # 100 %
        "visit_duration": {"value": 360, "change": None},  # 0 s
        "events": {"value": 1, "change": None},
    }


def test_the_cut_is_at_the_end_of_the_current_local_hour(scripted_site):
    # At 10:00 B's 10:00 visit is in (and A's first visit); Thursday until 10:59 still has only E.
    at_ten = selectors.aggregate_compared(scripted_site, day(FRIDAY), ("visitors", "visits"), now=friday_at(10, 0))
    assert at_ten == {"visitors": {"value": 2, "change": 100}, "visits": {"value": 2, "change": 100}}
    # Thursday 15:00 F arrives; Friday until 15:59 has A (twice), B: 2 visitors, 3 visits against 2 and 2.
    at_three = selectors.aggregate_compared(scripted_site, day(FRIDAY), ("visitors", "visits"), now=friday_at(15, 59))
    assert at_three == {"visitors": {"value": 2, "change": 0}, "visits": {"value": 3, "change": 50}}


def test_periods_in_the_past_compare_whole(scripted_site):
    # Saturday morning: Friday is over, and compares whole with the whole of Thursday.
    saturday = dt.datetime(2026, 11, 21, 9, 30, tzinfo=NY)
    compared = selectors.aggregate_compared(scripted_site, day(FRIDAY), ("visitors", "pageviews"), now=saturday)
    assert compared == {"visitors": {"value": 4, "change": 100}, "pageviews": {"value": 7, "change": 133}}
    # A 7-day period ending Friday, seen on Friday: both weeks are cut at 09:59 of their last day.
    week = span(dt.date(2026, 11, 14), FRIDAY)
    current, previous = compared_periods(week, friday_at(9, 30))
    assert (current.start, current.end, current.cutoff) == (dt.date(2026, 11, 14), FRIDAY, (FRIDAY, 9))
    assert (previous.start, previous.end, previous.cutoff) == (
        dt.date(2026, 11, 7),
        dt.date(2026, 11, 13),
        (dt.date(2026, 11, 13), 9),
    )
    assert compared_periods(week, saturday) == (week, week.previous())


def test_this_month_on_the_3rd_compares_with_the_same_elapsed_time_before(db):
    from sites.models import Site

    site = Site.objects.create(domain="flat.example", timezone="UTC")
    utc = zoneinfo.ZoneInfo("UTC")
    now = dt.datetime(2026, 11, 3, 10, 15, tzinfo=utc)
    # The same traffic every hour, from October 1st up to now (the current hour included):
    # one pageview of a new visitor at ten past.
    moment, hits = dt.datetime(2026, 10, 1, 0, 10, tzinfo=utc), []
    while moment <= now:
        hits.append((moment, len(hits) + 1, "/"))
        moment += dt.timedelta(hours=1)
    _ingest(site, hits)
    month = parse_period("month", None, utc, today=now.date())
    current, previous = compared_periods(month, now)
    # November (30 days) until the 3rd 10:59 against the 30 days before it (Oct 2-31) until Oct 4th 10:59.
    assert current.cutoff == (dt.date(2026, 11, 3), 10)
    assert (previous.start, previous.end, previous.cutoff) == (
        dt.date(2026, 10, 2),
        dt.date(2026, 10, 31),
        (dt.date(2026, 10, 4), 10),
    )
    compared = selectors.aggregate_compared(site, month, ("visitors", "pageviews"), now=now)
    # 2 days and 11 hours each: 59 hours of 1. Compared whole with Oct 2-31 (720) it read -92 %.
    assert compared == {"visitors": {"value": 59, "change": 0}, "pageviews": {"value": 59, "change": 0}}
    today = parse_period("day", None, utc, today=now.date())
    assert selectors.aggregate_compared(site, today, ("visitors",), now=now) == {"visitors": {"value": 11, "change": 0}}


def test_a_cutoff_ends_the_utc_bounds_at_the_end_of_its_local_hour():
    # Sunday Nov 1st (25 hours): the cut after 01:xx takes both 1 o'clock hours (as HourlyTotal does).
    assert Period(NOV1, NOV1, NY, cutoff=(NOV1, 1)).utc_bounds() == (
        dt.datetime(2026, 11, 1, 4, tzinfo=dt.UTC),
        dt.datetime(2026, 11, 1, 7, tzinfo=dt.UTC),
    )
    assert Period(NOV1, NOV1, NY, cutoff=(NOV1, 23)).utc_bounds() == day(NOV1).utc_bounds()
    with pytest.raises(ValueError, match="outside the period"):
        Period(NOV1, NOV1, NY, cutoff=(FRIDAY, 1))


def test_aggregate_of_an_empty_period_is_zeros(scripted_site):
    assert selectors.aggregate(scripted_site, day(dt.date(2026, 12, 25)), ALL_METRICS) == dict.fromkeys(ALL_METRICS, 0)
    assert (
        selectors.aggregate(scripted_site, day(dt.date(2026, 12, 25)), ALL_METRICS, "event:page==/")["bounce_rate"] == 0
    )


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        # A's first visit, on its /pricing hits: the pageview and the Signup (engagement is not an event).
        ("visit:source==Google;event:page==/pricing", (1, 1, 1, 1.0, 0, 360, 1)),
        ("visit:source==Google", (1, 1, 2, 2.0, 0, 360, 1)),
        # Visits with a hit on /: A's first, B's, C's and D's.
        ("event:page==/", (4, 4, 4, 1.0, 25, 840, 1)),
        # OR inside a value; C's /docs is on Saturday, outside the day.
        ("visit:source==Google|Twitter", (2, 2, 3, 1.5, 0, 780, 1)),
        ("visit:country!=US", (2, 2, 3, 1.5, 50, 900, 1)),
        ("visit:source==Direct / None", (1, 1, 2, 2.0, 0, 600, 0)),
        ("event:name==Signup", (1, 1, 0, 0.0, 0, 360, 1)),
        ("visit:utm_campaign==fall;visit:device==Mobile", (1, 1, 1, 1.0, 100, 1200, 1)),
        ("visit:browser==Opera", (0, 0, 0, 0.0, 0, 0, 0)),
        # A's first visit left on /pricing (after the Signup): its pageviews of / and /pricing.
        ("visit:exit_page==/pricing", (1, 1, 2, 2.0, 0, 360, 1)),
        ("visit:exit_page==/pricing;visit:source==Google", (1, 1, 2, 2.0, 0, 360, 1)),
        ("visit:exit_page==/pricing;visit:source!=Google", (0, 0, 0, 0.0, 0, 0, 0)),
        (MATCH_ALL, (4, 5, 7, 1.4, 40, 672, 2)),  # the raw path agrees with the rollups
    ],
)
def test_filtered_aggregates(scripted_site, filters, expected):
    assert tuple(selectors.aggregate(scripted_site, day(FRIDAY), ALL_METRICS, filters).values()) == expected


def test_filters_count_each_visit_on_the_day_it_started(scripted_site):
    # C's visit started Friday: on Saturday its /docs pageview and C count, the visit does not.
    saturday = selectors.aggregate(
        scripted_site, day(SATURDAY), ("visitors", "visits", "pageviews"), "visit:source==Twitter"
    )
    assert saturday == {"visitors": 1, "visits": 0, "pageviews": 1}
    # The same through the exit page (on Visit only) and the entry page (on the events as well).
    for filters in ("visit:exit_page==/docs", "visit:entry_page==/", "visit:exit_page==/docs;visit:entry_page==/"):
        assert (
            selectors.aggregate(scripted_site, day(SATURDAY), ("visitors", "visits", "pageviews"), filters) == saturday
        )
    assert selectors.aggregate(scripted_site, day(SATURDAY), ("visitors", "visits", "pageviews")) == saturday


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("visit:sauce==Google", "unknown filter property 'visit:sauce'"),
        ("visit:source=Google", "expected property==value"),
        ("visit:source==", "every value must be"),
        ("visit:source==Google|", "every value must be"),
    ],
)
def test_bad_filters_are_refused(scripted_site, text, message):
    with pytest.raises(ValueError, match=message):
        selectors.aggregate(scripted_site, day(FRIDAY), None, text)


def test_an_escaped_bar_is_part_of_the_value():
    [item] = selectors.parse_filters(r"event:name==A\|B|C")
    assert item.values == ("A|B", "C")


def test_unknown_metrics_are_refused(scripted_site):
    with pytest.raises(ValueError, match="unknown metric 'sessions'"):
        selectors.aggregate(scripted_site, day(FRIDAY), "visitors,sessions")


# -- timeseries -------------------------------------------------------------------------------


def test_hourly_timeseries_of_a_day_in_local_hours(scripted_site):
    rows = selectors.timeseries(scripted_site, day(FRIDAY), ("visitors", "visits", "pageviews", "bounce_rate"))
    assert len(rows) == 24
    assert rows[0] == {"date": "2026-11-20 00:00:00", "visitors": 0, "visits": 0, "pageviews": 0, "bounce_rate": 0}
    busy = {row["date"][11:13]: tuple(row.values())[1:] for row in rows if any(tuple(row.values())[1:])}
    assert busy == {
        "09": (1, 1, 2, 0),
        "10": (1, 1, 1, 100),
        "14": (1, 1, 1, 100),
        "18": (1, 1, 1, 0),
        "19": (1, 0, 1, 0),  # D's second page: 00:05 UTC on Saturday, 19:05 in New York
        "23": (1, 1, 1, 0),
    }
    assert (
        selectors.timeseries(scripted_site, day(FRIDAY), ("visitors", "visits", "pageviews", "bounce_rate"), MATCH_ALL)
        == rows
    )


def test_hourly_timeseries_of_the_day_dst_ends(scripted_site):
    for filters in (None, "event:page==/blog"):
        rows = selectors.timeseries(scripted_site, day(NOV1), ("visitors", "visits", "pageviews"), filters, "hour")
        assert len(rows) == 24
        # 01:30 EDT and 01:30 EST: one wall-clock hour, two visits of the same visitor.
        assert rows[1] == {"date": "2026-11-01 01:00:00", "visitors": 1, "visits": 2, "pageviews": 2}
        assert sum(row["pageviews"] for row in rows) == 2


def test_daily_timeseries_puts_hits_on_their_local_day(scripted_site):
    for filters in (None, "visit:country==FR|US"):
        rows = selectors.timeseries(scripted_site, span(OCT31, NOV1), ("visitors", "pageviews"), filters, "date")
        # G's hit is at 03:30 UTC on November 1st: October 31st in New York.
        assert rows == [
            {"date": "2026-10-31", "visitors": 1, "pageviews": 1},
            {"date": "2026-11-01", "visitors": 1, "pageviews": 2},
        ]


def test_daily_timeseries_has_every_day(scripted_site):
    rows = selectors.timeseries(
        scripted_site, parse_period("7d", "2026-11-21", NY), ("visitors", "pageviews", "events")
    )
    assert rows == [
        {"date": "2026-11-15", "visitors": 0, "pageviews": 0, "events": 0},
        {"date": "2026-11-16", "visitors": 0, "pageviews": 0, "events": 0},
        {"date": "2026-11-17", "visitors": 0, "pageviews": 0, "events": 0},
        {"date": "2026-11-18", "visitors": 0, "pageviews": 0, "events": 0},
        {"date": "2026-11-19", "visitors": 2, "pageviews": 3, "events": 0},
        {"date": "2026-11-20", "visitors": 4, "pageviews": 7, "events": 2},
        {"date": "2026-11-21", "visitors": 1, "pageviews": 1, "events": 0},
    ]


def test_monthly_timeseries(scripted_site):
    expected = [
        {"date": "2026-09-01", "visitors": 0, "visits": 0, "pageviews": 0, "views_per_visit": 0.0},
        {"date": "2026-10-01", "visitors": 1, "visits": 1, "pageviews": 1, "views_per_visit": 1.0},
        {"date": "2026-11-01", "visitors": 8, "visits": 9, "pageviews": 13, "views_per_visit": 1.44},
    ]
    period = span(dt.date(2026, 9, 15), dt.date(2026, 11, 30))  # a bucket per month touched
    metrics = ("visitors", "visits", "pageviews", "views_per_visit")
    assert selectors.timeseries(scripted_site, period, metrics, None, "month") == expected
    assert selectors.timeseries(scripted_site, period, metrics, MATCH_ALL, "month") == expected
    assert selectors.timeseries(scripted_site, parse_period("12mo", "2026-11-20", NY), ("visitors",))[-2:] == [
        {"date": "2026-10-01", "visitors": 1},
        {"date": "2026-11-01", "visitors": 8},
    ]


# -- breakdown --------------------------------------------------------------------------------


def test_page_breakdown(scripted_site):
    rows = selectors.breakdown(
        scripted_site, day(FRIDAY), "event:page", ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
    )
    assert rows == [
        # bounce rate and duration of the visits that entered on the page
        {"page": "/", "visitors": 4, "visits": 4, "pageviews": 4, "bounce_rate": 25, "visit_duration": 840},
        {"page": "/about", "visitors": 1, "visits": 1, "pageviews": 1, "bounce_rate": 0, "visit_duration": 0},
        {"page": "/blog", "visitors": 1, "visits": 1, "pageviews": 1, "bounce_rate": 100, "visit_duration": 0},
        {"page": "/pricing", "visitors": 1, "visits": 1, "pageviews": 1, "bounce_rate": 0, "visit_duration": 0},
    ]


def test_breakdown_pages(scripted_site):
    pages = [
        [row["page"] for row in selectors.breakdown(scripted_site, day(FRIDAY), "event:page", None, None, 2, number)]
        for number in (1, 2, 3)
    ]
    assert pages == [["/", "/about"], ["/blog", "/pricing"], []]
    filtered = [
        [
            row["page"]
            for row in selectors.breakdown(scripted_site, day(FRIDAY), "event:page", None, MATCH_ALL, 3, number)
        ]
        for number in (1, 2)
    ]
    assert filtered == [["/", "/about", "/blog"], ["/pricing"]]


@pytest.mark.parametrize(
    ("prop", "expected"),
    [
        (
            "visit:source",
            [("Direct / None", 1, 1), ("Google", 1, 1), ("Hacker News", 1, 1), ("Twitter", 1, 1), ("newsletter", 1, 1)],
        ),
        ("visit:referrer", [("google.com", 1, 1), ("news.ycombinator.com/item", 1, 1), ("t.co/abc", 1, 1)]),
        ("visit:entry_page", [("/", 4, 4), ("/blog", 1, 1)]),
        ("visit:exit_page", [("/", 1, 1), ("/about", 1, 1), ("/blog", 1, 1), ("/docs", 1, 1), ("/pricing", 1, 1)]),
        ("visit:utm_source", [("newsletter", 1, 1)]),
        ("visit:utm_medium", [("email", 1, 1)]),
        ("visit:utm_campaign", [("fall", 1, 1)]),
        ("visit:browser", [("Chrome", 2, 3), ("Firefox", 1, 1), ("Safari", 1, 1)]),
        ("visit:os", [("Windows", 2, 3), ("Linux", 1, 1), ("iOS", 1, 1)]),
        ("visit:device", [("Desktop", 2, 3), ("Laptop", 1, 1), ("Mobile", 1, 1)]),
        ("visit:country", [("US", 2, 3), ("DE", 1, 1), ("FR", 1, 1)]),
        ("event:name", [("Outbound Link: Click", 1, 1), ("Signup", 1, 1)]),
    ],
)
def test_breakdowns_of_the_scripted_day(scripted_site, prop, expected):
    short = selectors.PROPERTIES[prop].short
    rows = selectors.breakdown(scripted_site, day(FRIDAY), prop, ("visitors", "visits"))
    assert [(row[short], row["visitors"], row["visits"]) for row in rows] == expected


def test_visit_breakdowns_carry_every_metric(scripted_site):
    rows = selectors.breakdown(scripted_site, day(FRIDAY), "visit:browser", ALL_METRICS)
    assert rows[0] == {
        "browser": "Chrome",
        "visitors": 2,
        "visits": 3,
        "pageviews": 5,
        "views_per_visit": 1.67,
        "bounce_rate": 33,
        "visit_duration": 320,
        "events": 1,
    }
    events = selectors.breakdown(scripted_site, day(FRIDAY), "event:name", ("visitors", "events"))
    assert events == [
        {"name": "Outbound Link: Click", "visitors": 1, "events": 1},
        {"name": "Signup", "visitors": 1, "events": 1},
    ]


@pytest.mark.parametrize(("prop", "metric"), [("event:name", "bounce_rate"), ("event:page", "events")])
def test_metrics_a_property_cannot_answer_are_refused(scripted_site, prop, metric):
    with pytest.raises(ValueError, match=f"metric '{metric}' is not available with property '{prop}'"):
        selectors.breakdown(scripted_site, day(FRIDAY), prop, ("visitors", metric))


def test_unknown_property_is_refused(scripted_site):
    with pytest.raises(ValueError, match="unknown property 'visit:city'"):
        selectors.breakdown(scripted_site, day(FRIDAY), "visit:city")


@pytest.mark.parametrize("prop", list(selectors.PROPERTIES))
@pytest.mark.parametrize("period", [day(FRIDAY), WHOLE], ids=["friday", "two-months"])
def test_the_raw_path_agrees_with_the_rollups(scripted_site, prop, period):
    metrics = selectors.PROPERTIES[prop].metrics
    rollups = selectors.breakdown(scripted_site, period, prop, metrics)
    assert rollups
    assert selectors.breakdown(scripted_site, period, prop, metrics, MATCH_ALL) == rollups


def test_filtered_breakdowns(scripted_site):
    rows = selectors.breakdown(
        scripted_site,
        day(FRIDAY),
        "event:page",
        ("visitors", "pageviews", "bounce_rate", "visit_duration"),
        "visit:source==Google",
    )
    assert rows == [
        {"page": "/", "visitors": 1, "pageviews": 1, "bounce_rate": 0, "visit_duration": 360},
        {"page": "/pricing", "visitors": 1, "pageviews": 1, "bounce_rate": 0, "visit_duration": 0},
    ]
    browsers = selectors.breakdown(scripted_site, day(FRIDAY), "visit:browser", ("visitors", "visits"), "event:page==/")
    assert browsers == [
        {"browser": "Chrome", "visitors": 2, "visits": 2},  # A's first visit and D's
        {"browser": "Firefox", "visitors": 1, "visits": 1},
        {"browser": "Safari", "visitors": 1, "visits": 1},
    ]
    combined = selectors.breakdown(
        scripted_site, WHOLE, "visit:country", ("visitors", "pageviews"), "visit:browser==Chrome;event:page==/"
    )
    assert combined == [
        {"country": "US", "visitors": 2, "pageviews": 3},
        {"country": "FR", "visitors": 1, "pageviews": 2},
    ]


def test_event_values_of_the_scripted_day(scripted_site):
    expected = [
        {"name": "Outbound Link: Click", "visitors": 1, "events": 1, "value": 0},
        {"name": "Signup", "visitors": 1, "events": 1, "value": 1999},  # $19.99 in cents
    ]
    metrics = ("visitors", "events", selectors.VALUE)
    assert selectors.breakdown(scripted_site, day(FRIDAY), "event:name", metrics) == expected
    assert selectors.breakdown(scripted_site, day(FRIDAY), "event:name", metrics, MATCH_ALL) == expected
    assert (
        selectors.breakdown(scripted_site, day(FRIDAY), "event:name", metrics, "visit:source==Google") == expected[1:]
    )


def test_event_values_sum_over_days_on_both_paths(db):
    from collector.ingest import ingest_batch
    from sites.models import Site

    site = Site.objects.create(domain="shop.example", timezone="UTC")
    first, second = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC), dt.datetime(2026, 11, 21, 12, tzinfo=dt.UTC)
    minute = dt.timedelta(minutes=1)
    hits = [  # (time, visitor, name, path, value in cents)
        (first, 1, "pageview", "/", None),
        (first + minute, 1, "Purchase", "/", 1000),
        (first + 2 * minute, 1, "Purchase", "/", 250),
        (first, 2, "pageview", "/pricing", None),
        (first + minute, 2, "Purchase", "/pricing", 500),
        (first + 2 * minute, 2, "Signup", "/pricing", None),
        (second, 3, "pageview", "/", None),
        (second + minute, 3, "Purchase", "/", 300),
    ]
    batch = [
        {"id": f"{n:032x}", "site": site.id, "ts": int(ts.timestamp() * 1000), "n": name, "p": path, "vid": vid}
        | ({"v": value} if value is not None else {})
        for n, (ts, vid, name, path, value) in enumerate(hits, start=1)
    ]
    assert ingest_batch(batch).written == len(batch)
    both_days = Period(first.date(), second.date(), dt.UTC)
    metrics = ("visitors", "events", "value")
    expected = [
        {"name": "Purchase", "visitors": 3, "events": 4, "value": 2050},  # daily uniques: 2 + 1
        {"name": "Signup", "visitors": 1, "events": 1, "value": 0},
    ]
    assert selectors.breakdown(site, both_days, "event:name", metrics) == expected
    assert selectors.breakdown(site, both_days, "event:name", metrics, MATCH_ALL) == expected
    assert selectors.breakdown(site, both_days, "event:name", metrics, "visit:entry_page==/") == [
        {"name": "Purchase", "visitors": 2, "events": 3, "value": 1550},  # 1000 + 250 + 300
    ]
    assert selectors.breakdown(site, both_days, "event:name", metrics, "event:page==/pricing") == [
        {"name": "Purchase", "visitors": 1, "events": 1, "value": 500},
        {"name": "Signup", "visitors": 1, "events": 1, "value": 0},
    ]


def test_the_value_metric_is_internal(scripted_site):
    name = selectors.PROPERTIES["event:name"]
    assert selectors.check_metrics("visitors,value", name, internal=True) == ("visitors", "value")
    with pytest.raises(ValueError, match="unknown metric 'value'"):
        selectors.check_metrics("visitors,value", name)  # the Stats API's check
    with pytest.raises(ValueError, match="unknown metric 'value'"):
        selectors.breakdown(scripted_site, day(FRIDAY), "visit:browser", ("visitors", "value"))
    with pytest.raises(ValueError, match="unknown metric 'value'"):
        selectors.aggregate(scripted_site, day(FRIDAY), ("value",))


# -- what the queries read --------------------------------------------------------------------


@pytest.mark.sql_store
def test_unfiltered_queries_read_only_the_rollups(scripted_site):
    with CaptureQueriesContext(connection) as queries:
        selectors.aggregate(scripted_site, WHOLE, ALL_METRICS)
        selectors.aggregate_compared(scripted_site, day(FRIDAY), ALL_METRICS)
        for interval in ("date", "month"):
            selectors.timeseries(scripted_site, WHOLE, ALL_METRICS, None, interval)
        selectors.timeseries(scripted_site, day(FRIDAY), ALL_METRICS, None, "hour")
        for prop in selectors.PROPERTIES.values():
            if prop.name != "visit:exit_page":
                selectors.breakdown(scripted_site, WHOLE, prop, prop.metrics)
    sql = [query["sql"] for query in queries.captured_queries]
    assert len(sql) >= 15
    assert not [text for text in sql if "collector_event" in text or "collector_visit" in text]
    rollups = ("collector_hourlytotal", "collector_dailybreakdown", "collector_monthlybreakdown")
    assert all(any(table in text for table in rollups) for text in sql)


@pytest.mark.sql_store
def test_exit_pages_read_visits_never_events(scripted_site):
    with CaptureQueriesContext(connection) as queries:
        selectors.breakdown(scripted_site, WHOLE, "visit:exit_page", ALL_METRICS)
    assert [q for q in queries.captured_queries if "collector_event" in q["sql"]] == []


@pytest.mark.sql_store
def test_filtered_queries_read_events_of_the_period_only(scripted_site):
    with CaptureQueriesContext(connection) as queries:
        selectors.aggregate(scripted_site, day(FRIDAY), ("visitors", "pageviews"), "visit:source==Google")
    [query] = queries.captured_queries
    assert "collector_event" in query["sql"]
    # A visit filter reads the visit's attributes each event carries: no lookup of the visits.
    assert "collector_visit" not in query["sql"]
    assert "collector_hourlytotal" not in query["sql"]


def test_an_exit_page_filter_looks_the_visits_up(scripted_site):
    with CaptureQueriesContext(connection) as queries:
        selectors.aggregate(scripted_site, day(FRIDAY), ("visitors", "pageviews"), "visit:exit_page==/pricing")
    [query] = queries.captured_queries
    assert "collector_event" in query["sql"]
    assert "collector_visit" in query["sql"]  # the exit page is not known when an event is written


# -- realtime and access ----------------------------------------------------------------------


def test_realtime_counts_distinct_visitors_of_the_last_five_minutes(scripted_site):
    def at(hh: int, mm: int) -> dt.datetime:
        return dt.datetime(2026, 11, 20, hh, mm, tzinfo=NY)

    assert selectors.realtime_visitors(scripted_site, now=at(9, 6)) == 1  # A's three hits
    assert selectors.realtime_visitors(scripted_site, now=at(10, 4)) == 1  # B
    assert selectors.realtime_visitors(scripted_site, now=at(10, 7)) == 0
    _ingest(scripted_site, [(at(9, 4), 42, "/")])  # someone else, during A's visit
    assert selectors.realtime_visitors(scripted_site, now=at(9, 6)) == 2  # A and them


def test_only_the_owner_can_view_a_site(scripted_site, django_user_model):
    owner, other = django_user_model.objects.create_user("owner"), django_user_model.objects.create_user("other")
    scripted_site.owner = owner
    scripted_site.save()
    assert access.user_can_view(owner, scripted_site)
    assert not access.user_can_view(other, scripted_site)
    assert not access.user_can_view(None, scripted_site)


def test_sites_are_found_by_domain_or_public_id(scripted_site):
    assert access.site_by_id("example.com") == scripted_site
    assert access.site_by_id("https://www.example.com/") == scripted_site
    assert access.site_by_id(scripted_site.public_id) == scripted_site
    assert access.site_by_id("example.org") is None
    assert access.site_by_id("") is None


# -- exactness --------------------------------------------------------------------------------


def _ingest(site: Any, hits: list[tuple[dt.datetime, int, str]]) -> None:
    from collector.ingest import ingest_batch

    batch = [
        {"id": f"{n:032x}", "site": site.id, "ts": int(ts.timestamp() * 1000), "n": "pageview", "p": path, "vid": vid}
        for n, (ts, vid, path) in enumerate(hits, start=1)
    ]
    assert ingest_batch(batch).written == len(batch)


def test_values_differing_only_in_case_stay_apart(db):
    from sites.models import Site

    site = Site.objects.create(domain="case.example", timezone="UTC")
    noon = dt.datetime(2026, 11, 20, 12, tzinfo=dt.UTC)
    _ingest(site, [(noon, 1, "/About"), (noon, 2, "/about"), (noon, 3, "/about")])
    period = Period(noon.date(), noon.date(), dt.UTC)
    expected = [{"page": "/about", "visitors": 2}, {"page": "/About", "visitors": 1}]
    assert selectors.breakdown(site, period, "event:page") == expected
    assert selectors.breakdown(site, period, "event:page", None, "visit:entry_page!=/nowhere") == expected
    assert selectors.aggregate(site, period, ("visitors",), "event:page==/About") == {"visitors": 1}
    assert selectors.aggregate(site, period, ("visitors",), "event:page!=/About") == {"visitors": 2}


def test_a_half_hour_time_zone(db):
    from sites.models import Site

    site = Site.objects.create(domain="kolkata.example", timezone="Asia/Kolkata")  # UTC+05:30
    utc = dt.datetime(2026, 11, 20, 18, tzinfo=dt.UTC)
    _ingest(site, [(utc + dt.timedelta(minutes=20), 1, "/"), (utc + dt.timedelta(minutes=40), 2, "/")])
    tz = zoneinfo.ZoneInfo("Asia/Kolkata")
    two_days = Period(dt.date(2026, 11, 20), dt.date(2026, 11, 21), tz)
    for filters in (None, "event:page==/"):
        # 23:50 on the 20th and 00:10 on the 21st in Kolkata
        assert selectors.timeseries(site, two_days, ("visitors",), filters, "date") == [
            {"date": "2026-11-20", "visitors": 1},
            {"date": "2026-11-21", "visitors": 1},
        ]
        hours = selectors.timeseries(site, two_days, ("pageviews",), filters, "hour")
        assert [row["date"] for row in hours if row["pageviews"]] == ["2026-11-20 23:00:00", "2026-11-21 00:00:00"]

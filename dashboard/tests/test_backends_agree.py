"""The two stats backends give identical answers: the same random hits are written by the SQL
writer (collector tables and rollups) and by the ClickHouse writer (`events`, `sessions` on
chdb), then every selector is asked the same questions of both.

The traffic: four sites (UTC, Europe/Berlin, America/New_York, Asia/Kolkata: a half-hour
offset) over three stretches of 2026 that hold the DST changes of Berlin (29 March, 25 October)
and New York (8 March, 1 November); visitors whose visits span local hours, local midnight and
UTC midnight (a new daily visitor id, the previous one continuing the visit), pageviews, custom
events with and without values and interactivity, engagement reports, referrers, UTM tags,
empty values, paths differing only in case or accents; written in batches in time order (so a
visit goes on across batches: ClickHouse's `sessions` gets cancel and state rows), one batch
delivered twice.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import zoneinfo
from collections.abc import Iterator
from typing import Any

import pytest

from analytics import store
from collector.ingest import hash64, ingest_batch
from dashboard import selectors
from dashboard.selectors.backends import clickhouse as clickhouse_backend
from dashboard.selectors.backends import get_backend
from dashboard.selectors.periods import Period
from sites.models import Site

pytestmark = pytest.mark.django_db

ZONES = ("UTC", "Europe/Berlin", "America/New_York", "Asia/Kolkata")
STRETCHES = (
    (dt.date(2026, 3, 6), dt.date(2026, 3, 10)),
    (dt.date(2026, 3, 27), dt.date(2026, 3, 31)),
    (dt.date(2026, 10, 22), dt.date(2026, 11, 3)),
)
PATHS = ("/", "/pricing", "/blog", "/blog/a", "/Blog", "/café", "/cafe", "/docs", "/about", "/a b")
REFERRERS = (
    ("", ""),
    ("", ""),
    ("https://www.google.com/", "Google"),
    ("https://t.co/xyz", "Twitter"),
    ("https://news.ycombinator.com/item?id=1", "Hacker News"),
    ("https://example.org/page", "example.org"),
)
UTMS = (None, None, None, ["newsletter", "email", "fall", "", ""], ["google", "cpc", "brand", "ad1", "kw"])
AGENTS = (
    ("Chrome", "Windows", "Desktop"),
    ("Firefox", "Linux", "Desktop"),
    ("Safari", "iOS", "Mobile"),
    ("", "", ""),
)
COUNTRIES = ("US", "DE", "FR", "IN", "")
EVENTS = ("Signup", "Outbound Link: Click", "Download", "signup")


def _hits(site: Site, rng: random.Random) -> list[dict[str, Any]]:
    """Random hits of one site, as collector.services.build_messages makes them."""
    tz = zoneinfo.ZoneInfo(site.timezone)
    hits: list[dict[str, Any]] = []
    for visitor in range(45):
        browser, os_name, device = rng.choice(AGENTS)
        country = rng.choice(COUNTRIES)
        first, last = rng.choice(STRETCHES)
        day = first + dt.timedelta(days=rng.randrange((last - first).days + 1))
        # Starts bunched near local midnight and the DST hours now and then.
        hour = rng.choice((0, 1, 2, 3, 23, rng.randrange(24)))
        moment = dt.datetime(day.year, day.month, day.day, hour, rng.randrange(60), tzinfo=tz).astimezone(dt.UTC)
        for _visit in range(rng.randint(1, 3)):
            referrer, source = rng.choice(REFERRERS)
            utm = rng.choice(UTMS)
            path = rng.choice(PATHS)
            for position in range(rng.randint(1, 6)):
                if position:
                    moment += dt.timedelta(minutes=rng.randint(0, 25), seconds=rng.randint(0, 59))
                    moment += dt.timedelta(milliseconds=rng.randint(0, 999))
                kind = "pageview" if position == 0 else rng.choice(("pageview", "pageview", "event", "engagement"))
                if kind != "engagement":
                    path = rng.choice(PATHS)
                utc_day = moment.date()
                hit: dict[str, Any] = {
                    "id": f"{site.pk}-{len(hits)}-{rng.getrandbits(40):x}",
                    "site": site.pk,
                    "ts": int(moment.timestamp() * 1000),
                    "n": {"pageview": "pageview", "engagement": "engagement"}.get(kind) or rng.choice(EVENTS),
                    "p": path,
                    "host": "example.com",
                    "b": browser,
                    "os": os_name,
                    "dev": device,
                    "cc": country,
                    "i": rng.random() < 0.7,
                    # The visitor's id of the UTC day, and of the day before (continues a visit).
                    "vid": hash64(f"{site.pk}|{visitor}|{utc_day}"),
                    "pvid": hash64(f"{site.pk}|{visitor}|{utc_day - dt.timedelta(days=1)}"),
                }
                if kind == "engagement":
                    hit["e"] = rng.randint(0, 600_000)
                    hit["sd"] = rng.randint(0, 100)
                elif position == 0 and source:
                    hit["ref"], hit["src"] = referrer, source
                if kind != "engagement" and position == 0 and utm:
                    hit["utm"] = utm
                    if not source:
                        hit["src"] = utm[0]
                if kind == "event" and rng.random() < 0.6:
                    hit["v"] = rng.randint(-500, 50_000)
                if kind == "event" and rng.random() < 0.3:
                    hit["props"] = {"plan": rng.choice(("free", "pro", ""))}
                hits.append(hit)
            # The next visit after the timeout, now and then across local midnight.
            moment += dt.timedelta(minutes=rng.choice((31, 45, 90, 300, 700)))
    return hits


@pytest.fixture
def both_stores(clickhouse_store: Any, settings: Any) -> Any:
    """Four sites whose random hits went through both writers; yields (sites, use) where
    use("sql" | "clickhouse") switches the store that ingest and the selectors use."""
    clickhouse_url = settings.ANALYTICS_URL

    def use(kind: str) -> None:
        settings.ANALYTICS_URL = clickhouse_url if kind == "clickhouse" else ""

    rng = random.Random(20261101)
    sites = [Site.objects.create(domain=f"site{i}.example", timezone=zone) for i, zone in enumerate(ZONES)]
    hits = sorted((hit for site in sites for hit in _hits(site, rng)), key=lambda hit: hit["ts"])
    batches = [hits[start : start + 97] for start in range(0, len(hits), 97)]
    batches.insert(5, batches[3])  # redelivered: counts once
    for kind in ("sql", "clickhouse"):
        use(kind)
        for batch in batches:
            ingest_batch(batch)
    return sites, use


def _periods(tz: zoneinfo.ZoneInfo) -> list[Period]:
    day = dt.date
    return [
        Period(day(2026, 3, 8), day(2026, 3, 8), tz),  # New York springs forward
        Period(day(2026, 3, 29), day(2026, 3, 29), tz),  # Berlin springs forward
        Period(day(2026, 10, 25), day(2026, 10, 25), tz),  # Berlin falls back
        Period(day(2026, 11, 1), day(2026, 11, 1), tz),  # New York falls back
        Period(day(2026, 10, 22), day(2026, 11, 3), tz),
        Period(day(2026, 3, 1), day(2026, 11, 30), tz),
        Period(day(2026, 10, 25), day(2026, 10, 25), tz, cutoff=(day(2026, 10, 25), 2)),
        Period(day(2026, 10, 30), day(2026, 11, 2), tz, cutoff=(day(2026, 11, 1), 1)),
    ]


FILTERS = (
    "",
    "visit:source==Google",
    "visit:source==Direct / None",
    "visit:source!=Google|Twitter",
    "event:page==/pricing|/café",
    "event:page!=/",
    "event:name==Signup|signup",
    "visit:entry_page==/blog",
    "visit:exit_page==/|/docs",
    "visit:exit_page!=/blog",
    "visit:browser==(not set)",
    "visit:country!=US;visit:device==Desktop",
    "visit:utm_source==newsletter",
    "visit:referrer==https://t.co/xyz",
    "visit:os==iOS;event:page==/blog|/Blog",
    "visit:utm_medium!=cpc;event:name!=Download;visit:exit_page!=/about",
)


def _answers(site: Site, filters: str, *, full: bool) -> dict[str, Any]:
    """The selectors' answers for this site and filter, as plain data. `full`: in every period,
    with breakdowns' second pages and (in two periods) each breakdown sorted by each of its
    metrics alone; else four periods (two DST days, a fortnight, nine months) and each
    breakdown's first page with all its metrics. (Every statement costs a few milliseconds on
    chdb: the whole grid for every filter and site would take minutes.)"""
    found: dict[str, Any] = {}
    periods = _periods(site.tz)
    for number, period in enumerate(periods if full else [periods[i] for i in (2, 3, 4, 5)]):
        key = f"{period.start}..{period.end} cut {period.cutoff}"
        found[f"aggregate {key}"] = selectors.aggregate(site, period, selectors.METRICS, filters)
        now = dt.datetime.combine(period.end, dt.time(2, 30), tzinfo=site.tz)
        found[f"compared {key}"] = selectors.aggregate_compared(site, period, selectors.METRICS, filters, now=now)
        for interval in ("hour", "date", "month"):
            if interval == "hour" and period.days > 31:
                continue
            found[f"{interval} {key}"] = selectors.timeseries(site, period, selectors.METRICS, filters, interval)
        for prop in selectors.PROPERTIES.values():
            metrics = (*prop.metrics, *prop.internal_metrics)
            found[f"{prop.name} {key}"] = selectors.breakdown(site, period, prop, metrics, filters)
            if not full:
                continue
            found[f"{prop.name} page 2 {key}"] = selectors.breakdown(site, period, prop, metrics, filters, 3, 2)
            for metric in prop.metrics if number in (3, 5) else ():
                found[f"{prop.name} {metric} {key}"] = selectors.breakdown(site, period, prop, (metric,), filters, 4)
    return found


def _compare(use: Any, site: Site, filters: str, *, full: bool) -> int:
    use("sql")
    expected = _answers(site, filters, full=full)
    use("clickhouse")
    assert isinstance(get_backend(), clickhouse_backend.ClickHouseBackend)
    answers = _answers(site, filters, full=full)
    for key, value in expected.items():
        assert answers[key] == value, f"{site.timezone} {filters!r} {key}"
    return len(answers)


def test_every_selector_answers_the_same_on_both_backends_unfiltered(both_stores):
    sites, use = both_stores
    for site in sites:
        _compare(use, site, "", full=site.timezone in ("Europe/Berlin", "America/New_York"))
    # Not an empty comparison: the traffic is there.
    assert selectors.aggregate(sites[1], _periods(sites[1].tz)[5], "visitors,events")["events"] > 20


@pytest.mark.parametrize("filters", FILTERS[1:])
def test_every_selector_answers_the_same_on_both_backends_filtered(both_stores, filters):
    sites, use = both_stores
    number = FILTERS.index(filters)
    site = sites[number % 4]  # each filter on one site: all of them on every site would take minutes
    _compare(use, site, filters, full=number == 1)
    assert selectors.aggregate(site, _periods(site.tz)[5], "visitors,visits", filters)["visits"] > 0  # matched some


def test_realtime_and_has_data_agree(both_stores):
    sites, use = both_stores
    empty = Site.objects.create(domain="empty.example", timezone="UTC")
    moments = [dt.datetime(2026, 10, 25, hour, minute, tzinfo=dt.UTC) for hour in range(24) for minute in (0, 20, 40)]
    for kind in ("sql", "clickhouse"):
        use(kind)
        answers = [[selectors.realtime_visitors(site, now) for now in moments] for site in sites]
        data = [selectors.has_data(site) for site in [*sites, empty]]
        if kind == "sql":
            expected_answers, expected_data = answers, data
    assert answers == expected_answers
    assert data == expected_data == [True, True, True, True, False]
    assert sum(map(sum, answers)) > 0


# -- ClickHouse rollups (dashboard/selectors/backends/clickhouse_rollups.py) --------------------


def _roll(now: dt.datetime) -> dict[int, Any]:
    from dashboard.selectors.backends import clickhouse_rollups

    return clickhouse_rollups.roll_all(now)


def test_rolled_up_days_answer_alone_as_the_raw_tables_did(both_stores, clickhouse_store):
    sites, use = both_stores
    use("clickhouse")
    written = _roll(dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    assert all(days is not None and days[1] >= dt.date(2026, 12, 3) for days in written.values())
    for table in ("rollup_totals", "rollup_breakdowns", "rollup_months"):
        assert clickhouse_store.command(f"SELECT count() FROM {table}") > 0, table
    # The raw rows gone, every unfiltered answer must now come from the rollups alone.
    for table in ("events", "sessions"):
        clickhouse_store.command(f"TRUNCATE TABLE {table}")
    for site in sites:
        _compare(use, site, "", full=True)
    use("clickhouse")
    assert selectors.aggregate(sites[1], _periods(sites[1].tz)[5], "visitors,events")["events"] > 20
    # A filter reads the raw tables (now empty): the rollups hold no filtered numbers.
    assert selectors.aggregate(sites[1], _periods(sites[1].tz)[5], "visitors", "visit:source==Google")["visitors"] == 0


def test_partly_rolled_up_periods_add_the_raw_days_after_them(both_stores):
    sites, use = both_stores
    use("clickhouse")
    # In the middle of the autumn stretch: rolled up to 26 or 27 October, raw after.
    _roll(dt.datetime(2026, 10, 28, 12, tzinfo=dt.UTC))
    for site in sites:
        _compare(use, site, "", full=site.timezone in ("Europe/Berlin", "America/New_York"))
    _compare(use, sites[2], "visit:source==Google", full=False)


def _hit(site: Site, when: dt.datetime, path: str, number: int) -> dict[str, Any]:
    return {
        "id": f"late-{site.pk}-{number}",
        "site": site.pk,
        "ts": int(when.timestamp() * 1000),
        "n": "pageview",
        "p": path,
        "host": "example.com",
        "b": "Firefox",
        "os": "Linux",
        "dev": "Desktop",
        "cc": "DE",
        "i": True,
        "vid": hash64(f"late|{when.date()}"),
        "pvid": hash64(f"late|{when.date() - dt.timedelta(days=1)}"),
    }


def test_a_late_hit_is_rolled_up_again_and_an_exit_page_it_moved_away_from_goes(clickhouse_store, settings):
    site = Site.objects.create(domain="late.example", timezone="UTC")
    clickhouse_url = settings.ANALYTICS_URL
    start = dt.datetime(2026, 11, 10, 10, tzinfo=dt.UTC)
    first = [_hit(site, start, "/only-exit", 1)]
    late = [_hit(site, start + dt.timedelta(minutes=5), "/after", 2)]
    now = dt.datetime(2026, 11, 11, 3, tzinfo=dt.UTC)  # 10 November is complete
    period = Period(dt.date(2026, 11, 10), dt.date(2026, 11, 10), dt.UTC)
    answers = {}
    for kind in ("sql", "clickhouse"):
        settings.ANALYTICS_URL = clickhouse_url if kind == "clickhouse" else ""
        ingest_batch(first)
        if kind == "clickhouse":
            assert _roll(now) == {site.pk: (dt.date(2026, 11, 10), dt.date(2026, 11, 10))}
            exits = selectors.breakdown(site, period, "visit:exit_page", "visits")
            assert exits == [{"exit_page": "/only-exit", "visits": 1}]
        ingest_batch(late)  # the queue was behind: the day was rolled up before this hit came
        if kind == "clickhouse":
            _roll(now)  # the next scheduled run rolls the last days up again
        answers[kind] = [
            selectors.breakdown(site, period, "visit:exit_page", "visits"),
            selectors.breakdown(site, period, "event:page", ("visitors", "pageviews", "bounce_rate")),
            selectors.aggregate(site, period, selectors.METRICS),
        ]
    assert answers["clickhouse"] == answers["sql"]
    assert answers["sql"][0] == [{"exit_page": "/after", "visits": 1}]
    assert answers["sql"][2]["pageviews"] == 2


def test_a_new_time_zone_rolls_every_day_up_again(both_stores, clickhouse_store):
    sites, use = both_stores
    site = sites[1]
    use("clickhouse")
    _roll(dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    site.timezone = "Asia/Tokyo"
    site.save()
    site.refresh_from_db()
    # The rollups hold Berlin's days: until they are rolled up again, the raw tables answer.
    # (The Django database's rollups keep the zone they were written in: not compared here.)
    expected = _answers(site, "", full=False)
    assert expected[f"aggregate {_periods(site.tz)[5].start}..{_periods(site.tz)[5].end} cut None"]["visitors"] > 0
    _roll(dt.datetime(2026, 12, 5, tzinfo=dt.UTC))
    zones = clickhouse_store.query(f"SELECT tz FROM rollup_sites FINAL WHERE site_id = {site.pk}").result_rows
    assert zones == [("Asia/Tokyo",)]
    clickhouse_store.command(f"DELETE FROM events WHERE site_id = {site.pk}")
    clickhouse_store.command(f"DELETE FROM sessions WHERE site_id = {site.pk}")
    assert _answers(site, "", full=False) == expected  # Tokyo's days, from the rollups alone


def test_rollup_command(clickhouse_store, settings, capsys):
    from django.core.management import call_command

    site = Site.objects.create(domain="cmd.example", timezone="UTC")
    ingest_batch([_hit(site, dt.datetime(2026, 11, 10, 10, tzinfo=dt.UTC), "/", 1)])
    call_command("rollup_clickhouse")
    assert f"site {site.pk}: rolled up 2026-11-10 to " in capsys.readouterr().out
    settings.ANALYTICS_URL = ""
    call_command("rollup_clickhouse")
    assert "nothing to roll up" in capsys.readouterr().out


def test_a_long_history_is_rolled_up_a_chunk_at_a_time_across_runs(both_stores, clickhouse_store):
    from dashboard.selectors.backends import clickhouse_rollups

    sites, use = both_stores
    site = sites[2]  # New York
    use("clickhouse")
    now = dt.datetime(2026, 12, 5, tzinfo=dt.UTC)
    # A run out of time stops after its first chunk and records how far it got.
    assert clickhouse_rollups.roll_site(site, now, deadline=0) == (dt.date(2026, 3, 6), dt.date(2026, 4, 5))
    assert clickhouse_rollups.rolled_state(site) == ("America/New_York", dt.date(2026, 4, 5))
    _compare(use, site, "", full=False)  # rollups to 5 April, the raw tables after
    use("clickhouse")
    runs = 1
    while clickhouse_rollups.roll_site(site, now, deadline=0)[1] < dt.date(2026, 12, 3):
        runs += 1
    assert runs == 9  # 6 March to 3 December, 31 days a chunk, each run going back 2 days
    clickhouse_store.command(f"DELETE FROM events WHERE site_id = {site.pk}")
    clickhouse_store.command(f"DELETE FROM sessions WHERE site_id = {site.pk}")
    _compare(use, site, "", full=False)


def _page(site: Site, period: Period, filters: str) -> list[Any]:
    """What a dashboard page shows: headline metrics, the chart, every panel's rows (build_report,
    which announces its reads: on ClickHouse they are one statement, selectors.prefetch)."""
    from dashboard.report_data import build_report

    now = dt.datetime.combine(period.end, dt.time(2, 30), tzinfo=site.tz)
    report = build_report(site, period, filters, now=now)
    panels = [(p.key, p.more, [(r.label, r.numbers, r.bar) for r in p.rows]) for p in report.panels]
    return [[(m.key, m.value, m.change) for m in report.metrics], report.series, report.previous_series, panels]


@pytest.mark.parametrize("rolled_until", [None, dt.datetime(2026, 10, 28, 12, tzinfo=dt.UTC)])
def test_dashboard_pages_agree_raw_rolled_up_and_filtered(both_stores, rolled_until):
    sites, use = both_stores
    if rolled_until is not None:
        use("clickhouse")
        _roll(rolled_until)  # rolled up to 26-27 October: the fortnight below is half rolled up
    for site in sites[1:3]:
        for period in (_periods(site.tz)[4], _periods(site.tz)[5]):
            for filters in ("", "visit:source==Google", "event:page==/pricing|/café;visit:exit_page!=/blog"):
                use("sql")
                expected = _page(site, period, filters)
                use("clickhouse")
                with _statements() as statements:
                    assert _page(site, period, filters) == expected, f"{site.timezone} {period} {filters!r}"
                # The whole page is one statement (the headline's series, the chart's, the 13
                # panels and the page panel's entry numbers), besides the rollups' state.
                assert [sql for sql in statements if "rollup_sites" not in sql] == [statements[-1]]
    assert any(rows for _, _, rows in expected[3])  # the panels had rows to compare


@contextlib.contextmanager
def _statements() -> Iterator[list[str]]:
    """The SQL of every statement the ClickHouse store is sent in the block."""
    client = store.client()
    sent: list[str] = []
    query = client.query

    def counted(sql: str, *args: Any, **kwargs: Any) -> Any:
        sent.append(sql)
        return query(sql, *args, **kwargs)

    client.query = counted
    try:
        yield sent
    finally:
        del client.query


def test_a_late_hit_that_moves_a_visits_start_to_the_day_before_counts_it_there_only(clickhouse_store, settings):
    # 23:10 UTC is 00:10 on 11 November in Berlin; a late hit of the same visitor at 23:55 the
    # day before joins the visit and moves its start (and its local day) back. On ClickHouse the
    # visit's first state row stays in the store until a merge collapses it with its cancel row.
    site = Site.objects.create(domain="moved.example", timezone="Europe/Berlin")
    first = dt.datetime(2026, 11, 10, 23, 10, tzinfo=dt.UTC)
    hits = [_hit(site, first, "/first", 1), _hit(site, first - dt.timedelta(minutes=15), "/late", 2)]
    tz = site.tz
    days = {
        "10 Nov": Period(dt.date(2026, 11, 10), dt.date(2026, 11, 10), tz),
        "11 Nov": Period(dt.date(2026, 11, 11), dt.date(2026, 11, 11), tz),
        "both": Period(dt.date(2026, 11, 10), dt.date(2026, 11, 11), tz),
    }
    for hit in hits:
        ingest_batch([hit])  # two batches: the second moves the stored visit
    answers = {
        name: [
            selectors.breakdown(site, period, "visit:country", ("visitors", "visits", "bounce_rate")),
            selectors.breakdown(site, period, "visit:entry_page", "visitors"),
            selectors.aggregate(site, period, ("visitors", "visits", "pageviews")),
        ]
        for name, period in days.items()
    }
    assert answers["11 Nov"][:2] == [[], []]
    assert answers["11 Nov"][2] == {"visitors": 1, "visits": 0, "pageviews": 1}
    assert answers["10 Nov"][0] == [{"country": "DE", "visitors": 1, "visits": 1, "bounce_rate": 0}]
    assert answers["10 Nov"][1] == [{"entry_page": "/first", "visitors": 1}]
    assert answers["both"][0] == [{"country": "DE", "visitors": 1, "visits": 1, "bounce_rate": 0}]

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

import datetime as dt
import random
import zoneinfo
from typing import Any

import pytest

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

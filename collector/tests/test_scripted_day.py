"""A scripted day of traffic through the real collector view and ingest, checked number by number.

Site in America/New_York (UTC-5 in November). Four visitors on Friday 2026-11-20 (testing.VISITORS
A to D, the Friday of testing.replay's traffic), local time:

A (desktop Chrome, US)   09:00 /  from Google -> 09:02 /pricing (SPA) -> 09:05 Signup $19.99
                         -> 09:06 engagement on /pricing (60 s, 75 %)        visit 1: 2 pv, 360 s
                         14:00 /blog from Hacker News                       visit 2: bounce, 0 s
B (iPhone, DE)           10:00 /?utm_source=newsletter... -> 10:01 "Outbound Link: Click" (not
                         interactive) -> 10:20 engagement on / (5 s, 30 %)  visit: bounce, 1200 s
C (Firefox Linux, US)    23:50 / from t.co -> 00:10 (Saturday) /docs         visit: 2 pv, 1200 s
D (Chrome laptop, FR)    18:55 / -> 19:05 /about (UTC midnight, new salt)   visit: 2 pv, 600 s
Noise: Googlebot at 12:00, a hit for evil.org at 12:30: neither counts.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

import pytest
from django.core.management import call_command
from django.db.models import Sum
from django.test import Client

from collector import tasks
from collector.ingest import ingest_batch
from collector.models import DailyBreakdown, Event, HourlyTotal, Visit
from testing import FRIDAY, NY, SATURDAY, VISITORS, send, url

# Marked analytics: runs on both stores (make test-chdb). Most tests here read the SQL store's
# own tables (rollup rows, Visit rows, dumpdata) and are marked sql_store; the scripted day's
# numbers as the selectors answer them are checked on both stores in dashboard/tests/test_selectors.py.
pytestmark = [pytest.mark.django_db, pytest.mark.analytics]

BOT_UA = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


class Traffic:
    def __init__(self, site: Any, monkeypatch: pytest.MonkeyPatch) -> None:
        self.site = site
        self.monkeypatch = monkeypatch
        self.statuses: list[int] = []

    def at(self, day: dt.date, hh: int, mm: int) -> None:
        moment = dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY)
        self.monkeypatch.setattr("collector.views.now_ms", lambda: int(moment.timestamp() * 1000))

    def hit(self, who: str, body: dict[str, Any], ua: str | None = None) -> Any:
        ip, agent, country, width = VISITORS[who]
        client = Client(HTTP_USER_AGENT=ua or agent)
        payload = {"sid": self.site.public_id, **body}
        if width and body.get("n") == "pageview":
            payload["w"] = width
        response = send(
            client,
            payload,
            REMOTE_ADDR="10.0.0.2",  # the load balancer; the client is in X-Forwarded-For
            HTTP_X_FORWARDED_FOR=f"6.6.6.6, {ip}",  # a forged first entry must not matter
            HTTP_CLOUDFRONT_VIEWER_COUNTRY=country,
        )
        self.statuses.append(response.status_code)
        return response


@pytest.fixture
def day(db: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> dict[str, Any]:
    from sites.models import Site

    settings.TRUSTED_PROXY_HOPS = 1
    site = Site.objects.create(domain="example.com", timezone="America/New_York")
    messages: list[list[dict[str, Any]]] = []
    original = tasks.ingest_batch

    def spy(hits: list[dict[str, Any]]) -> Any:
        messages.append(json.loads(json.dumps(hits)))  # what the broker would carry
        return original(hits)

    monkeypatch.setattr(tasks, "ingest_batch", spy)
    t = Traffic(site, monkeypatch)
    t.at(FRIDAY, 9, 0)
    t.hit("A", {"n": "pageview", "u": url("/"), "r": "https://www.google.com/"})
    t.at(FRIDAY, 9, 2)
    t.hit("A", {"n": "pageview", "u": url("/pricing"), "r": "https://www.google.com/"})
    t.at(FRIDAY, 9, 5)
    t.hit("A", {"n": "Signup", "u": url("/pricing"), "value": 1999})
    t.at(FRIDAY, 9, 6)
    t.hit("A", {"n": "engagement", "u": url("/pricing"), "sd": 75, "e": 60000})
    t.at(FRIDAY, 10, 0)
    t.hit("B", {"n": "pageview", "u": url("/?utm_source=newsletter&utm_medium=email&utm_campaign=fall"), "r": None})
    t.at(FRIDAY, 10, 1)
    t.hit("B", {"n": "Outbound Link: Click", "u": url("/"), "i": False, "p": {"url": "https://other.org"}})
    t.at(FRIDAY, 10, 20)
    t.hit("B", {"n": "engagement", "u": url("/"), "sd": 30, "e": 5000})
    t.at(FRIDAY, 12, 0)
    dropped_bot = t.hit("A", {"n": "pageview", "u": url("/")}, ua=BOT_UA)
    t.at(FRIDAY, 12, 30)
    dropped_host = t.hit("A", {"n": "pageview", "u": "https://evil.org/"})
    t.at(FRIDAY, 14, 0)
    t.hit("A", {"n": "pageview", "u": url("/blog"), "r": "https://news.ycombinator.com/item?id=1"})
    t.at(FRIDAY, 18, 55)
    t.hit("D", {"n": "pageview", "u": url("/")})
    t.at(FRIDAY, 19, 5)  # 00:05 UTC on Saturday: a new salt
    t.hit("D", {"n": "pageview", "u": url("/about"), "r": "https://example.com/"})
    t.at(FRIDAY, 23, 50)
    t.hit("C", {"n": "pageview", "u": url("/"), "r": "https://t.co/abc"})
    t.at(SATURDAY, 0, 10)
    t.hit("C", {"n": "pageview", "u": url("/docs"), "r": "https://example.com/"})
    return {"site": site, "traffic": t, "messages": messages, "dropped": (dropped_bot, dropped_host)}


def daily(site: Any, dim: str, day: dt.date = FRIDAY) -> dict[str, dict[str, int]]:
    rows = DailyBreakdown.objects.filter(site=site, dim=dim, day=day)
    fields = ("visitors", "visits", "pageviews", "bounces", "duration", "events", "value_sum")
    return {
        row.value: {f: getattr(row, f) for f in fields if getattr(row, f)}
        for row in rows
        if row.visits or row.visitors or row.pageviews or row.events
    }


@pytest.mark.sql_store
def test_every_hit_was_answered_202_and_noise_was_dropped(day):
    assert set(day["traffic"].statuses) == {202}
    bot, host = day["dropped"]
    assert (bot["X-Dropped"], host["X-Dropped"]) == ("bot", "hostname")
    assert Event.objects.count() == 12  # 14 hits, 2 dropped


@pytest.mark.sql_store
def test_the_days_totals(day):
    totals = HourlyTotal.objects.filter(site=day["site"], day=FRIDAY).aggregate(
        visitors=Sum("new_visitors"),
        visits=Sum("visits"),
        pageviews=Sum("pageviews"),
        bounces=Sum("bounces"),
        duration=Sum("duration"),
        events=Sum("events"),
    )
    assert totals == {"visitors": 4, "visits": 5, "pageviews": 7, "bounces": 2, "duration": 3360, "events": 2}
    # Derived as the dashboard will: bounce rate 40 %, average visit 672 s, 1.4 views per visit.
    assert totals["bounces"] * 100 // totals["visits"] == 40
    assert totals["duration"] // totals["visits"] == 672


@pytest.mark.sql_store
def test_hours_are_in_the_sites_time_zone(day):
    hours = {
        row.hour: (row.visitors, row.new_visitors, row.visits, row.pageviews, row.bounces, row.duration, row.events)
        for row in HourlyTotal.objects.filter(site=day["site"], day=FRIDAY)
    }
    assert hours == {
        9: (1, 1, 1, 2, 0, 360, 1),
        10: (1, 1, 1, 1, 1, 1200, 1),
        14: (1, 0, 1, 1, 1, 0, 0),
        18: (1, 1, 1, 1, 0, 600, 0),
        19: (1, 0, 0, 1, 0, 0, 0),
        23: (1, 1, 1, 1, 0, 1200, 0),
    }


@pytest.mark.sql_store
def test_after_midnight_counts_on_the_next_local_day(day):
    saturday = HourlyTotal.objects.get(site=day["site"], day=SATURDAY)
    assert (saturday.hour, saturday.visitors, saturday.new_visitors, saturday.visits, saturday.pageviews) == (
        0,
        1,
        1,
        0,  # the visit started on Friday and is counted there
        1,
    )
    assert daily(day["site"], "page", SATURDAY) == {"/docs": {"visitors": 1, "visits": 1, "pageviews": 1}}


@pytest.mark.sql_store
def test_visits_cross_midnight_and_the_salt_rotation(day):
    visits = Visit.objects.filter(site=day["site"]).order_by("started")
    summary = [(v.entry_path, v.exit_path, v.pageviews, v.duration, v.is_bounce) for v in visits]
    assert summary == [
        ("/", "/pricing", 2, 360, False),  # A
        ("/", "/", 1, 1200, True),  # B: the engagement lengthened it, the event was not interactive
        ("/blog", "/blog", 1, 0, True),  # A again, hours later: a new visit
        ("/", "/about", 2, 600, False),  # D: continued across UTC midnight with yesterday's salt
        ("/", "/docs", 2, 1200, False),  # C: continued across local midnight
    ]


@pytest.mark.sql_store
def test_page_breakdown(day):
    assert daily(day["site"], "page") == {
        "/": {"visitors": 4, "visits": 4, "pageviews": 4},
        "/pricing": {"visitors": 1, "visits": 1, "pageviews": 1},
        "/blog": {"visitors": 1, "visits": 1, "pageviews": 1},
        "/about": {"visitors": 1, "visits": 1, "pageviews": 1},
    }
    pricing = DailyBreakdown.objects.get(site=day["site"], dim="page", day=FRIDAY, value="/pricing")
    home = DailyBreakdown.objects.get(site=day["site"], dim="page", day=FRIDAY, value="/")
    assert (pricing.engaged_ms, pricing.engagements, pricing.scroll_sum) == (60000, 1, 75)
    assert (home.engaged_ms, home.engagements, home.scroll_sum) == (5000, 1, 30)


@pytest.mark.sql_store
def test_entry_and_exit_pages(day):
    assert daily(day["site"], "entry_page") == {
        "/": {"visitors": 4, "visits": 4, "pageviews": 7, "bounces": 1, "duration": 3360, "events": 2},
        "/blog": {"visitors": 1, "visits": 1, "pageviews": 1, "bounces": 1},
    }
    exits = {value: row["visits"] for value, row in daily(day["site"], "exit_page").items()}
    assert exits == {"/pricing": 1, "/blog": 1, "/": 1, "/docs": 1, "/about": 1}


@pytest.mark.sql_store
def test_sources_referrers_and_utm(day):
    sources = {value: (row["visitors"], row["visits"]) for value, row in daily(day["site"], "source").items()}
    assert sources == {"Google": (1, 1), "Hacker News": (1, 1), "newsletter": (1, 1), "Twitter": (1, 1), "": (1, 1)}
    referrers = {value: row["visits"] for value, row in daily(day["site"], "referrer").items()}
    assert referrers == {"google.com": 1, "news.ycombinator.com/item": 1, "t.co/abc": 1}
    assert daily(day["site"], "utm_source") == {
        "newsletter": {"visitors": 1, "visits": 1, "pageviews": 1, "bounces": 1, "duration": 1200, "events": 1}
    }
    assert set(daily(day["site"], "utm_medium")) == {"email"}
    assert set(daily(day["site"], "utm_campaign")) == {"fall"}


@pytest.mark.sql_store
def test_browsers_systems_devices_countries(day):
    def visitors_visits(dim: str) -> dict[str, tuple[int, int]]:
        return {value: (row["visitors"], row["visits"]) for value, row in daily(day["site"], dim).items()}

    assert visitors_visits("browser") == {"Chrome": (2, 3), "Safari": (1, 1), "Firefox": (1, 1)}
    assert visitors_visits("os") == {"Windows": (2, 3), "iOS": (1, 1), "Linux": (1, 1)}
    assert visitors_visits("device") == {"Desktop": (2, 3), "Mobile": (1, 1), "Laptop": (1, 1)}
    assert visitors_visits("country") == {"US": (2, 3), "DE": (1, 1), "FR": (1, 1)}


@pytest.mark.sql_store
def test_custom_events_with_value(day):
    assert daily(day["site"], "event") == {
        "Signup": {"visitors": 1, "visits": 1, "events": 1, "value_sum": 1999},
        "Outbound Link: Click": {"visitors": 1, "visits": 1, "events": 1},
    }


@pytest.mark.sql_store
def test_a_redelivered_batch_does_not_count_twice(day):
    before = list(HourlyTotal.objects.order_by("day", "hour").values())
    before_daily = list(DailyBreakdown.objects.order_by("id").values())
    everything = [hit for message in day["messages"] for hit in message]
    result = ingest_batch(everything)
    assert (result.written, result.duplicates) == (0, 12)
    assert list(HourlyTotal.objects.order_by("day", "hour").values()) == before
    assert list(DailyBreakdown.objects.order_by("id").values()) == before_daily
    assert Event.objects.count() == 12


@pytest.mark.sql_store
def test_the_same_hits_in_one_batch_count_once(site):
    hit = {"id": "a" * 32, "site": site.id, "ts": 1_795_000_000_000, "n": "pageview", "p": "/", "vid": 7}
    result = ingest_batch([hit, dict(hit), dict(hit)])
    assert (result.written, result.duplicates) == (1, 2)
    assert HourlyTotal.objects.get().pageviews == 1


def test_hits_of_a_deleted_site_and_malformed_hits_are_dropped_with_a_log_line(site, caplog):
    good = {"id": "b" * 32, "site": site.id, "ts": 1_795_000_000_000, "n": "pageview", "p": "/", "vid": 7}
    gone = {**good, "id": "c" * 32, "site": 999_999}
    broken = {"id": "d" * 32, "site": site.id}
    result = ingest_batch([good, gone, broken, "nonsense"])
    assert (result.written, result.dropped) == (1, 3)
    assert "dropped 2 malformed hits" in caplog.text
    assert "dropped 1 hits of deleted sites [999999]" in caplog.text


@pytest.mark.sql_store
def test_no_ip_or_user_agent_reaches_the_database_the_messages_or_the_logs(day, caplog, capsys):
    forbidden = [ip for ip, *_ in VISITORS.values()] + [ua for _, ua, *_ in VISITORS.values()] + ["6.6.6.6", BOT_UA]
    forbidden += ["198.51.100", "Mozilla/5.0", "2001:db8"]
    messages = json.dumps(day["messages"])
    call_command("dumpdata", "sites", "collector", "dashboard", "--indent", "0")
    database = capsys.readouterr().out
    assert len(database) > 1000  # the dump really holds the day's rows
    for text in forbidden:
        assert text not in messages, text
        assert text not in database, text
        assert text not in caplog.text, text

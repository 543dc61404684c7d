"""The site dashboard /sites/<id>/: what its owner and teammates see, number by number.

Data: the scripted traffic of testing.replay (site in America/New_York), replayed through the
real collector. Friday 2026-11-20 is the busy day; Thursday is its previous period.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from dashboard.models import Membership, Role
from sites.models import Site
from testing import CHROME_UA, chart_rows, chip_texts, headline, html, panel_rows, row_link, send

pytestmark = [pytest.mark.django_db, pytest.mark.analytics]  # on both stores (make test-chdb)

FRIDAY = "2026-11-20"


def dashboard(client: Client, site: Site, **params: str) -> Any:
    return client.get(f"/sites/{site.public_id}/", params)


# -- numbers ----------------------------------------------------------------------------------


def test_it_shows_the_headline_metrics_of_the_day_with_their_change(owner_client, owned_scripted_site):
    response = dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY)
    assert response.status_code == 200
    doc = html(response)
    assert headline(doc) == {
        "Unique visitors": ("4", "↑100%"),  # Thursday: 2
        "Total visits": ("5", "↑150%"),
        "Total pageviews": ("7", "↑133%"),
        "Views per visit": ("1.4", "↓7%"),
        "Bounce rate": ("40%", "↓10 pp"),  # 50 % on Thursday: percentage points
        "Visit duration": ("11m 12s", "↑647%"),
    }
    # A fall in bounce rate is good news, a fall in views per visit is not.
    bounce = next(m for m in doc.all("a", "metric") if m.attrs["data-metric"] == "bounce_rate")
    assert "change-up" in bounce.one("span", "change").classes
    views = next(m for m in doc.all("a", "metric") if m.attrs["data-metric"] == "views_per_visit")
    assert "change-down" in views.one("span", "change").classes
    assert doc.one("span", "period-title").text() == "Fri 20 Nov 2026"


def test_comparison_can_be_turned_off(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY, compare="off"))
    assert headline(doc)["Unique visitors"] == ("4", "")
    assert not doc.all("path", "line-previous")


def test_panels_list_the_days_rows(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    assert panel_rows(doc, "sources") == [
        ["Direct / None", "1"],
        ["Google", "1"],
        ["Hacker News", "1"],
        ["Twitter", "1"],
        ["newsletter", "1"],
    ]
    assert panel_rows(doc, "referrers") == [
        ["google.com ↗", "1"],
        ["news.ycombinator.com/item ↗", "1"],
        ["t.co/abc ↗", "1"],
    ]
    assert panel_rows(doc, "pages") == [
        ["/", "4", "4"],
        ["/about", "1", "1"],
        ["/blog", "1", "1"],
        ["/pricing", "1", "1"],
    ]
    assert panel_rows(doc, "entry_pages") == [["/", "4", "4"], ["/blog", "1", "1"]]
    # Exit pages: exits only (what the rollup keeps), by exits.
    assert [th.text() for th in doc.one("section", data_panel="exit_pages").all("th", scope="col")] == [
        "Exit page",
        "Exits",
    ]
    assert panel_rows(doc, "exit_pages") == [
        ["/", "1"],
        ["/about", "1"],
        ["/blog", "1"],
        ["/docs", "1"],
        ["/pricing", "1"],
    ]
    assert panel_rows(doc, "utm_sources") == [["newsletter", "1"]]
    assert panel_rows(doc, "utm_mediums") == [["email", "1"]]
    assert panel_rows(doc, "utm_campaigns") == [["fall", "1"]]
    assert panel_rows(doc, "countries") == [["🇺🇸 US", "2", "50%"], ["🇩🇪 DE", "1", "25%"], ["🇫🇷 FR", "1", "25%"]]
    assert panel_rows(doc, "browsers") == [["Chrome", "2", "50%"], ["Firefox", "1", "25%"], ["Safari", "1", "25%"]]
    assert panel_rows(doc, "operating_systems") == [["Windows", "2", "50%"], ["Linux", "1", "25%"], ["iOS", "1", "25%"]]
    assert panel_rows(doc, "devices") == [["Desktop", "2", "50%"], ["Laptop", "1", "25%"], ["Mobile", "1", "25%"]]
    # Custom events: uniques, count, conversion rate (of the day's 4 visitors) and value.
    assert panel_rows(doc, "events") == [
        ["Outbound Link: Click", "1", "1", "25%", "0.00"],
        ["Signup", "1", "1", "25%", "19.99"],
    ]
    headings = [th.text() for th in doc.one("section", data_panel="entry_pages").all("thead")[0].all("th")]
    assert headings == ["Entry page", "Visitors", "Entrances"]


def test_an_empty_panel_says_so(owner_client, owned_scripted_site):
    doc = html(
        dashboard(owner_client, owned_scripted_site, period="day", date="2026-11-19")
    )  # Thursday: no UTM, no events
    assert doc.one("section", data_panel="utm_sources").one("p", "panel-empty").text() == "No data for this period."
    assert doc.one("section", data_panel="events").one("p", "panel-empty")


@pytest.mark.parametrize(
    ("params", "points", "interval", "first", "last"),
    [
        ({"period": "day", "date": FRIDAY}, 24, "hour", "Fri 20 Nov 2026, 00:00", "Fri 20 Nov 2026, 23:00"),
        ({"period": "7d", "date": FRIDAY}, 7, "date", "Sat 14 Nov 2026", "Fri 20 Nov 2026"),
        ({"period": "30d", "date": FRIDAY}, 30, "date", "Thu 22 Oct 2026", "Fri 20 Nov 2026"),
        ({"period": "month", "date": FRIDAY}, 30, "date", "Sun 1 Nov 2026", "Mon 30 Nov 2026"),
        ({"period": "6mo", "date": FRIDAY}, 6, "month", "June 2026", "November 2026"),
        ({"period": "12mo", "date": FRIDAY}, 12, "month", "December 2025", "November 2026"),
        ({"period": "custom", "date": "2026-11-01,2026-11-03"}, 3, "date", "Sun 1 Nov 2026", "Tue 3 Nov 2026"),
    ],
)
def test_the_chart_has_a_point_per_interval_of_the_period(
    owner_client, owned_scripted_site, params, points, interval, first, last
):
    doc = html(dashboard(owner_client, owned_scripted_site, **params))
    svg = doc.one("svg", "chart")
    assert svg.attrs["data-points"] == str(points)
    assert svg.attrs["data-interval"] == interval
    rows = chart_rows(doc)
    assert len(rows) == points
    assert (rows[0][0], rows[-1][0]) == (first, last)
    assert len(svg.one("g", "hover").all("rect")) == points  # one tooltip per point
    assert doc.all("path", "line-previous")  # the previous period, faint


def test_the_chart_of_a_month_range_charts_visitors_per_month(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="12mo", date=FRIDAY))
    rows = chart_rows(doc)
    assert rows[-2:] == [["October 2026", "1", "0"], ["November 2026", "8", "0"]]
    assert doc.one("title", id="chart-title").text() == "Unique visitors per month, 1 Dec 2025 to 30 Nov 2026"


def test_a_headline_metric_link_charts_that_metric(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    link = next(m for m in doc.all("a", "metric") if m.attrs["data-metric"] == "pageviews").attrs["href"]
    doc = html(owner_client.get(link))
    current = doc.one("a", "metric", aria_current="true")
    assert current.attrs["data-metric"] == "pageviews"
    assert "Total pageviews per hour" in doc.one("title", id="chart-title").text()


def test_hits_near_local_midnight_land_on_the_sites_local_day(owner_client, owned_scripted_site):
    # G's pageview is at 23:30 on October 31st in New York: 03:30 UTC on November 1st.
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date="2026-10-31"))
    assert headline(doc)["Unique visitors"][0] == "1"
    assert panel_rows(doc, "countries") == [["🇫🇷 FR", "1", "100%"]]
    # On Friday, C's first page at 23:50 local (04:50 UTC Saturday) is in Friday's last hour,
    # and D's second page at 19:05 local (00:05 UTC Saturday) in the 19:00 hour.
    rows = {
        row[0]: row[1]
        for row in chart_rows(
            html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY, metric="pageviews"))
        )
    }
    assert rows["Fri 20 Nov 2026, 23:00"] == "1"
    assert rows["Fri 20 Nov 2026, 19:00"] == "1"
    assert rows["Fri 20 Nov 2026, 04:00"] == "0"
    # C's second page after local midnight counts on Saturday.
    saturday = html(dashboard(owner_client, owned_scripted_site, period="day", date="2026-11-21"))
    assert headline(saturday)["Total pageviews"][0] == "1"
    assert panel_rows(saturday, "pages") == [["/docs", "1", "1"]]


# -- filters ----------------------------------------------------------------------------------


def test_clicking_rows_filters_and_filters_combine(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    assert chip_texts(doc) == []
    assert row_link(doc, "sources", "Google").startswith(f"/sites/{owned_scripted_site.public_id}/?")

    doc = html(owner_client.get(row_link(doc, "sources", "Google")))
    assert chip_texts(doc) == ["Source is Google"]
    assert headline(doc)["Unique visitors"][0] == "1"
    assert headline(doc)["Total pageviews"][0] == "2"
    assert panel_rows(doc, "sources") == [["Google", "1"]]

    link = row_link(doc, "pages", "/pricing")
    query = parse_qs(urlsplit(link).query)
    assert query["filters"] == ["visit:source==Google;event:page==/pricing"]
    assert query["period"] == ["day"]
    assert query["date"] == [FRIDAY]
    doc = html(owner_client.get(link))
    assert chip_texts(doc) == ["Source is Google", "Page is /pricing"]
    assert headline(doc)["Total pageviews"][0] == "1"
    assert panel_rows(doc, "events") == [["Signup", "1", "1", "100%", "19.99"]]

    # Removing the source chip keeps the page filter.
    remove = next(chip for chip in doc.all("li", "chip") if "Source" in chip.text()).one("a").attrs["href"]
    doc = html(owner_client.get(remove))
    assert chip_texts(doc) == ["Page is /pricing"]
    assert headline(doc)["Unique visitors"][0] == "1"
    assert panel_rows(doc, "sources") == [["Google", "1"]]

    # A Direct / None row filters on the empty source.
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    doc = html(owner_client.get(row_link(doc, "sources", "Direct / None")))
    assert chip_texts(doc) == ["Source is Direct / None"]
    assert panel_rows(doc, "pages") == [["/", "1", "1"], ["/about", "1", "1"]]


def test_filters_are_kept_by_the_period_links(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY, filters="visit:country==US"))
    week = next(a for a in doc.one("div", "picker-menu").all("a") if a.visible_text().startswith("Last 7 days"))
    assert parse_qs(urlsplit(week.attrs["href"]).query) == {"period": ["7d"], "filters": ["visit:country==US"]}
    # A chosen interval does not follow to another period (hours would not fit 12 months).
    doc_hours = html(dashboard(owner_client, owned_scripted_site, period="7d", date=FRIDAY, interval="hour"))
    year = next(
        a for a in doc_hours.one("div", "picker-menu").all("a") if a.visible_text().startswith("Last 12 months")
    )
    assert parse_qs(urlsplit(year.attrs["href"]).query) == {"period": ["12mo"]}
    assert doc_hours.one("svg", "chart").attrs["data-points"] == str(7 * 24)
    form = doc.one("form", "custom-range")
    hidden = {i.attrs["name"]: i.attrs["value"] for i in form.all("input") if i.attrs.get("type") == "hidden"}
    assert hidden == {"period": "custom", "filters": "visit:country==US"}


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
def test_the_unfiltered_dashboard_reads_only_the_rollups(owner_client, owned_scripted_site):
    for params in ({"period": "day", "date": FRIDAY}, {"period": "12mo", "date": FRIDAY}, {}):
        with CaptureQueriesContext(connection) as queries:
            response = dashboard(owner_client, owned_scripted_site, **params)
        assert response.status_code == 200
        sql = [q["sql"] for q in queries.captured_queries]
        assert any("collector_hourlytotal" in s for s in sql)
        assert not [s for s in sql if "collector_event" in s]


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
@pytest.mark.parametrize(
    "params",
    [
        {},
        {"period": "day", "date": FRIDAY},
        {"period": "12mo", "date": FRIDAY},
        {"period": "custom", "date": "2023-01-01,2026-12-31"},
    ],
)
def test_unfiltered_pages_and_exports_read_no_events_nor_visits(owner_client, owned_scripted_site, params):
    for path in ("", "export.zip"):
        with CaptureQueriesContext(connection) as queries:
            response = owner_client.get(f"/sites/{owned_scripted_site.public_id}/{path}", params)
        assert response.status_code == 200
        raw = [
            q["sql"] for q in queries.captured_queries if "collector_event" in q["sql"] or "collector_visit" in q["sql"]
        ]
        assert raw == [], path


def test_the_exit_pages_panel_shows_exits_filtered_or_not(owner_client, owned_scripted_site):
    thursday_and_friday = {"period": "custom", "date": "2026-11-19,2026-11-20"}
    expected = [["/", "3"], ["/about", "1"], ["/blog", "1"], ["/docs", "1"], ["/pricing", "1"]]
    assert (
        panel_rows(html(dashboard(owner_client, owned_scripted_site, **thursday_and_friday)), "exit_pages") == expected
    )
    # A filter every visit passes takes the raw path: the same rows, the same order.
    doc = html(
        dashboard(owner_client, owned_scripted_site, **thursday_and_friday, filters="visit:entry_page!=/nowhere")
    )
    assert panel_rows(doc, "exit_pages") == expected
    doc = html(dashboard(owner_client, owned_scripted_site, **thursday_and_friday, filters="visit:country==US"))
    # E (Thursday, exits on /), A's two visits, C.
    assert panel_rows(doc, "exit_pages") == [["/", "1"], ["/blog", "1"], ["/docs", "1"], ["/pricing", "1"]]


def test_today_in_progress_is_compared_with_the_same_hours_of_yesterday(owner_client, owned_scripted_site, monkeypatch):
    # The site's clock at Friday 09:30: "Today" is Friday until 09:59, against Thursday until 09:59
    # (E's 08:00 bounce), not against the whole of Thursday (E and F).
    friday = dt.datetime(2026, 11, 20, 9, 30, tzinfo=owned_scripted_site.tz)
    monkeypatch.setattr("dashboard.selectors.periods.local_now", lambda tz: friday.astimezone(tz))
    doc = html(dashboard(owner_client, owned_scripted_site, period="day"))
    assert doc.one("span", "period-title").text() == "Today"
    assert headline(doc) == {
        "Unique visitors": ("1", "0%"),  # it read ↓50% against the whole of Thursday
        "Total visits": ("1", "0%"),
        "Total pageviews": ("2", "↑100%"),
        "Views per visit": ("2", "↑100%"),
        "Bounce rate": ("0%", "↓100 pp"),
        "Visit duration": ("6m 0s", "\N{EN DASH}"),  # Thursday until 09:59: no duration to compare with
    }
    # The chart draws the whole day, the hours to come empty, and the whole of Thursday as the
    # faint line (F's 15:00 visit included).
    rows = {row[0]: row[1:] for row in chart_rows(doc)}
    assert rows["Fri 20 Nov 2026, 09:00"] == ["1", "0"]
    assert rows["Fri 20 Nov 2026, 15:00"] == ["\N{EN DASH}", "1"]
    # Seen the day after, Friday compares whole with Thursday again.
    monkeypatch.setattr(
        "dashboard.selectors.periods.local_now", lambda tz: (friday + dt.timedelta(days=1)).astimezone(tz)
    )
    assert headline(html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY)))[
        "Unique visitors"
    ] == ("4", "↑100%")


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
def test_a_filtered_dashboard_reads_the_raw_events(owner_client, owned_scripted_site):
    with CaptureQueriesContext(connection) as queries:
        dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY, filters="visit:source==Google")
    assert any("collector_event" in q["sql"] for q in queries.captured_queries)


# -- periods ----------------------------------------------------------------------------------


def test_the_period_menu_offers_every_period(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site))
    labels = [a.visible_text() for a in doc.one("div", "picker-menu").one("ul").all("a")]
    assert labels == [
        "Today T", "Yesterday Y", "Last 7 days W", "Last 30 days D", "This month M", "Last month L",
        "Last 6 months S", "Last 12 months A",
    ]  # fmt: skip
    assert doc.one("span", "period-title").text() == "Last 30 days"  # the default
    assert doc.one("input", id="range-from")
    assert doc.one("input", id="range-to")


def test_yesterday_last_month_and_custom_ranges(owner_client, owned_scripted_site):
    today = dt.datetime.now(owned_scripted_site.tz).date()
    yesterday = today - dt.timedelta(days=1)
    doc = html(dashboard(owner_client, owned_scripted_site, period="yesterday"))
    assert doc.one("span", "period-title").text() == "Yesterday"
    assert doc.one("span", "period-range").text() == f"{yesterday.day} {yesterday:%b %Y}"

    last_month = today.replace(day=1) - dt.timedelta(days=1)
    doc = html(dashboard(owner_client, owned_scripted_site, period="lastmonth"))
    assert doc.one("span", "period-title").text() == f"{last_month:%B %Y}"

    # The range form sends from= and to=; the same range as date=a,b.
    form = html(dashboard(owner_client, owned_scripted_site, period="custom", **{"from": "2026-11-19", "to": FRIDAY}))
    same = html(dashboard(owner_client, owned_scripted_site, period="custom", date=f"2026-11-19,{FRIDAY}"))
    assert headline(form) == headline(same)
    assert headline(form)["Unique visitors"] == ("6", "\N{EN DASH}")  # 2 + 4; nothing in the two days before
    assert form.one("span", "period-title").text() == "19 Nov 2026 \N{EN DASH} 20 Nov 2026"


def test_previous_and_next_period_links(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    prev = doc.one("a", "period-step", aria_label="Previous period").attrs["href"]
    nxt = doc.one("a", "period-step", aria_label="Next period").attrs["href"]
    assert parse_qs(urlsplit(prev).query) == {"period": ["day"], "date": ["2026-11-19"]}
    assert parse_qs(urlsplit(nxt).query) == {"period": ["day"], "date": ["2026-11-21"]}
    assert headline(html(owner_client.get(prev)))["Unique visitors"][0] == "2"
    # There is no next period after today.
    doc = html(dashboard(owner_client, owned_scripted_site, period="day"))
    assert not doc.all("a", "period-step", aria_label="Next period")


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"period": "forever"}, "Unknown period “forever”"),
        ({"period": "day", "date": "2026-02-30"}, "no such day"),
        ({"period": "custom", "date": "2026-11-20"}, "period 'custom' needs date=YYYY-MM-DD,YYYY-MM-DD"),
        ({"period": "custom", "date": "2026-11-20,2026-11-01"}, "the end is before the start"),
        ({"period": "custom", "from": "2026-11-20", "to": ""}, "period 'custom' needs"),
        ({"filters": "visit:city==Paris"}, "unknown filter property 'visit:city'"),
        ({"filters": "nonsense"}, "invalid filter 'nonsense'"),
        ({"metric": "revenue"}, "Unknown metric “revenue”"),
        ({"period": "12mo", "interval": "hour"}, "interval 'hour' is limited"),
        ({"compare": "yes"}, "Unknown comparison “yes”"),
    ],
)
def test_bad_parameters_show_a_friendly_400(owner_client, owned_scripted_site, params, message):
    response = dashboard(owner_client, owned_scripted_site, **params)
    assert response.status_code == 400
    doc = html(response)
    alert = doc.one("div", "stats-error")
    assert message in alert.text()
    assert "Show the last 30 days instead" in alert.text()
    assert not doc.all("a", "metric")  # no numbers on an error page
    assert doc.one("span", "period-title").text() == "Last 30 days"  # the menu works from here


def test_a_query_string_django_refuses_is_the_friendly_400(owner_client, owned_scripted_site):
    response = owner_client.get(f"/sites/{owned_scripted_site.public_id}/?" + "&".join(f"x{i}=1" for i in range(1500)))
    assert response.status_code == 400
    alert = html(response).one("div", "stats-error")
    assert "This address has too many or malformed parameters." in alert.text()


def test_an_error_quotes_only_the_start_of_a_long_value(owner_client, owned_scripted_site):
    response = dashboard(owner_client, owned_scripted_site, period="x" * 100_000)
    assert response.status_code == 400
    alert = html(response).one("div", "stats-error").text()
    assert f"Unknown period “{'x' * 60}…”" in alert
    assert len(alert) < 300


# -- empty state ------------------------------------------------------------------------------


def test_a_new_site_explains_how_to_install_the_script(owner_client, owner):
    fresh = Site.objects.create(domain="new.example", owner=owner)
    response = dashboard(owner_client, fresh)
    assert response.status_code == 200
    doc = html(response)
    assert doc.one("h2", id="empty-title").text() == "Waiting for the first visit"
    snippet = doc.one("pre", id="install-snippet").text()
    assert snippet == f'<script defer src="http://testserver/script.js" data-site="{fresh.public_id}"></script>'
    assert "within a few seconds" in doc.one("section", "empty-state").text()
    assert not doc.all("a", "metric")


def test_the_snippets_script_is_served_and_accepts_the_sites_hits(owner_client, owner):
    fresh = Site.objects.create(domain="new.example", owner=owner)
    assert Client().get("/script.js").status_code == 200
    response = send(
        Client(HTTP_USER_AGENT=CHROME_UA), {"n": "pageview", "u": "https://new.example/", "sid": fresh.public_id}
    )
    assert response.status_code == 202
    doc = html(dashboard(owner_client, fresh, period="day"))
    assert not doc.all("section", "empty-state")
    assert headline(doc)["Unique visitors"][0] == "1"


# -- realtime ---------------------------------------------------------------------------------


def test_the_realtime_counter_counts_the_last_five_minutes(owner_client, owned_scripted_site):
    url = f"/sites/{owned_scripted_site.public_id}/realtime"
    assert owner_client.get(url).json() == {"visitors": 0}  # the scripted traffic is days old
    response = send(
        Client(HTTP_USER_AGENT=CHROME_UA),
        {"n": "pageview", "u": "https://example.com/", "sid": owned_scripted_site.public_id},
    )
    assert response.status_code == 202
    response = owner_client.get(url)
    assert response.json() == {"visitors": 1}
    assert "no-cache" in response["Cache-Control"]
    doc = html(dashboard(owner_client, owned_scripted_site))
    assert doc.one("p", "realtime").attrs["data-realtime-url"] == url


# -- who may see it ---------------------------------------------------------------------------


@pytest.mark.parametrize("role", [Role.ADMIN, Role.VIEWER])
def test_teammates_see_the_dashboard(owned_scripted_site, django_user_model, role):
    mate = django_user_model.objects.create_user(f"mate-{role}")
    Membership.objects.create(site=owned_scripted_site, user=mate, role=role)
    client = Client()
    client.force_login(mate)
    response = dashboard(client, owned_scripted_site, period="day", date=FRIDAY)
    assert response.status_code == 200
    assert headline(html(response))["Unique visitors"][0] == "4"
    assert client.get(f"/sites/{owned_scripted_site.public_id}/realtime").json() == {"visitors": 0}
    assert client.get(f"/sites/{owned_scripted_site.public_id}/export.zip").status_code == 200


def test_outsiders_get_the_unknown_site_404(owned_scripted_site, django_user_model):
    outsider = django_user_model.objects.create_user("outsider")
    client = Client()
    client.force_login(outsider)
    for path in ("", "export.zip", "realtime"):
        response = client.get(f"/sites/{owned_scripted_site.public_id}/{path}", {"period": "day", "date": FRIDAY})
        assert response.status_code == 404
        assert b"example.com" not in response.content
    unknown = client.get("/sites/NOSUCHID/")
    assert unknown.status_code == 404
    assert b"There is no site here" in unknown.content


def test_anonymous_visitors_are_sent_to_log_in_and_see_no_data(owned_scripted_site):
    client = Client()
    response = client.get(f"/sites/{owned_scripted_site.public_id}/", {"period": "day", "date": FRIDAY})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/?next=")
    assert client.get(f"/sites/{owned_scripted_site.public_id}/export.zip").status_code == 302
    realtime = client.get(f"/sites/{owned_scripted_site.public_id}/realtime")
    assert realtime.status_code == 404
    assert b"visitors" not in realtime.content


def test_owner_pages_show_the_owner_navigation(owner_client, owned_scripted_site):
    doc = html(dashboard(owner_client, owned_scripted_site, period="day", date=FRIDAY))
    assert "owner" in doc.one("header", "topbar").text()  # the signed-in user's own name
    assert (
        doc.one("a", "button", download="")
        .attrs["href"]
        .startswith(f"/sites/{owned_scripted_site.public_id}/export.zip?")
    )

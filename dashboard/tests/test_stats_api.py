"""Contract tests of the Stats API (/api/v1/stats/), on the traffic of testing.replay."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from dashboard.api_keys import apikey_create, apikey_revoke
from dashboard.models import ApiKey
from sites.models import Site
from testing import CHROME_UA, send

pytestmark = [pytest.mark.django_db, pytest.mark.analytics]  # on both stores (make test-chdb)

FRIDAY = "2026-11-20"


def get(endpoint: str, key: str | None = None, client: Client | None = None, **params: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return (client or Client()).get(f"/api/v1/stats/{endpoint}", params, **headers)


def results(response: Any) -> Any:
    assert response.status_code == 200, response.content
    assert response["Content-Type"] == "application/json"
    return response.json()["results"]


# -- answers ----------------------------------------------------------------------------------


def test_realtime_visitors_is_a_bare_integer(owned_scripted_site, key, monkeypatch):
    assert get("realtime/visitors", key, site_id="example.com").content == b"0"
    monkeypatch.setattr("collector.views.now_ms", lambda: int(time.time() * 1000))
    for ip in ("203.0.113.1", "203.0.113.2"):
        response = send(Client(HTTP_USER_AGENT=CHROME_UA), {"n": "pageview", "u": "https://example.com/", "d": "example.com"}, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=ip)  # fmt: skip
        assert response.status_code == 202
    response = get("realtime/visitors", key, site_id="example.com")
    assert (response.status_code, response.content, response.json()) == (200, b"2", 2)


def test_aggregate(owned_scripted_site, key):
    response = get(
        "aggregate",
        key,
        site_id="example.com",
        period="day",
        date=FRIDAY,
        metrics="visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events",
    )
    assert results(response) == {
        "visitors": {"value": 4},
        "visits": {"value": 5},
        "pageviews": {"value": 7},
        "views_per_visit": {"value": 1.4},
        "bounce_rate": {"value": 40},
        "visit_duration": {"value": 672},
        "events": {"value": 2},
    }


def test_aggregate_defaults_to_visitors_over_30_days(owned_scripted_site, key):
    # October 23rd to November 21st: every visitor of the dataset
    assert results(get("aggregate", key, site_id="example.com", date="2026-11-21")) == {"visitors": {"value": 9}}


def test_aggregate_compared_with_the_previous_period(owned_scripted_site, key):
    response = get(
        "aggregate",
        key,
        site_id="example.com",
        period="day",
        date=FRIDAY,
        metrics="visitors,pageviews,bounce_rate,events",
        compare="previous_period",
    )
    assert results(response) == {
        "visitors": {"value": 4, "change": 100},
        "pageviews": {"value": 7, "change": 133},
        "bounce_rate": {"value": 40, "change": -10},
        "events": {"value": 2, "change": None},
    }
    assert b'"change":null' in response.content


def test_a_day_in_progress_is_compared_with_the_same_hours_of_the_day_before(owned_scripted_site, key, monkeypatch):
    # The site's clock at Friday 09:30: today (Friday) until 09:59 against Thursday until 09:59.
    friday = dt.datetime(2026, 11, 20, 9, 30, tzinfo=owned_scripted_site.tz)
    monkeypatch.setattr("dashboard.selectors.periods.local_now", lambda tz: friday.astimezone(tz))
    metrics = "visitors,pageviews,bounce_rate"
    response = get("aggregate", key, site_id="example.com", period="day", metrics=metrics, compare="previous_period")
    assert results(response) == {
        "visitors": {"value": 1, "change": 0},  # against the whole of Thursday: -50
        "pageviews": {"value": 2, "change": 100},
        "bounce_rate": {"value": 0, "change": -100},
    }
    # The same day asked for once it is over compares whole, as before.
    monkeypatch.setattr(
        "dashboard.selectors.periods.local_now", lambda tz: (friday + dt.timedelta(days=1)).astimezone(tz)
    )
    response = get("aggregate", key, site_id="example.com", period="day", date=FRIDAY, metrics="visitors", compare="previous_period")  # fmt: skip
    assert results(response) == {"visitors": {"value": 4, "change": 100}}


def test_an_exit_page_breakdown_of_exits_alone_is_sorted_by_exits(owned_scripted_site, key):
    response = get("breakdown", key, site_id="example.com", period="custom", date="2026-11-19,2026-11-20", property="visit:exit_page", metrics="visits")  # fmt: skip
    # Thursday: E exits on /, F on /; Friday: one exit each on /, /about, /blog, /docs, /pricing.
    assert results(response) == [
        {"exit_page": "/", "visits": 3},
        {"exit_page": "/about", "visits": 1},
        {"exit_page": "/blog", "visits": 1},
        {"exit_page": "/docs", "visits": 1},
        {"exit_page": "/pricing", "visits": 1},
    ]


@pytest.mark.sql_store  # reads the Django database's analytics tables: the SQL store only
def test_an_exit_page_breakdown_of_exits_alone_reads_the_rollup(owned_scripted_site, key):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    with CaptureQueriesContext(connection) as queries:
        response = get("breakdown", key, site_id="example.com", period="custom", date="2026-11-19,2026-11-20", property="visit:exit_page", metrics="visits")  # fmt: skip
    assert response.status_code == 200
    assert not [q for q in queries.captured_queries if "collector_visit" in q["sql"] or "collector_event" in q["sql"]]


def test_aggregate_with_filters(owned_scripted_site, key):
    response = get(
        "aggregate",
        key,
        site_id="example.com",
        period="day",
        date=FRIDAY,
        metrics="visitors,pageviews,events,visit_duration",
        filters="visit:source==Google;event:page==/pricing",
    )
    assert results(response) == {
        "visitors": {"value": 1},
        "pageviews": {"value": 1},
        "events": {"value": 1},
        "visit_duration": {"value": 360},
    }


def test_timeseries_of_a_day_is_hourly(owned_scripted_site, key):
    rows = results(get("timeseries", key, site_id="example.com", period="day", date=FRIDAY, metrics="visitors,pageviews"))  # fmt: skip
    assert len(rows) == 24
    assert rows[0] == {"date": "2026-11-20 00:00:00", "visitors": 0, "pageviews": 0}
    assert rows[9] == {"date": "2026-11-20 09:00:00", "visitors": 1, "pageviews": 2}


def test_timeseries_by_date_and_month(owned_scripted_site, key):
    rows = results(get("timeseries", key, site_id="example.com", period="7d", date="2026-11-21"))
    assert rows == [
        {"date": "2026-11-15", "visitors": 0},
        {"date": "2026-11-16", "visitors": 0},
        {"date": "2026-11-17", "visitors": 0},
        {"date": "2026-11-18", "visitors": 0},
        {"date": "2026-11-19", "visitors": 2},
        {"date": "2026-11-20", "visitors": 4},
        {"date": "2026-11-21", "visitors": 1},
    ]
    months = results(
        get("timeseries", key, site_id="example.com", period="custom", date="2026-10-01,2026-11-30", interval="month")
    )
    assert months == [{"date": "2026-10-01", "visitors": 1}, {"date": "2026-11-01", "visitors": 8}]
    filtered = results(
        get(
            "timeseries",
            key,
            site_id="example.com",
            period="6mo",
            date=FRIDAY,
            filters="visit:country==US",
            metrics="visitors,visits",
        )
    )
    assert [row["date"] for row in filtered] == [f"2026-{m:02d}-01" for m in range(6, 12)]
    # visitors a day: H (1st), E (19th), A and C (20th), C (21st); visits: H 2, E 1, A 2, C 1
    assert filtered[-1] == {"date": "2026-11-01", "visitors": 5, "visits": 6}


def test_breakdown(owned_scripted_site, key):
    response = get(
        "breakdown",
        key,
        site_id="example.com",
        period="day",
        date=FRIDAY,
        property="event:page",
        metrics="visitors,pageviews,bounce_rate",
    )
    assert results(response) == [
        {"page": "/", "visitors": 4, "pageviews": 4, "bounce_rate": 25},
        {"page": "/about", "visitors": 1, "pageviews": 1, "bounce_rate": 0},
        {"page": "/blog", "visitors": 1, "pageviews": 1, "bounce_rate": 100},
        {"page": "/pricing", "visitors": 1, "pageviews": 1, "bounce_rate": 0},
    ]


def test_breakdown_pages_through_results(owned_scripted_site, key):
    def page(number: int) -> list[str]:
        response = get("breakdown", key, site_id="example.com", period="day", date=FRIDAY, property="event:page", limit=3, page=number)  # fmt: skip
        return [row["page"] for row in results(response)]

    assert (page(1), page(2), page(3)) == (["/", "/about", "/blog"], ["/pricing"], [])


@pytest.mark.parametrize(
    ("prop", "first"),
    [
        ("event:name", {"name": "Outbound Link: Click", "visitors": 1}),
        ("visit:entry_page", {"entry_page": "/", "visitors": 4}),
        ("visit:exit_page", {"exit_page": "/", "visitors": 1}),
        ("visit:source", {"source": "Direct / None", "visitors": 1}),
        ("visit:referrer", {"referrer": "google.com", "visitors": 1}),
        ("visit:utm_source", {"utm_source": "newsletter", "visitors": 1}),
        ("visit:utm_medium", {"utm_medium": "email", "visitors": 1}),
        ("visit:utm_campaign", {"utm_campaign": "fall", "visitors": 1}),
        ("visit:device", {"device": "Desktop", "visitors": 2}),
        ("visit:browser", {"browser": "Chrome", "visitors": 2}),
        ("visit:os", {"os": "Windows", "visitors": 2}),
        ("visit:country", {"country": "US", "visitors": 2}),
    ],
)
def test_breakdown_keys_results_by_the_propertys_short_name(owned_scripted_site, key, prop, first):
    rows = results(get("breakdown", key, site_id="example.com", period="day", date=FRIDAY, property=prop))
    assert rows[0] == first


def test_breakdown_with_a_filter(owned_scripted_site, key):
    response = get(
        "breakdown",
        key,
        site_id="example.com",
        period="day",
        date=FRIDAY,
        property="visit:browser",
        filters="event:page==/",
        metrics="visitors,visits",
    )
    assert results(response) == [
        {"browser": "Chrome", "visitors": 2, "visits": 2},
        {"browser": "Firefox", "visitors": 1, "visits": 1},
        {"browser": "Safari", "visitors": 1, "visits": 1},
    ]


def test_site_id_is_the_domain_or_the_public_id(owned_scripted_site, key):
    by_domain = get("aggregate", key, site_id="example.com", period="day", date=FRIDAY)
    by_id = get("aggregate", key, site_id=owned_scripted_site.public_id, period="day", date=FRIDAY)
    assert results(by_domain) == results(by_id) == {"visitors": {"value": 4}}


def test_a_signed_in_owner_needs_no_key(owned_scripted_site):
    client = Client()
    assert get("aggregate", client=client, site_id="example.com").status_code == 401
    client.login(username="owner", password="owner-password")
    assert results(get("aggregate", client=client, site_id="example.com", period="day", date=FRIDAY)) == {
        "visitors": {"value": 4}
    }


def test_the_answer_is_json_whatever_the_client_accepts(owned_scripted_site, key):
    response = Client().get(
        "/api/v1/stats/aggregate",
        {"site_id": "example.com", "period": "day", "date": FRIDAY},
        HTTP_AUTHORIZATION=f"Bearer {key}",
        HTTP_ACCEPT="text/html",
    )
    assert results(response) == {"visitors": {"value": 4}}


# -- errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "params", "message"),
    [
        ("aggregate", {}, "site_id is required"),
        ("aggregate", {"metrics": "visitors,sessions"}, "unknown metric 'sessions'"),
        ("aggregate", {"period": "week"}, "unknown period 'week'"),
        ("aggregate", {"period": "day", "date": "2026-02-30"}, "invalid date '2026-02-30': no such day"),
        ("aggregate", {"period": "day", "date": "20 Nov"}, "expected YYYY-MM-DD"),
        ("aggregate", {"period": "custom", "date": "2026-11-20"}, "needs date=YYYY-MM-DD,YYYY-MM-DD"),
        ("aggregate", {"filters": "visit:source=Google"}, "invalid filter 'visit:source=Google'"),
        ("aggregate", {"filters": "visit:city==Paris"}, "unknown filter property 'visit:city'"),
        ("aggregate", {"compare": "year_over_year"}, "only previous_period"),
        ("timeseries", {"interval": "week"}, "unknown interval 'week'"),
        ("timeseries", {"period": "12mo", "interval": "hour"}, "limited to periods of 31 days"),
        ("breakdown", {}, "property is required"),
        ("breakdown", {"property": "visit:city"}, "unknown property 'visit:city'"),
        ("breakdown", {"property": "event:name", "metrics": "bounce_rate"}, "not available with property"),
        ("breakdown", {"property": "event:page", "limit": "1001"}, "limit must be at most 1000"),
        ("breakdown", {"property": "event:page", "limit": "ten"}, "limit must be a positive integer"),
        ("breakdown", {"property": "event:page", "page": "0"}, "page must be a positive integer"),
        ("breakdown", {"property": "event:page", "page": "9" * 30}, "page must be at most 100000"),
    ],
)
def test_bad_parameters_are_400_with_an_error(owned_scripted_site, key, endpoint, params, message):
    if endpoint != "aggregate" or params:
        params = {"site_id": "example.com", **params}
    response = get(endpoint, key, **params)
    assert response.status_code == 400
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_no_key_or_a_bad_key_is_401(owned_scripted_site, key, owner):
    revoked_row, revoked = apikey_create(user=owner, name="old")
    apikey_revoke(key=revoked_row)
    cases = {
        None: "Authentication credentials were not provided.",
        "fk_not-a-real-key": "invalid API key",
        revoked: "this API key has been revoked",
    }
    for bad, message in cases.items():
        response = get("aggregate", bad, site_id="example.com")
        assert (response.status_code, response.json()) == (401, {"error": message})
        assert response["WWW-Authenticate"].startswith("Bearer")
    response = Client().get("/api/v1/stats/aggregate", {"site_id": "example.com"}, HTTP_AUTHORIZATION="Bearer")
    assert (response.status_code, set(response.json())) == (401, {"error"})
    owner.is_active = False
    owner.save()
    assert get("aggregate", key, site_id="example.com").status_code == 401


def test_unknown_and_other_peoples_sites_are_404_alike(owned_scripted_site, key):
    get_user_model().objects.create_user("stranger")
    Site.objects.create(domain="theirs.example", owner=get_user_model().objects.get(username="stranger"))
    Site.objects.create(domain="nobodys.example")
    for site_id in ("theirs.example", "nobodys.example", "missing.example"):
        for endpoint in ("realtime/visitors", "aggregate", "timeseries", "breakdown"):
            response = get(endpoint, key, site_id=site_id, property="event:page")
            assert (response.status_code, response.json()) == (404, {"error": f"site {site_id!r} not found"})


def test_another_users_key_cannot_read_my_site(owned_scripted_site):
    stranger = get_user_model().objects.create_user("stranger")
    _, their_key = apikey_create(user=stranger, name="theirs")
    assert get("aggregate", their_key, site_id="example.com").status_code == 404


def test_only_get_is_allowed(owned_scripted_site, key):
    response = Client().post("/api/v1/stats/aggregate?site_id=example.com", HTTP_AUTHORIZATION=f"Bearer {key}")
    assert (response.status_code, set(response.json())) == (405, {"error"})


def rate_limited(response: Any) -> bool:
    if response.status_code != 429:
        return False
    assert response.json() == {"error": "rate limited, retry later"}
    assert 1 <= int(response["Retry-After"]) <= 60
    return True


def test_a_user_has_one_rate_limit_for_all_their_keys_and_their_session(
    owned_scripted_site, key, owner, settings, redis_cache, frozen_clock
):
    settings.API_RATE = "3/m"
    _, second_key = apikey_create(user=owner, name="second")
    session = Client()
    session.force_login(owner)
    assert get("aggregate", key, site_id="example.com").status_code == 200
    assert get("aggregate", second_key, site_id="example.com").status_code == 200
    assert get("aggregate", client=session, site_id="example.com").status_code == 200
    _, fresh_key = apikey_create(user=owner, name="fresh")  # a new key buys no new quota
    for credentials in ({"key": key}, {"key": second_key}, {"key": fresh_key}, {"client": session}):
        assert rate_limited(get("realtime/visitors", site_id="example.com", **credentials))


def test_the_rate_limit_of_one_user_leaves_others_alone(owned_scripted_site, key, settings, redis_cache, frozen_clock):
    settings.API_RATE = "2/m"
    stranger = get_user_model().objects.create_user("stranger")
    Site.objects.create(domain="theirs.example", owner=stranger)
    _, their_key = apikey_create(user=stranger, name="theirs")
    for _ in range(2):
        assert get("aggregate", key, site_id="example.com").status_code == 200
    assert rate_limited(get("aggregate", key, site_id="example.com"))
    assert get("aggregate", their_key, site_id="theirs.example").status_code == 200


# -- keys -------------------------------------------------------------------------------------


def test_a_key_is_stored_as_a_hash_and_shown_once(owner):
    row, plaintext = apikey_create(user=owner, name="ci")
    assert plaintext.startswith("fk_")
    assert len(plaintext) == 43
    assert row.prefix == plaintext[:8]
    assert row.key_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    stored = json.dumps(list(ApiKey.objects.values()), default=str)
    assert plaintext not in stored
    assert apikey_create(user=owner, name="ci")[1] != plaintext


def test_last_used_is_written_at_most_once_a_minute(owned_scripted_site, key):
    row = ApiKey.objects.get(name="tests")
    assert row.last_used_at is None
    get("aggregate", key, site_id="example.com")
    row.refresh_from_db()
    first = row.last_used_at
    assert timezone.now() - first < dt.timedelta(seconds=10)
    get("aggregate", key, site_id="example.com")
    row.refresh_from_db()
    assert row.last_used_at == first
    ApiKey.objects.filter(pk=row.pk).update(last_used_at=first - dt.timedelta(minutes=2))
    get("aggregate", key, site_id="example.com")
    row.refresh_from_db()
    assert row.last_used_at > first


def test_createapikey_prints_a_working_key(owned_scripted_site, capsys):
    call_command("createapikey", "owner", "--name", "laptop")
    plaintext = capsys.readouterr().out.strip()
    assert ApiKey.objects.get(name="laptop").prefix == plaintext[:8]
    assert results(get("aggregate", plaintext, site_id="example.com", period="day", date=FRIDAY)) == {
        "visitors": {"value": 4}
    }


def test_createapikey_refuses_an_unknown_user(db):
    with pytest.raises(CommandError, match="no user named 'nobody'"):
        call_command("createapikey", "nobody")

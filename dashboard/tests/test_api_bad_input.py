"""Bad input to the Stats API and the dashboard pages: a corpus of odd query strings, each with
the answer it must get.

Nothing answers 5xx. A bad parameter is a 4xx with `{"error": "..."}` (the pages: a friendly
400 page) whose message says what was wrong, quotes a short piece of the input at most, and
never shows Python's words; a valid one, however odd it looks, is a 200. The queries are raw
query strings, so that the bytes sent are exactly those written here (NUL, invalid UTF-8, the
UTF-8 of a lone surrogate, repeated names). Run it on SQLite and on MariaDB: the filter caps
exist for the SQL the two build.
"""

from __future__ import annotations

import html
import re
from typing import Any
from urllib.parse import quote

import pytest
from django.test import Client

from dashboard import report_data, selectors
from dashboard.models import SharedLink
from sites.models import Site
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db

# Words that only Python, Django or a database would write.
INTERNALS = re.compile(
    r"invalid literal|int\(\)|base 10|set_int_max_str_digits|Traceback|Exception|Error\b|object at 0x"
    r"|NoneType|SELECT |sqlite|mysql|DATA_UPLOAD|settings\.",
    re.IGNORECASE,
)
LONGEST_MESSAGE = 400  # the longest one lists every property; none repeats a megabyte of input


def q(value: str) -> str:
    """A value percent-encoded for a query string (UTF-8)."""
    return quote(value, safe="")


def many(count: int, length: int = 1) -> str:
    """`count` distinct alternatives of at least `length` characters for one filter."""
    return "|".join(f"{i:0{length}d}" for i in range(count))


LONG = "a" * 10_000
AT_THE_CAPS = ";".join(  # 10 filters x 100 alternatives of 2,000 characters: every cap reached, none passed
    f"{prop}{op}{many(100, 2000)}"
    for prop, op in [
        ("event:page", "=="),
        ("event:name", "!="),
        ("visit:source", "=="),
        ("visit:referrer", "!="),
        ("visit:utm_source", "!="),
        ("visit:entry_page", "=="),
        ("visit:exit_page", "!="),
        ("visit:browser", "=="),
        ("visit:os", "!="),
        ("visit:country", "=="),
    ]
)

OK = 200


def api(endpoint: str, query: str, status: int = OK, message: str = "", *, id: str) -> Any:
    return pytest.param(endpoint, query, status, message, id=id)


# (endpoint, raw query string, status, part of the error). Without site_id= in it, the query is
# for site_id=example.com, unless it starts with "!".
API_CASES = [
    # -- valid, if odd: 200 ---------------------------------------------------------------------
    api("aggregate", "", id="defaults"),
    api("aggregate", "site_id={public_id}", id="site by public id"),
    api("aggregate", "site_id={public_id_lower}", 404, "not found", id="public id in lower case"),
    api("aggregate", "site_id=EXAMPLE.COM", id="site id in capitals"),
    api("aggregate", "site_id=" + q("https://www.example.com/pricing"), id="site id as a URL"),
    api(
        "aggregate",
        "metrics=visitors,visits,pageviews,views_per_visit,bounce_rate,visit_duration,events",
        id="every metric",
    ),
    api("aggregate", "metrics=visitors,visitors,%20visitors%20", id="duplicate metrics"),
    api("aggregate", "period=&date=&metrics=&filters=&compare=", id="every parameter empty"),
    api("aggregate", "compare=previous_period&period=day&date=1970-01-01", id="compare on the first allowed day"),
    api("aggregate", "period=12mo&date=2999-12-31&compare=previous_period", id="12 months to the last allowed day"),
    api("aggregate", "period=custom&date=1970-01-01,1974-01-02&compare=previous_period", id="the longest custom range"),
    api("aggregate", "period=custom&date=%202026-11-01%20,%202026-11-30%20", id="custom range with spaces"),
    api("aggregate", "foo=bar&_=123&interval=%00", id="parameters aggregate does not read"),
    api("aggregate", "filters=" + q(";visit:source==Google;;"), id="filters with empty parts"),
    api("aggregate", "filters=" + q(";;"), id="filters only separators"),
    api("aggregate", "filters=" + q("visit:source==a\\|b"), id="an escaped bar"),
    api("aggregate", "filters=" + q("visit:source==\\|"), id="a value that is only an escaped bar"),
    api("aggregate", "filters=" + q("visit:source===="), id="a value of two equals signs"),
    api("aggregate", "filters=" + q("visit:source!=!="), id="a value that looks like an operator"),
    api("aggregate", "filters=visit:source==a%00b", id="NUL in a filter value"),
    api("aggregate", "filters=visit:source==%FF%FE", id="invalid UTF-8 in a filter value"),
    api("aggregate", "filters=visit:source==%ED%A0%80", id="an encoded lone surrogate in a filter value"),
    api(
        "aggregate",
        "filters=" + q("event:page==/\U0001f600|/\uff50\uff41\uff47\uff45|/\u202e"),
        id="emoji, fullwidth and bidi in values",
    ),
    api("aggregate", "filters=" + q(";".join(["visit:source==Google"] * 10)), id="10 filters"),
    api("aggregate", "filters=" + q("event:page==" + many(100)), id="100 alternatives"),
    api("aggregate", "filters=" + q("event:page==/" + "x" * 1999), id="a value of 2000 characters"),
    api("aggregate", "compare=previous_period&filters=" + q(AT_THE_CAPS), id="aggregate at every cap"),
    api("timeseries", "period=30d&filters=" + q(AT_THE_CAPS), id="timeseries at every cap"),
    api(
        "breakdown",
        "property=visit:source&metrics=visitors,bounce_rate&filters=" + q(AT_THE_CAPS),
        id="breakdown at every cap",
    ),
    api("timeseries", "period=day&interval=hour", id="hourly day"),
    api(
        "timeseries",
        "period=custom&date=1970-01-01,1974-01-02&interval=month&filters=visit:source==a",
        id="filtered timeseries over four years",
    ),
    api("timeseries", "period=custom&date=2996-01-01,2999-12-31&interval=date", id="daily timeseries over four years"),
    api("breakdown", "property=event:page&limit=1000&page=100000", id="the last page of the largest pages"),
    api("breakdown", "property=event:page&limit=0010&page=%201%20", id="leading zeros and spaces"),
    api("breakdown", "property=%20visit:country%20&limit=", id="property with spaces, empty limit"),
    api(
        "breakdown", "property=event:name&metrics=visitors,events&filters=event:name!=Signup", id="event names, negated"
    ),
    api("realtime/visitors", "", id="realtime"),
    api("realtime/visitors", "period=week&metrics=nonsense&filters=%7C", id="realtime ignores what it does not read"),
    # -- site_id ------------------------------------------------------------------------------
    api("aggregate", "!period=day", 400, "site_id is required", id="no site_id"),
    api("aggregate", "site_id=", 400, "site_id is required", id="empty site_id"),
    api("aggregate", "site_id=%20%09", 400, "site_id is required", id="blank site_id"),
    api("aggregate", "site_id=example.com&site_id=other.example", 400, "site_id must be given once", id="two site_ids"),
    api(
        "realtime/visitors",
        "site_id=example.com&site_id=example.com",
        400,
        "site_id must be given once",
        id="realtime, site_id twice",
    ),
    api("aggregate", "site_id=%00", 404, "site '\\x00' not found", id="NUL site_id"),
    api("aggregate", "site_id=example.com%00", 404, "not found", id="site_id with a trailing NUL"),
    api("aggregate", "site_id=" + LONG, 404, "not found", id="site_id of 10k characters"),
    api("aggregate", "site_id=%ED%A0%80", 404, "not found", id="site_id an encoded lone surrogate"),
    api("aggregate", "site_id=%FF", 404, "not found", id="site_id invalid UTF-8"),
    api(
        "aggregate",
        "site_id=" + q("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45.com"),
        404,
        "not found",
        id="fullwidth site_id",
    ),
    api(
        "realtime/visitors", "site_id=" + q("\u200bexample.com"), 404, "not found", id="site_id with a zero-width space"
    ),
    # -- repeated parameters ------------------------------------------------------------------
    api("aggregate", "metrics=visitors&metrics=pageviews", 400, "metrics must be given once", id="metrics twice"),
    api(
        "aggregate",
        "filters=visit:source==a&filters=visit:source==b",
        400,
        "filters must be given once",
        id="filters twice",
    ),
    api("timeseries", "period=day&period=7d", 400, "period must be given once", id="period twice"),
    api("breakdown", "property=event:page&limit=1&limit=2", 400, "limit must be given once", id="limit twice"),
    # -- period and date ----------------------------------------------------------------------
    api("aggregate", "period=week", 400, "unknown period 'week'", id="unknown period"),
    api("aggregate", "period=%00", 400, "unknown period '\\x00'", id="NUL period"),
    api("aggregate", "period=" + q("\uff44\uff41\uff59"), 400, "unknown period", id="fullwidth period"),
    api("aggregate", "period=" + LONG, 400, "unknown period", id="period of 10k characters"),
    api("aggregate", "period=day&date=0000-01-01", 400, "the year must be between 1970 and 2999", id="year 0"),
    api("aggregate", "period=day&date=0001-01-01", 400, "the year must be between 1970 and 2999", id="year 1"),
    api("aggregate", "period=day&date=1969-12-31", 400, "the year must be between", id="the day before 1970"),
    api("aggregate", "period=day&date=9999-12-31", 400, "the year must be between", id="year 9999"),
    api("aggregate", "period=day&date=2026-02-30", 400, "no such day", id="February 30th"),
    api("aggregate", "period=day&date=2026-13-01", 400, "no such day", id="month 13"),
    api(
        "aggregate",
        "period=day&date=" + q("\u00b2\u2070\u00b2\u2076-\u00b9\u00b9-\u00b2\u2070"),
        400,
        "expected YYYY-MM-DD",
        id="superscript digits in a date",
    ),
    api(
        "aggregate",
        "period=day&date=" + q("\u0662\u0660\u0662\u0666-\u0661\u0661-\u0662\u0660"),
        400,
        "expected YYYY-MM-DD",
        id="Arabic-Indic digits in a date",
    ),
    api(
        "aggregate",
        "period=day&date=" + q("\uff12\uff10\uff12\uff16-\uff11\uff11-\uff12\uff10"),
        400,
        "expected YYYY-MM-DD",
        id="fullwidth digits in a date",
    ),
    api("aggregate", "period=day&date=2026-11-20T10:00", 400, "expected YYYY-MM-DD", id="a date and time"),
    api("aggregate", "period=day&date=20261120", 400, "expected YYYY-MM-DD", id="a basic ISO date"),
    api("aggregate", "period=day&date=2026-11-20%00", 400, "expected YYYY-MM-DD", id="a date with NUL"),
    api("aggregate", "period=day&date=" + LONG, 400, "expected YYYY-MM-DD", id="a date of 10k characters"),
    api(
        "aggregate",
        "period=7d&date=2026-11-01,2026-11-05",
        400,
        "only valid with period 'custom'",
        id="a range without custom",
    ),
    api("aggregate", "period=custom", 400, "needs date=YYYY-MM-DD,YYYY-MM-DD", id="custom without a range"),
    api("aggregate", "period=custom&date=,2026-11-05", 400, "needs date=", id="custom without a start"),
    api(
        "aggregate",
        "period=custom&date=2026-11-01,2026-11-05,2026-11-09",
        400,
        "needs date=",
        id="custom with three dates",
    ),
    api(
        "aggregate", "period=custom&date=2026-11-20,2026-11-19", 400, "the end is before the start", id="reversed range"
    ),
    api("aggregate", "period=custom&date=1970-01-01,2999-12-31", 400, "at most 1463 days", id="a range of millennia"),
    api("timeseries", "period=custom&date=1970-01-01,1974-01-03", 400, "at most 1463 days", id="one day too long"),
    # -- metrics, compare, interval, property -------------------------------------------------
    api("aggregate", "metrics=sessions", 400, "unknown metric 'sessions'", id="unknown metric"),
    api("aggregate", "metrics=visitors,,pageviews", 400, "unknown metric ''", id="an empty metric"),
    api("aggregate", "metrics=,", 400, "unknown metric ''", id="metrics only a comma"),
    api("aggregate", "metrics=%00", 400, "unknown metric '\\x00'", id="NUL metric"),
    api("aggregate", "metrics=" + LONG, 400, "unknown metric", id="metric of 10k characters"),
    api("aggregate", "metrics=value", 400, "unknown metric 'value'", id="the dashboard's internal metric"),
    api("aggregate", "compare=yes", 400, "only previous_period is supported", id="unknown compare"),
    api("aggregate", "compare=%ED%A0%80", 400, "only previous_period", id="compare an encoded lone surrogate"),
    api("timeseries", "interval=week", 400, "unknown interval 'week'", id="unknown interval"),
    api("timeseries", "interval=%00", 400, "unknown interval", id="NUL interval"),
    api("timeseries", "period=12mo&interval=hour", 400, "limited to periods of 31 days", id="hourly year"),
    api("breakdown", "", 400, "property is required", id="no property"),
    api("breakdown", "property=visit:city", 400, "unknown property 'visit:city'", id="unknown property"),
    api("breakdown", "property=%00", 400, "unknown property", id="NUL property"),
    api("breakdown", "property=" + LONG, 400, "unknown property", id="property of 10k characters"),
    api(
        "breakdown",
        "property=event:name&metrics=bounce_rate",
        400,
        "not available with property",
        id="a metric the property lacks",
    ),
    # -- limit and page -----------------------------------------------------------------------
    api("breakdown", "property=event:page&limit=0", 400, "limit must be a positive integer", id="limit 0"),
    api("breakdown", "property=event:page&limit=-1", 400, "limit must be a positive integer", id="negative limit"),
    api(
        "breakdown", "property=event:page&limit=%C2%B2", 400, "limit must be a positive integer", id="superscript limit"
    ),
    api(
        "breakdown",
        "property=event:page&limit=" + q("\u0663"),
        400,
        "limit must be a positive integer",
        id="Arabic-Indic limit",
    ),
    api(
        "breakdown",
        "property=event:page&limit=" + q("\uff11\uff10"),
        400,
        "limit must be a positive integer",
        id="fullwidth limit",
    ),
    api(
        "breakdown",
        "property=event:page&limit=1e3",
        400,
        "limit must be a positive integer",
        id="limit in exponent form",
    ),
    api("breakdown", "property=event:page&limit=2.5", 400, "limit must be a positive integer", id="fractional limit"),
    api("breakdown", "property=event:page&limit=%2B5", 400, "limit must be a positive integer", id="limit with a plus"),
    api("breakdown", "property=event:page&limit=0x10", 400, "limit must be a positive integer", id="hexadecimal limit"),
    api("breakdown", "property=event:page&limit=1001", 400, "limit must be at most 1000", id="limit too large"),
    api(
        "breakdown",
        "property=event:page&limit=" + "9" * 5000,
        400,
        "limit must be at most 1000",
        id="limit of 5000 digits",
    ),
    api("breakdown", "property=event:page&page=0", 400, "page must be a positive integer", id="page 0"),
    api("breakdown", "property=event:page&page=000", 400, "page must be a positive integer", id="page of zeros"),
    api("breakdown", "property=event:page&page=%C2%B2", 400, "page must be a positive integer", id="superscript page"),
    api("breakdown", "property=event:page&page=100001", 400, "page must be at most 100000", id="page too large"),
    api(
        "breakdown",
        "property=event:page&page=" + "9" * 5000,
        400,
        "page must be at most 100000",
        id="page of 5000 digits",
    ),
    # -- filters ------------------------------------------------------------------------------
    api("aggregate", "filters=" + q(";".join(["visit:source==a"] * 11)), 400, "at most 10 filters", id="11 filters"),
    api("aggregate", "filters=" + q(";".join(["visit:source==a"] * 250)), 400, "at most 10 filters", id="250 filters"),
    api("timeseries", "filters=" + q(";".join(["event:page!=/"] * 5000)), 400, "at most 10 filters", id="5000 filters"),
    api("aggregate", "filters=" + q("event:page==" + many(101)), 400, "at most 100 values", id="101 alternatives"),
    api(
        "breakdown",
        "property=event:page&filters=" + q("visit:source==" + "|".join(["a"] * 20_000)),
        400,
        "at most 100 values",
        id="20k alternatives",
    ),
    api(
        "aggregate",
        "filters=" + q("event:page==/" + "x" * 2000),
        400,
        "1 to 2000 characters",
        id="a value of 2001 characters",
    ),
    api(
        "aggregate",
        "filters=" + q("event:page==" + "x" * 100_000),
        400,
        "1 to 2000 characters",
        id="a value of 100k characters",
    ),
    api("aggregate", "filters=%7C", 400, "expected property==value", id="filter only a bar"),
    api("aggregate", "filters=" + q("visit:source==|"), 400, "1 to 2000 characters", id="an empty alternative"),
    api("aggregate", "filters=" + q("visit:source==a||b"), 400, "1 to 2000 characters", id="two bars"),
    api("aggregate", "filters=" + q("visit:source== "), 400, "1 to 2000 characters", id="a blank value"),
    api("aggregate", "filters=" + q("visit:source=Google"), 400, "expected property==value", id="a single equals sign"),
    api("aggregate", "filters=" + q("visit:source"), 400, "expected property==value", id="no operator"),
    api("aggregate", "filters=" + q("==Google"), 400, "expected property==value", id="no property"),
    api(
        "aggregate",
        "filters=" + q("VISIT:SOURCE==Google"),
        400,
        "expected property==value",
        id="a property in capitals",
    ),
    api("aggregate", "filters=" + q("visit:source<>Google"), 400, "expected property==value", id="another operator"),
    api(
        "aggregate",
        "filters=" + q("visit:city==Paris"),
        400,
        "unknown filter property 'visit:city'",
        id="unknown filter property",
    ),
    api("aggregate", "filters=%00", 400, "invalid filter '\\x00'", id="NUL filter"),
    api("aggregate", "filters=" + LONG, 400, "invalid filter", id="filter of 10k characters"),
]


@pytest.fixture
def stats_site(owner: Any, browser_client: Client) -> Site:
    site = Site.objects.create(domain="example.com", timezone="America/New_York", owner=owner)
    # One real hit, so that the filtered queries have rows to read.
    body = {"n": "pageview", "u": "https://example.com/pricing", "d": "example.com", "r": "https://www.google.com/"}
    assert send(browser_client, body).status_code == 202
    return site


def api_get(endpoint: str, query: str, key: str, site: Site) -> Any:
    query = query.replace("{public_id}", site.public_id).replace("{public_id_lower}", site.public_id.lower())
    if query.startswith("!"):
        query = query[1:]
    elif "site_id=" not in query:
        query = "site_id=example.com&" + query
    client = Client(raise_request_exception=False)  # a crash is a 500 to assert on, not an exception
    return client.get(f"/api/v1/stats/{endpoint}?{query}", HTTP_AUTHORIZATION=f"Bearer {key}")


def assert_error(response: Any, status: int, message: str) -> None:
    assert response["Content-Type"] == "application/json", response.content[:300]
    body = response.json()
    assert (response.status_code, set(body)) == (status, {"error"}), body
    assert isinstance(body["error"], str), body
    assert body["error"], body
    assert message in body["error"]
    assert not INTERNALS.search(body["error"]), body["error"]
    assert len(body["error"]) <= LONGEST_MESSAGE, body["error"]


def test_the_corpus_is_large_enough():
    assert len(API_CASES) >= 60
    assert {case.values[0] for case in API_CASES} == {"realtime/visitors", "aggregate", "timeseries", "breakdown"}


@pytest.mark.parametrize(("endpoint", "query", "status", "message"), API_CASES)
def test_the_stats_api_answers_every_odd_parameter_without_a_5xx(stats_site, key, endpoint, query, status, message):
    response = api_get(endpoint, query, key, stats_site)
    assert response.status_code < 500, response.content[:300]
    if status != OK:
        assert_error(response, status, message)
        return
    assert response.status_code == 200, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    if endpoint == "realtime/visitors":
        assert isinstance(body, int)
    else:
        assert set(body) == {"results"}
        assert isinstance(body["results"], dict if endpoint == "aggregate" else list)


def test_filters_up_to_the_caps_still_find_the_rows(stats_site, key):
    # The fixture's one hit: Google traffic on /pricing; the 100th alternative counts as the first.
    response = api_get("aggregate", "filters=" + q("visit:source==Google;event:page==/pricing|/plans"), key, stats_site)
    assert response.json() == {"results": {"visitors": {"value": 1}}}
    last_of_many = "event:page==" + many(99) + "|/pricing"
    assert api_get("aggregate", "filters=" + q(last_of_many), key, stats_site).json() == {
        "results": {"visitors": {"value": 1}}
    }


def test_the_schema_documents_the_caps(db):
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    for endpoint in ("aggregate", "timeseries", "breakdown"):
        parameters = {p["name"]: p for p in schema["paths"][f"/api/v1/stats/{endpoint}"]["get"]["parameters"]}
        assert "At most 10 filters, 100 alternatives in one filter" in parameters["filters"]["description"]
        assert "1 to 2000 characters" in parameters["filters"]["description"]
        assert "at most 1463 days" in parameters["date"]["description"]


def test_more_query_parameters_than_django_reads_are_a_json_400(stats_site, key):
    query = "&".join(f"x{i}=1" for i in range(1500))
    assert_error(api_get("aggregate", query, key, stats_site), 400, "too many or malformed query parameters")


@pytest.mark.parametrize(
    ("header", "message"),
    [
        ("Bearer \ud800", "invalid API key"),  # a lone surrogate cannot even be hashed
        ("Bearer fk_\x00", "invalid API key"),
        ("Bearer fk_\u00e9", "invalid API key"),
        ("Bearer " + "k" * 10_000, "invalid API key"),
        ("Bearer fk_a fk_b", "expected 'Bearer <api key>'"),
        ("Bearer", "expected 'Bearer <api key>'"),
        ("Bearer \t  ", "expected 'Bearer <api key>'"),
        ("Basic b3duZXI6b3duZXItcGFzc3dvcmQ=", "Authentication credentials were not provided."),
        ("\x00", "Authentication credentials were not provided."),
    ],
)
def test_odd_authorization_headers_are_a_json_401(stats_site, header, message):
    client = Client(raise_request_exception=False)
    response = client.get("/api/v1/stats/aggregate?site_id=example.com", HTTP_AUTHORIZATION=header)
    assert_error(response, 401, message)


def test_a_check_failing_in_an_unplanned_way_shows_none_of_its_words(stats_site, key, monkeypatch, caplog):
    def broken(*args: Any, **kwargs: Any) -> Any:
        raise ValueError("invalid literal for int() with base 10: 'x'")

    monkeypatch.setattr(selectors, "check_metrics", broken)
    response = api_get("aggregate", "", key, stats_site)
    assert_error(response, 400, "invalid parameters")
    assert "parameter check failed unexpectedly" in caplog.text  # the bug stays visible to us

    client = Client()
    client.force_login(stats_site.owner)
    monkeypatch.setattr(report_data, "build_report", broken)
    page = client.get(f"/sites/{stats_site.public_id}/")
    assert page.status_code == 400
    assert "These parameters cannot be shown." in page.content.decode()
    assert "invalid literal" not in page.content.decode()


def test_a_nul_in_a_filter_value_is_a_character_like_any_other():
    [item] = selectors.parse_filters("event:name==a\x00b|c\\|d")
    assert item.values == ("a\x00b", "c|d")


# -- the pages: /sites/<id>/, its export, /share/<token>/ and its export ----------------------


def page(query: str, status: int = OK, message: str = "", *, id: str) -> Any:
    return pytest.param(query, status, message, id=id)


PAGE_CASES = [
    page("", id="defaults"),
    page("period=yesterday&filters=" + q(";visit:source==Google;;"), id="filters with empty parts"),
    page("period=custom&from=2026-11-01&to=2026-11-30&compare=off", id="the range form"),
    page("filters=" + q(AT_THE_CAPS), id="filters at every cap"),
    page("period=day&date=1970-01-01", id="the first allowed day"),
    page("period=12mo&date=2999-12-31", id="the last allowed months"),
    page("filters=visit:source==a%00b&metric=bounce_rate", id="NUL in a filter value"),
    page("period=week", 400, "Unknown period “week”", id="unknown period"),
    page("period=" + LONG, 400, "Unknown period “aaaa", id="period of 10k characters"),
    page("period=%00", 400, "Unknown period “\\x00”", id="NUL period"),
    page("metric=" + q("\u200b"), 400, "Unknown metric “\\u200b”", id="invisible metric"),
    page("compare=%ED%A0%80", 400, "Unknown comparison", id="compare an encoded lone surrogate"),
    page(
        "period=day&date=" + q("\u00b2\u2070\u00b2\u2076-\u00b9\u00b9-\u00b2\u2070"),
        400,
        "expected YYYY-MM-DD",
        id="superscript date",
    ),
    page("period=day&date=0000-01-01", 400, "the year must be between", id="year 0"),
    page("period=custom&from=2026-11-20&to=2026-11-19", 400, "the end is before the start", id="reversed range"),
    page("period=custom&from=1970-01-01&to=2999-12-31", 400, "at most 1463 days", id="a range of millennia"),
    page("period=custom&from=%00&to=", 400, "period 'custom' needs", id="range form with NUL"),
    page("interval=" + LONG, 400, "unknown interval", id="interval of 10k characters"),
    page("filters=" + q(";".join(["visit:source==a"] * 250)), 400, "at most 10 filters", id="250 filters"),
    page("filters=" + q("event:page==" + many(101)), 400, "at most 100 values", id="101 alternatives"),
    page("filters=" + q("event:page==" + "x" * 100_000), 400, "1 to 2000 characters", id="a value of 100k characters"),
    page("filters=%7C%7C", 400, "expected property==value", id="filter only bars"),
    page("&".join(f"x{i}=1" for i in range(1500)), 400, "too many or malformed parameters", id="1500 parameters"),
]
PAGE_MESSAGE_LIMIT = 400


@pytest.fixture
def shared(stats_site: Site) -> SharedLink:
    return SharedLink.objects.create(site=stats_site, token="corpus-token-0123456789")


@pytest.mark.parametrize("where", ["dashboard", "export", "shared dashboard", "shared export"])
@pytest.mark.parametrize(("query", "status", "message"), PAGE_CASES)
def test_the_pages_answer_every_odd_parameter_with_a_page(stats_site, shared, where, query, status, message):
    client = Client(raise_request_exception=False)
    client.force_login(stats_site.owner)
    base = {
        "dashboard": f"/sites/{stats_site.public_id}/",
        "export": f"/sites/{stats_site.public_id}/export.zip",
        "shared dashboard": f"/share/{shared.token}/",
        "shared export": f"/share/{shared.token}/export.zip",
    }[where]
    response = client.get(f"{base}?{query}")
    assert response.status_code < 500
    assert response.status_code == status, response.content[:300]
    if status == OK:
        expected = "application/zip" if where.endswith("export") else "text/html; charset=utf-8"
        assert response["Content-Type"] == expected
        return
    text = html.unescape(response.content.decode())
    assert response["Content-Type"] == "text/html; charset=utf-8"
    # The site's own friendly page (the dashboard's alert, or the export's), never Django's bare one.
    friendly = "This view cannot be shown." if where.endswith("dashboard") else "Cannot export this view:"
    assert friendly in text
    said = re.search(r"(?:This view cannot be shown\.|Cannot export this view:)\s*(?:</strong>)?\s*(.*?)<", text, re.S)
    assert said is not None
    assert message in said.group(1)
    assert not INTERNALS.search(said.group(1)), said.group(1)
    assert len(said.group(1)) <= PAGE_MESSAGE_LIMIT


@pytest.mark.parametrize(
    "path",
    [
        "/sites/%00/realtime",
        "/sites/" + "a" * 10_000 + "/realtime",
        "/sites/%ED%A0%80/realtime",
        "/sites/%F0%9F%98%80/realtime",
        "/share/%00/realtime",
        "/share/" + "a" * 10_000 + "/realtime",
    ],
)
def test_the_realtime_counters_answer_odd_ids_with_a_json_404(stats_site, path):
    client = Client(raise_request_exception=False)
    client.force_login(stats_site.owner)
    response = client.get(path)
    assert (response.status_code, response.json()) == (404, {"error": "not found"})


def test_the_realtime_counters_ignore_query_parameters(stats_site, shared):
    client = Client(raise_request_exception=False, HTTP_USER_AGENT=CHROME_UA)
    client.force_login(stats_site.owner)
    junk = "period=%00&filters=" + q(";".join(["visit:source==a"] * 250)) + "&" + "&".join(["x=1"] * 1500)
    for path in (f"/sites/{stats_site.public_id}/realtime", f"/share/{shared.token}/realtime"):
        response = client.get(f"{path}?{junk}")
        assert (response.status_code, set(response.json())) == (200, {"visitors"})

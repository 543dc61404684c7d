"""POST/GET /api/event: every status code of the contract, CORS, body kinds and drops."""

from __future__ import annotations

import json
import logging
import time

import pytest
from django.core.cache import cache
from django.http.request import UnreadablePostError
from django.test import Client

from collector.models import Event
from security import detectors
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db


def pageview(site, **extra):
    return {"n": "pageview", "u": "https://example.com/pricing", "sid": site.public_id, **extra}


def test_it_accepts_text_plain_pageview(browser_client, site):
    response = send(browser_client, pageview(site))
    assert response.status_code == 202
    assert response.content == b"ok"
    assert "X-Dropped" not in response
    assert response["Access-Control-Allow-Origin"] == "*"
    event = Event.objects.get()
    assert (event.name, event.path, event.hostname, event.browser, event.os) == (
        "pageview",
        "/pricing",
        "example.com",
        "Chrome",
        "Windows",
    )


def test_it_accepts_application_json(browser_client, site):
    response = send(browser_client, pageview(site), content_type="application/json")
    assert response.status_code == 202
    assert Event.objects.count() == 1


def test_it_accepts_plausibles_tracker_payload(browser_client, site):
    # Exactly what Plausible's npm tracker sends: domain instead of id, "r": null, revenue object.
    body = {
        "n": "Purchase",
        "u": "https://www.example.com/checkout?utm_source=newsletter&utm_campaign=fall",
        "d": "example.com",
        "r": None,
        "p": {"plan": "pro", "seats": 3},
        "i": True,
        "$": {"amount": "19.99", "currency": "USD"},
        "v": 27,
    }
    response = send(browser_client, body)
    assert response.status_code == 202
    event = Event.objects.get()
    assert event.name == "Purchase"
    assert event.value == 1999
    assert event.props == {"plan": "pro", "seats": "3"}
    assert (event.utm_source, event.utm_campaign) == ("newsletter", "fall")


def test_it_accepts_a_comma_list_of_domains(browser_client, site):
    from sites.models import Site

    Site.objects.create(domain="rollup.example.com")
    body = {"n": "pageview", "u": "https://rollup.example.com/", "d": "rollup.example.com,example.com,unknown.org"}
    assert send(browser_client, body).status_code == 202
    assert Event.objects.count() == 2  # one per known site that allows the hostname


def test_it_answers_cors_preflight(browser_client):
    response = browser_client.options("/api/event", HTTP_ORIGIN="https://example.com")
    assert response.status_code == 204
    assert response["Access-Control-Allow-Origin"] == "*"
    assert "POST" in response["Access-Control-Allow-Methods"]
    assert response["Access-Control-Allow-Headers"] == "Content-Type"


@pytest.mark.parametrize("method", ["put", "patch", "delete"])
def test_it_refuses_other_methods_with_405(browser_client, method):
    response = getattr(browser_client, method)("/api/event")
    assert response.status_code == 405
    assert response.json() == {"error": "use POST (or GET for the pixel)"}
    assert "POST" in response["Allow"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("not json", "body must be JSON"),
        ("", "body must be JSON"),
        (b"\xff\xfe\x00", "body must be JSON"),
        ("[1, 2]", "body must be a JSON object"),
        ({"u": "https://example.com/", "sid": "X"}, "name is required"),
        ({"n": "", "u": "https://example.com/", "sid": "X"}, "name is required"),
        ({"n": "x" * 121, "u": "https://example.com/", "sid": "X"}, "name must be at most 120 characters"),
        ({"n": "pageview", "sid": "X"}, "url is required"),
        ({"n": "pageview", "u": "javascript:alert(1)", "sid": "X"}, "url must be an absolute http(s) URL"),
        ({"n": "pageview", "u": "/relative", "sid": "X"}, "url must be an absolute http(s) URL"),
        ({"n": "pageview", "u": "https://example.com/" + "a" * 2000, "sid": "X"}, "url must be at most 2000 characters"),
        ({"n": "pageview", "u": "http://[::1/", "sid": "X"}, "url is not a valid URL"),
        ({"n": "pageview", "u": "https://example.com/"}, "site (or domain) is required"),
        ({"n": "pageview", "u": "https://example.com/", "sid": 5}, "site must be a string"),
        ({"n": "pageview", "u": "https://example.com/", "sid": "X", "w": "wide"}, "width must be an integer"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "value": 1.5}, "value must be an integer"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "$": {"amount": "abc"}}, "revenue amount must be a number"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "$": 5}, 'revenue must be {"amount": "19.99", "currency": "USD"}'),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "p": [1]}, "props must be an object of string pairs"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "p": {"a": {"b": 1}}}, "props values must be strings, numbers or booleans"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "p": {str(i): "v" for i in range(31)}}, "props may have at most 30 pairs"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "i": "maybe"}, "interactive must be true or false"),
        ({"n": "x", "u": "https://example.com/", "sid": "X", "r": 12}, "referrer must be a string"),
        ({"n": "engagement", "u": "https://example.com/", "sid": "X", "sd": 101}, "sd must be between 0 and 100"),
    ],
)  # fmt: skip
def test_it_rejects_malformed_input_with_400(browser_client, site, body, message):
    response = send(browser_client, body)
    assert response.status_code == 400
    assert response.json() == {"error": message}
    assert Event.objects.count() == 0


def test_it_answers_404_for_an_unknown_site(browser_client, site):
    response = send(browser_client, {"n": "pageview", "u": "https://example.com/", "sid": "NOPE2345"})
    assert response.status_code == 404
    assert response.json() == {"error": "unknown site"}
    response = send(browser_client, {"n": "pageview", "u": "https://example.com/", "d": "unknown.org"})
    assert response.status_code == 404


def test_it_refuses_bodies_over_4_kib_with_413(browser_client, site):
    body = json.dumps(pageview(site, p={"k": "x" * 4100}))
    response = send(browser_client, body)
    assert response.status_code == 413
    assert "error" in response.json()
    assert Event.objects.count() == 0


def test_it_refuses_an_oversized_body_that_lies_about_its_length(browser_client, site):
    body = json.dumps(pageview(site, p={"k": "x" * 5000}))
    response = browser_client.generic("POST", "/api/event", body, content_type="text/plain", CONTENT_LENGTH="100")
    # The stream is cut at the declared length, so the JSON is truncated: a 400, never a 500.
    assert response.status_code in (400, 413)


def test_it_drops_bots_with_202(site):
    bot = Client(HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)")
    response = send(bot, pageview(site))
    assert response.status_code == 202
    assert response["X-Dropped"] == "bot"
    headless = Client(HTTP_USER_AGENT="Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0.0.0 Safari/537.36")
    assert send(headless, pageview(site))["X-Dropped"] == "bot"
    assert send(Client(), pageview(site))["X-Dropped"] == "bot"  # no User-Agent at all
    assert send(Client(HTTP_USER_AGENT="curl/8.4.0"), pageview(site))["X-Dropped"] == "bot"
    assert Event.objects.count() == 0


def test_it_drops_hostnames_that_are_not_the_sites(browser_client, site):
    response = send(browser_client, {"n": "pageview", "u": "https://evil.org/", "sid": site.public_id})
    assert response.status_code == 202
    assert response["X-Dropped"] == "hostname"
    # Subdomains of the site are its own.
    assert "X-Dropped" not in send(
        browser_client, {"n": "pageview", "u": "https://blog.example.com/", "sid": site.public_id}
    )
    assert Event.objects.count() == 1


def test_it_drops_localhost_unless_the_site_allows_it(browser_client, site):
    for url in ("http://localhost:3000/", "http://127.0.0.1:8000/", "http://app.localhost/"):
        response = send(browser_client, {"n": "pageview", "u": url, "sid": site.public_id})
        assert response.status_code == 202
        assert response["X-Dropped"] == "localhost", url
    site.allowed_hostnames = "localhost"
    site.save()
    assert "X-Dropped" not in send(
        browser_client, {"n": "pageview", "u": "http://localhost:3000/", "sid": site.public_id}
    )
    assert Event.objects.count() == 1


def test_the_pixel_counts_a_get_with_query_parameters(browser_client, site):
    response = browser_client.get(
        "/api/event", {"n": "pageview", "u": "https://example.com/noscript", "sid": site.public_id, "w": "390"}
    )
    assert response.status_code == 202
    assert response["Content-Type"] == "image/gif"
    assert response.content.startswith(b"GIF89a")
    event = Event.objects.get()
    assert (event.path, event.device) == ("/noscript", "Mobile")


def test_the_pixel_reports_bad_input_as_json(browser_client, site):
    response = browser_client.get("/api/event", {"n": "pageview", "sid": site.public_id})
    assert response.status_code == 400
    assert response.json() == {"error": "url is required"}


def test_null_optional_fields_are_accepted(browser_client, site):
    body = {"n": "pageview", "u": "https://example.com/", "sid": site.public_id, "r": None, "w": None, "p": None}
    assert send(browser_client, body).status_code == 202


def test_hash_mode_keeps_the_fragment(browser_client, site):
    send(browser_client, {"n": "pageview", "u": "https://example.com/app#/settings", "sid": site.public_id, "h": 1})
    send(browser_client, {"n": "pageview", "u": "https://example.com/app#section", "sid": site.public_id})
    assert sorted(Event.objects.values_list("path", flat=True)) == ["/app", "/app#/settings"]


def test_referrer_is_reduced_to_source_and_host_path(browser_client, site):
    send(browser_client, pageview(site, r="https://www.google.com/search?q=private+words"))
    event = Event.objects.get()
    assert (event.referrer_source, event.referrer) == ("Google", "google.com/search")


def test_country_is_taken_only_behind_trusted_proxies(browser_client, site, settings):
    send(browser_client, pageview(site), HTTP_CLOUDFRONT_VIEWER_COUNTRY="DE")
    settings.TRUSTED_PROXY_HOPS = 1
    send(browser_client, pageview(site), HTTP_CLOUDFRONT_VIEWER_COUNTRY="FR", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert sorted(Event.objects.values_list("country", flat=True)) == ["", "FR"]


def test_the_script_is_served_with_long_cache_headers(client):
    response = client.get("/script.js")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/javascript")
    assert "max-age=86400" in response["Cache-Control"]
    body = b"".join(response.streaming_content) if response.streaming else response.content
    assert b"/api/event" in body
    assert b"document.cookie" not in body
    assert b"localStorage" not in body


def test_engagement_is_never_a_custom_event(browser_client, site):
    from collector.models import DailyBreakdown

    send(browser_client, pageview(site))
    response = send(
        browser_client,
        {"n": "engagement", "u": "https://example.com/pricing", "sid": site.public_id, "sd": 80, "e": 12000},
    )
    assert response.status_code == 202
    assert not DailyBreakdown.objects.filter(dim="event").exists()
    page = DailyBreakdown.objects.get(dim="page", value="/pricing")
    assert (page.pageviews, page.engaged_ms, page.engagements, page.scroll_sum) == (1, 12000, 1, 80)


def test_user_agent_header_is_what_counts_not_a_body_field(site):
    client = Client(HTTP_USER_AGENT=CHROME_UA)
    send(client, pageview(site, ua="Googlebot"))
    assert Event.objects.get().browser == "Chrome"


def test_the_tracker_stays_small():
    import gzip

    from collector.views import SCRIPT_PATH

    assert len(gzip.compress(SCRIPT_PATH.read_bytes(), 9)) <= 1536  # 1.5 KiB gzipped, as served


# -- hardening (issue 9): text that cannot be stored, numbers of any size, nesting, the pixel ------

SURROGATE = "a lone UTF-16 surrogate (a string cut inside an emoji?)"


def malformed_count(ip: str = "203.0.113.10") -> int:
    return cache.get(detectors._counter_key("malformed", ip, time.time())) or 0


def test_the_poison_hit_of_the_issue_is_refused_with_the_field_named(browser_client, site):
    site.domain = "site.test"
    site.save()
    body = r'{"n":"\ud800","u":"https://site.test/","d":"site.test"}'  # as JSON.stringify escapes it
    response = send(browser_client, body)
    assert response.status_code == 400
    assert response.json() == {"error": f"name is not valid text: it contains {SURROGATE}"}
    assert Event.objects.count() == 0


def test_a_refused_poison_hit_never_reaches_the_broker(browser_client, site, redis_broker):
    assert send(browser_client, pageview(site, p={"k": "\ud83d"})).status_code == 400
    assert send(browser_client, pageview(site)).status_code == 202
    assert [item["args"][0][0]["p"] for item in redis_broker()] == ["/pricing"]


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"n": "Signup \ud83d"}, "name"),
        ({"name": "\udc00"}, "name"),
        ({"u": "https://example.com/\ud800"}, "url"),
        ({"r": "https://ref.test/\ude00"}, "referrer"),
        ({"referrer": "\ud800"}, "referrer"),
        ({"d": "example.com\ud800"}, "domain"),
        ({"sid": "\ud800"}, "site"),
        ({"p": {"\ud800": "v"}}, "props"),
        ({"p": {"k": "\ud800"}}, "props"),
        ({"props": '{"k": "\\ud800"}'}, "props"),
        ({"$": {"amount": "1\ud800", "currency": "USD"}}, "revenue"),
        ({"revenue": {"amount": "1", "currency": "\ud800SD"}}, "revenue"),
        ({"w": "\ud800"}, "width"),
        ({"i": "\ud800"}, "interactive"),
        ({"h": "\ud800"}, "h"),
        ({"x-custom": "\ud800"}, "an unknown field"),
    ],
)
def test_lone_surrogates_are_refused_in_every_field(browser_client, site, fields, where):
    response = send(browser_client, pageview(site, **fields))  # json.dumps writes \ud800 escapes
    assert response.status_code == 400
    assert response.json() == {"error": f"{where} is not valid text: it contains {SURROGATE}"}
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("fields", "where"),
    [
        ({"n": "page\x00view"}, "name"),
        ({"u": "https://example.com/\x00"}, "url"),
        ({"r": "\x00"}, "referrer"),
        ({"d": "\x00example.com"}, "domain"),
        ({"p": {"k": "a\x00b"}}, "props"),
        ({"p": {"\x00": "v"}}, "props"),
    ],
)
def test_nul_characters_are_refused_in_every_field(browser_client, site, fields, where):
    response = send(browser_client, pageview(site, **fields), content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {"error": f"{where} is not valid text: it contains a NUL character"}


def test_a_field_name_that_is_not_text_is_refused_without_echoing_it(browser_client, site):
    response = send(browser_client, pageview(site, **{"\ud800x": 1}))
    assert response.status_code == 400
    assert response.json() == {"error": f"a field name is not valid text: it contains {SURROGATE}"}


def test_emoji_are_kept_whole(browser_client, site):
    response = send(browser_client, pageview(site, n="Signup 😀", p={"mood": "😀🎉"}))  # escaped as pairs
    assert response.status_code == 202
    event = Event.objects.get()
    assert (event.name, event.props) == ("Signup 😀", {"mood": "😀🎉"})


def purchase(site, amount, currency="USD"):
    return pageview(site, n="Purchase", **{"$": {"amount": amount, "currency": currency}})


@pytest.mark.parametrize(
    ("amount", "cents"),
    [("19.99", 1999), (19.99, 1999), (5, 500), ("0.005", 1), ("-0", 0), ("1e-999999", 0), ("1E2", 10000),
     ("100000000000", 10**13)],
)  # fmt: skip
def test_revenue_amounts_are_read_as_exact_cents(browser_client, site, amount, cents):
    assert send(browser_client, purchase(site, amount)).status_code == 202
    assert Event.objects.get().value == cents


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("1e26", "revenue amount is out of range"),
        (10**26, "revenue amount is out of range"),
        (10**30, "revenue amount is out of range"),
        (1e26, "revenue amount is out of range"),
        (1e308, "revenue amount is out of range"),
        ("1e999", "revenue amount is out of range"),
        ("1e99999999999999999999", "revenue amount is out of range"),
        ("1e-99999999999999999999", "revenue amount is out of range"),
        ("100000000000.01", "revenue amount is out of range"),
        ("NaN", "revenue amount must be a number"),
        ("Infinity", "revenue amount must be a number"),
        ("-Infinity", "revenue amount must be a number"),
        ("sNaN", "revenue amount must be a number"),
        ("\uff11\uff12", "revenue amount must be a number"),
        ("1_000", "revenue amount must be a number"),
        (" 12", "revenue amount must be a number"),
        ("", "revenue amount must be a number"),
        (True, "revenue amount must be a number"),
        (None, "revenue amount must be a number"),
        ({"v": 1}, "revenue amount must be a number"),
        ("-5", "revenue amount must not be negative"),
        (-0.01, "revenue amount must not be negative"),
        (-(10**30), "revenue amount must not be negative"),
    ],
)
def test_revenue_amounts_of_any_size_get_a_clear_400(browser_client, site, amount, message):
    response = send(browser_client, purchase(site, amount))
    assert response.status_code == 400
    assert response.json() == {"error": message}


def test_revenue_written_as_a_json_number_literal_out_of_range_is_a_400(browser_client, site):
    body = json.dumps(pageview(site, n="Purchase"))[:-1] + ', "$": {"amount": 1e999, "currency": "USD"}}'
    response = send(browser_client, body)
    assert response.status_code == 400
    assert response.json() == {"error": "revenue amount is out of range"}


@pytest.mark.parametrize("currency", ["US", "USDT", "U$D", "\uff11\uff12\uff13", 840, True, ""])
def test_a_revenue_currency_must_be_a_three_letter_code(browser_client, site, currency):
    response = send(browser_client, purchase(site, "5", currency))
    assert response.status_code == 400
    assert response.json() == {"error": "revenue currency must be a 3-letter code such as USD"}


def test_revenue_without_a_currency_is_accepted(browser_client, site):
    body = pageview(site, n="Purchase", **{"$": {"amount": "5"}})
    assert send(browser_client, body).status_code == 202
    assert Event.objects.get().value == 500


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "value must be between 0 and 10000000000000"),
        ("-1", "value must be between 0 and 10000000000000"),
        (10**30, "value must be between 0 and 10000000000000"),
        (1e308, "value must be between 0 and 10000000000000"),
        ("9" * 4000, "value must be between 0 and 10000000000000"),
        ("1e999", "value must be an integer"),
        ("NaN", "value must be an integer"),
        (1e26, "value must be between 0 and 10000000000000"),
        (1.5, "value must be an integer"),
    ],
)
def test_value_of_any_size_or_sign_gets_a_clear_400(browser_client, site, value, message):
    response = send(browser_client, pageview(site, n="Signup", value=value))
    assert response.status_code == 400
    assert response.json() == {"error": message}


@pytest.mark.parametrize("text", ["١٢٣", "²", "1_000", " 12 ", "12\n", "0x10", "1e3", "+-1", "12.0"])
def test_integers_are_plain_ascii_digits(browser_client, site, text):
    response = send(browser_client, pageview(site, w=text))
    assert response.status_code == 400
    assert response.json() == {"error": "width must be an integer"}


@pytest.mark.parametrize("text", ["390", "+390", "0390"])
def test_integers_may_carry_a_sign_and_leading_zeros(browser_client, site, text):
    assert send(browser_client, pageview(site, w=text)).status_code == 202
    assert Event.objects.get().device == "Mobile"  # 390 px


def test_hash_mode_errors_name_the_hash_mode_field(browser_client, site):
    response = send(browser_client, pageview(site, h="yes"))
    assert response.status_code == 400
    assert response.json() == {"error": "h must be true or false"}


def test_a_host_longer_than_dns_allows_is_refused(browser_client, site):
    response = send(browser_client, pageview(site, u="https://" + "a" * 300 + ".example.com/"))
    assert response.status_code == 400
    assert response.json() == {"error": "url host must be at most 253 characters"}


def test_a_long_utm_source_is_cut_to_the_width_of_the_source_column(browser_client, site):
    # The campaign's source becomes the visit's source (100 characters): MySQL's strict mode
    # refused the whole batch when it was longer.
    response = send(browser_client, pageview(site, u="https://example.com/?utm_source=" + "s" * 250))
    assert response.status_code == 202
    event = Event.objects.get()
    assert (event.utm_source, event.referrer_source) == ("s" * 100, "s" * 100)


DEEP = "[" * 2000 + "]" * 2000


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (DEEP, "body is nested too deeply (at most 8 levels)"),
        ('{"":' * 800 + "1" + "}" * 800, "body is nested too deeply (at most 8 levels)"),
        ("[" * 9 + "]" * 9, "body is nested too deeply (at most 8 levels)"),
        ('{"n": "pageview", "p": ' + DEEP[1000:3000] + "}", "body is nested too deeply (at most 8 levels)"),
        (json.dumps({"n": "x", "u": "https://example.com/", "d": "example.com", "p": DEEP[:1800] + DEEP[-1800:]}),
         "props is nested too deeply (at most 8 levels)"),
    ],
)  # fmt: skip
def test_deeply_nested_json_is_a_400_not_a_recursion_error(browser_client, site, body, message):
    for content_type in ("text/plain", "application/json"):
        response = send(browser_client, body, content_type=content_type)
        assert response.status_code == 400
        assert response.json() == {"error": message}


def test_nesting_is_counted_outside_strings_only(browser_client, site):
    response = send(
        browser_client, pageview(site, p={"q": "[[[[[[[[[[{{{{{{{{{{"}, u="https://example.com/?q=" + "[" * 20)
    )
    assert response.status_code == 202


def test_nan_and_infinity_are_not_json(browser_client, site):
    body = json.dumps(pageview(site))[:-1] + ', "w": NaN}'
    response = send(browser_client, body)
    assert response.status_code == 400
    assert response.json() == {"error": "body must be JSON"}


def test_the_pixel_refuses_deep_props_and_takes_props_and_revenue_as_json(browser_client, site):
    base = f"n=Purchase&u=https://example.com/&sid={site.public_id}"
    response = browser_client.get("/api/event", QUERY_STRING=base + "&p=" + "[" * 1500 + "]" * 1500)
    assert response.status_code == 400
    assert response.json() == {"error": "props is nested too deeply (at most 8 levels)"}
    response = browser_client.get("/api/event", QUERY_STRING=base + "&$=" + "{" * 1500)
    assert response.status_code == 400
    assert response.json() == {"error": "revenue is nested too deeply (at most 8 levels)"}
    response = browser_client.get(
        "/api/event", {"n": "Purchase", "u": "https://example.com/", "sid": site.public_id, "p": '{"plan": "pro"}',
                       "$": '{"amount": "19.99", "currency": "USD"}'}
    )  # fmt: skip
    assert response.status_code == 202
    event = Event.objects.get()
    assert (event.props, event.value) == ({"plan": "pro"}, 1999)


def test_the_pixel_caps_its_query_string_like_a_body(browser_client, site):
    query = f"n=pageview&u=https://example.com/&sid={site.public_id}&p=" + "x" * 4096
    response = browser_client.get("/api/event", QUERY_STRING=query)
    assert response.status_code == 414
    assert response.json() == {"error": "query string over 4096 bytes"}
    assert response["Access-Control-Allow-Origin"] == "*"


def test_the_pixel_answers_400_to_too_many_parameters(browser_client, site):
    query = f"n=pageview&u=https://example.com/&sid={site.public_id}" + "&" * 1200
    response = browser_client.get("/api/event", QUERY_STRING=query)
    assert response.status_code == 400
    assert response.json() == {"error": "too many query parameters"}


def test_the_pixel_treats_empty_and_repeated_parameters_gently(browser_client, site):
    query = f"n=x%00&n=pageview&u=https://example.com/a&sid={site.public_id}&w=&r=&p=&value=&i=&h=&%zz=%"
    response = browser_client.get("/api/event", QUERY_STRING=query)
    assert response.status_code == 202
    event = Event.objects.get()
    assert (event.name, event.path) == ("pageview", "/a")


def test_the_pixel_refuses_nul_characters(browser_client, site):
    query = f"n=page%00view&u=https://example.com/&sid={site.public_id}"
    response = browser_client.get("/api/event", QUERY_STRING=query)
    assert response.status_code == 400
    assert response.json() == {"error": "name is not valid text: it contains a NUL character"}


@pytest.mark.parametrize("length", ["abc", "-1", "١٢", " 12", "1e3"])
def test_a_content_length_that_is_not_plain_digits_is_a_400(browser_client, site, length):
    response = send(browser_client, pageview(site), CONTENT_LENGTH=length)
    assert response.status_code == 400
    assert response.json() == {"error": "invalid Content-Length"}


def test_a_garbage_origin_header_is_not_a_500(browser_client, site):
    response = send(browser_client, pageview(site), HTTP_ORIGIN="http://[::1")
    assert response.status_code == 202


class BrokenStream:
    """A request body whose client went away half-way."""

    def read(self, *args):
        raise UnreadablePostError("connection reset")

    readline = read


def _unknown_site(client, site):
    return send(client, {"n": "pageview", "u": "https://example.com/", "sid": "NOPE2345"})


REJECTIONS = {
    "400 not JSON": (lambda client, site: send(client, "{nope"), 400),
    "400 surrogate": (lambda client, site: send(client, pageview(site, n="\ud800")), 400),
    "400 nested": (lambda client, site: send(client, DEEP), 400),
    "400 bad Content-Length": (lambda client, site: send(client, pageview(site), CONTENT_LENGTH="x"), 400),
    "400 unreadable body": (
        lambda client, site: send(client, pageview(site), **{"wsgi.input": BrokenStream(), "CONTENT_LENGTH": "50"}),
        400,
    ),
    "400 pixel": (lambda client, site: client.get("/api/event", {"n": "pageview"}), 400),
    "400 pixel too many parameters": (lambda client, site: client.get("/api/event", QUERY_STRING="&" * 1200), 400),
    "404 unknown site": (_unknown_site, 404),
    "404 unknown site on the pixel": (
        lambda client, site: client.get("/api/event", {"n": "pageview", "u": "https://example.com/", "d": "no.test"}),
        404,
    ),
    "405 PUT": (lambda client, site: client.put("/api/event"), 405),
    "405 made-up method": (lambda client, site: client.generic("BREW", "/api/event"), 405),
    "413 declared": (lambda client, site: send(client, pageview(site), CONTENT_LENGTH="5000"), 413),
    "413 read": (lambda client, site: send(client, pageview(site, p={"k": "x" * 5000})), 413),
    "414 pixel": (lambda client, site: client.get("/api/event", QUERY_STRING="n=" + "x" * 5000), 414),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_every_collector_rejection_counts_as_malformed(browser_client, site, frozen_clock, case):
    request, status = REJECTIONS[case]
    response = request(browser_client, site)
    assert response.status_code == status
    assert response.json()["error"]
    assert response["Access-Control-Allow-Origin"] == "*"
    assert malformed_count() == 1


def test_the_preflight_and_accepted_hits_do_not_count_as_malformed(browser_client, site, frozen_clock):
    browser_client.options("/api/event")
    send(browser_client, pageview(site))
    send(browser_client, pageview(site, u="https://evil.test/"))  # dropped on purpose, not malformed
    assert malformed_count() == 0


def test_an_unexpected_parsing_error_is_a_400_counted_and_logged_without_the_body(
    browser_client, site, frozen_clock, monkeypatch, caplog
):
    def broken(data):
        raise RuntimeError(f"bug while reading {data['n']}")

    monkeypatch.setattr("collector.views.parse_hit", broken)
    with caplog.at_level(logging.INFO, logger="collector.views"):
        response = send(browser_client, pageview(site, n="secret-body-text"))
    assert response.status_code == 400
    assert response.json() == {"error": "this hit could not be read"}
    assert response["Access-Control-Allow-Origin"] == "*"
    assert malformed_count() == 1
    lines = [record.getMessage() for record in caplog.records if record.name == "collector.views"]
    assert len(lines) == 1
    assert "RuntimeError" in lines[0]
    assert "secret-body-text" not in caplog.text
    assert "203.0.113.10" not in caplog.text


@pytest.mark.django_db
def test_a_browser_name_longer_than_its_column_is_cut_before_it_is_queued(site, monkeypatch, redis_broker):
    # Some ua-parser rules copy part of the User-Agent into the family: a crafted header could
    # make a name the worker's 60-character column refuses.
    from types import SimpleNamespace

    from collector import enrich

    long_family = SimpleNamespace(
        user_agent=SimpleNamespace(family="B" * 300), os=SimpleNamespace(family="O" * 300), device=None
    )
    monkeypatch.setattr(enrich, "parse_ua", lambda _ua: long_family)
    enrich.parse_agent.cache_clear()
    try:
        client = Client(HTTP_USER_AGENT="Mozilla/5.0 (crafted) " + "x" * 40, REMOTE_ADDR="203.0.113.77")
        response = send(client, {"n": "pageview", "u": "https://example.com/", "d": "example.com"})
    finally:
        enrich.parse_agent.cache_clear()
    assert response.status_code == 202
    (message,) = redis_broker()
    (hit,) = message["args"][0]
    assert hit["b"] == "B" * 60
    assert hit["os"] == "O" * 60

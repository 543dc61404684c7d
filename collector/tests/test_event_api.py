"""POST/GET /api/event: every status code of the contract, CORS, body kinds and drops."""

from __future__ import annotations

import json

import pytest
from django.test import Client

from collector.models import Event
from conftest import CHROME_UA, send

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
    from dashboard.models import Site

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

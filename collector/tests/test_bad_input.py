"""A bad-input corpus for the public collector: what an attacker, a fuzzer or a broken tracker sends.

Each entry is (label, request, expected status). Every answer must be the documented one, never a
5xx; every 4xx carries a JSON {"error": ...} body; every answer carries the CORS header (a browser
must be able to read the error). Then the whole corpus is replayed from one address between two
good hits: each 4xx counted for the `malformed` detector, and the good hits still written.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import pytest
from django.core.cache import cache
from django.test import Client

from collector.models import Event
from security import detectors
from testing import CHROME_UA

pytestmark = pytest.mark.django_db

GOOD = {"n": "pageview", "u": "https://example.com/", "d": "example.com"}
URL = "https://example.com/"


@dataclass(frozen=True)
class Req:
    method: str
    body: str | bytes = ""
    content_type: str = "text/plain"
    query: str = ""  # the raw QUERY_STRING, as a WSGI server hands it over (latin-1 text)
    meta: tuple[tuple[str, str], ...] = ()  # extra environ: headers, CONTENT_LENGTH


def post(body: str | bytes, content_type: str = "text/plain", **meta: str) -> Req:
    return Req("POST", body, content_type, meta=tuple(meta.items()))


def hit(extra: dict[str, Any] | None = None, /, **fields: Any) -> str:
    """A good pageview's JSON with some fields changed (None removes one). Python strings with a
    lone surrogate come out as a JSON escape (\\ud800), as a browser's JSON.stringify writes it."""
    data = {**GOOD, **(extra or {}), **fields}
    return json.dumps({key: value for key, value in data.items() if value is not None})


def raw(**fields: str) -> str:
    """Like hit(), but field values are JSON text pasted as they are (NaN, 1e999, deep nesting)."""
    body = hit()[:-1]
    return body + "".join(f', "{key}": {text}' for key, text in fields.items()) + "}"


def rev(amount: Any, currency: Any = "USD") -> str:
    return hit({"$": {"amount": amount, "currency": currency}}, n="Purchase")


def get(query: str | dict[str, str]) -> Req:
    return Req("GET", query=query if isinstance(query, str) else urlencode(query))


def pixel(**fields: str) -> Req:
    return get({**GOOD, **fields})


def call(method: str) -> Req:
    return Req(method)


DEEP_ARRAY = "[" * 2000 + "]" * 2000
DEEP_OBJECT = '{"":' * 800 + "1" + "}" * 800


CORPUS: list[tuple[str, Req, int]] = [
    # -- bodies that are fine, or oddities the contract accepts ---------------------------------
    ("good pageview", post(hit()), 202),
    ("plausible's tracker payload", post(json.dumps({**GOOD, "r": None, "p": {"plan": "pro"}, "i": True, "v": 27})), 202),
    ("engagement with sd and e", post(hit(n="engagement", sd=80, e=12000)), 202),
    ("escaped emoji (a valid surrogate pair)", post(hit(p={"mood": "😀"})), 202),
    ("raw UTF-8 emoji in the name", post(hit(n="Signup 😀")), 202),
    ("UTF-8 byte-order mark", post(b"\xef\xbb\xbf" + hit().encode()), 202),
    ("brackets inside strings are not nesting", post(hit(u=URL + "?q=" + "[{" * 40)), 202),
    ("unknown extra fields", post(hit(foo="bar", v=3)), 202),
    ("url with a bad port is still a page", post(hit(u="https://user:pw@example.com:99999/x")), 202),
    ("referrer that is not a URL", post(hit(r="::::")), 202),
    ("referrer over 2000 characters", post(hit(r="https://ref.test/" + "a" * 3000)), 202),
    ("props number 10**30", post(hit(p={"big": 10**30})), 202),
    ("props null value", post(hit(p={"a": None, "b": "x"})), 202),
    ("props key of 1000 characters", post(hit(p={"k" * 1000: "v"})), 202),
    ("props as a JSON string", post(hit(p='{"plan": "pro"}')), 202),
    ("value with a plus sign", post(hit(value="+12")), 202),
    ("value minus zero", post(hit(value="-0")), 202),
    ("width as an integral float", post(hit(w=390.0)), 202),
    ("sd as an integral float", post(hit(n="engagement", sd=100.0, e=5)), 202),
    ("revenue minus zero", post(rev("-0")), 202),
    ("revenue with a tiny exponent", post(rev("1e-999999")), 202),
    ("revenue at the maximum", post(rev("100000000000")), 202),
    ("revenue without a currency", post(hit({"$": {"amount": "5"}}, n="Purchase")), 202),
    ("revenue lowercase currency", post(rev("5", "eur")), 202),
    ("long utm_source", post(hit(u=URL + "?utm_source=" + "s" * 250)), 202),
    ("hostname not the site's", post(hit(u="https://evil.test/")), 202),
    ("garbage Origin header", post(hit(), HTTP_ORIGIN="http://[::1"), 202),
    ("no Content-Type", post(hit(), content_type=""), 202),
    ("multipart Content-Type, JSON body", post(hit(), content_type="multipart/form-data; boundary=x"), 202),
    ("charset utf-16 declared, UTF-8 sent", post(hit(), content_type="application/json; charset=utf-16"), 202),
    ("application/json", post(hit(), content_type="application/json"), 202),
    # -- not JSON, or not a JSON object ----------------------------------------------------------
    ("not JSON", post("not json"), 400),
    ("empty body", post(""), 400),
    ("null", post("null"), 400),
    ("array", post("[]"), 400),
    ("string", post('"pageview"'), 400),
    ("number", post("123"), 400),
    ("empty object", post("{}"), 400),
    ("truncated object", post(hit()[:-5]), 400),
    ("trailing garbage", post(hit() + "xyz"), 400),
    ("two objects", post(hit() + hit()), 400),
    ("NaN literal", post(raw(w="NaN")), 400),
    ("Infinity literal", post(raw(value="Infinity")), 400),
    ("-Infinity revenue", post(raw(**{"$": '{"amount": -Infinity}'})), 400),
    ("raw invalid UTF-8", post(b'{"n":"\xff","u":"https://example.com/","d":"example.com"}'), 400),
    ("raw UTF-8-encoded surrogate", post(b'{"n":"\xed\xa0\x80","u":"https://example.com/","d":"example.com"}'), 400),
    ("UTF-16 body", post(hit().encode("utf-16")), 400),
    ("binary", post(bytes(range(256)), content_type="image/png"), 400),
    ("form-encoded", post(urlencode(GOOD), content_type="application/x-www-form-urlencoded"), 400),
    ("not JSON as application/json", post("{n: pageview}", content_type="application/json"), 400),
    # -- lone surrogates and NUL characters, in every text field ---------------------------------
    ("lone high surrogate in name", post(hit(n="\ud800")), 400),
    ("lone low surrogate in name", post(hit(n="x\udc00")), 400),
    ("reversed surrogate pair in name", post(hit(n="\ude00\ud83d")), 400),
    ("emoji cut in half in name", post(hit(n="Signup \ud83d")), 400),
    ("surrogate in url", post(hit(u=URL + "\ud800")), 400),
    ("surrogate in url host", post(hit(u="https://\ud800.example.com/")), 400),
    ("surrogate in referrer", post(hit(r="https://ref.test/\ud800")), 400),
    ("surrogate in domain", post(hit(d="example.com\ud800")), 400),
    ("surrogate in site", post(hit(d=None, sid="\ud800")), 400),
    ("surrogate in props value", post(hit(p={"k": "\ud800"})), 400),
    ("surrogate in props key", post(hit(p={"\ud800": "v"})), 400),
    ("surrogate in props sent as a string", post(hit(p=json.dumps({"k": "\udfff"}))), 400),
    ("surrogate in revenue amount", post(rev("1\ud800")), 400),
    ("surrogate in revenue currency", post(rev("1", "US\ud800")), 400),
    ("surrogate in an unknown field", post(hit(foo="\ud800")), 400),
    ("surrogate in a field name", post(hit({"\ud800": 1})), 400),
    ("surrogate in sd", post(hit(n="engagement", sd="\ud800")), 400),
    ("surrogate in interactive", post(hit(i="\ud800")), 400),
    ("surrogate as application/json", post(hit(n="\ud800"), content_type="application/json"), 400),
    ("NUL in name", post(hit(n="page\u0000view")), 400),
    ("NUL in url", post(hit(u=URL + "\u0000")), 400),
    ("NUL in referrer", post(hit(r="https://ref.test/\u0000")), 400),
    ("NUL in domain", post(hit(d="\u0000example.com")), 400),
    ("NUL in props value", post(hit(p={"k": "a\u0000b"})), 400),
    ("NUL in props key", post(hit(p={"\u0000": "v"})), 400),
    ("NUL in a field name", post(hit({"n\u0000": "x"})), 400),
    # -- nesting ------------------------------------------------------------------------------------
    ("2000 nested arrays", post(DEEP_ARRAY), 400),
    ("800 nested objects", post(DEEP_OBJECT), 400),
    ("deep nesting in props", post(raw(p=DEEP_ARRAY[:1500] + DEEP_ARRAY[-1500:])), 400),
    ("deep nesting in the props string", post(hit(p=DEEP_ARRAY[:1800] + DEEP_ARRAY[-1800:])), 400),
    ("nine levels", post(raw(foo="[" * 8 + "]" * 8)), 400),
    ("deep nesting as application/json", post(DEEP_ARRAY, content_type="application/json"), 400),
    # -- revenue and value --------------------------------------------------------------------------
    ("revenue 1e26 as a string", post(rev("1e26")), 400),
    ("revenue 10**30 as an integer", post(rev(10**30)), 400),
    ("revenue 1e308 as a float", post(rev(1e308)), 400),
    ("revenue 1e999 as a string", post(rev("1e999")), 400),
    ("revenue 1e999 as a number", post(raw(**{"$": '{"amount": 1e999, "currency": "USD"}'})), 400),
    ("revenue NaN string", post(rev("NaN")), 400),
    ("revenue Infinity string", post(rev("Infinity")), 400),
    ("revenue exponent beyond Decimal", post(rev("1e99999999999999999999")), 400),
    ("revenue tiny exponent beyond Decimal", post(rev("1e-99999999999999999999")), 400),
    ("revenue just over the maximum", post(rev("100000000000.01")), 400),
    ("revenue negative", post(rev("-5")), 400),
    ("revenue negative cent", post(rev(-0.01)), 400),
    ("revenue amount true", post(rev(True)), 400),
    ("revenue amount null", post(rev(None)), 400),
    ("revenue amount list", post(rev([1])), 400),
    ("revenue amount with spaces", post(rev(" 12")), 400),
    ("revenue full-width digits", post(rev("\uff11\uff12")), 400),
    ("revenue with underscores", post(rev("1_000")), 400),
    ("revenue hexadecimal", post(rev("0x10")), 400),
    ("revenue two-letter currency", post(rev("5", "US")), 400),
    ("revenue currency with a digit", post(rev("5", "US1")), 400),
    ("revenue numeric currency", post(rev("5", 840)), 400),
    ("revenue not an object", post(hit({"$": 5})), 400),
    ("revenue without amount", post(hit({"$": {"currency": "USD"}})), 400),
    ("value negative", post(hit(value=-1)), 400),
    ("value 10**30", post(hit(value=10**30)), 400),
    ("value 1e308", post(hit(value=1e308)), 400),
    ("value 1e999 string", post(hit(value="1e999")), 400),
    ("value NaN string", post(hit(value="NaN")), 400),
    ("value fraction", post(hit(value=1.5)), 400),
    ("value Arabic-Indic digits", post(hit(value="١٢٣")), 400),
    ("value superscript two", post(hit(value="²")), 400),
    ("value with underscores", post(hit(value="1_000")), 400),
    ("value with spaces", post(hit(value=" 12 ")), 400),
    ("value with a newline", post(hit(value="12\n")), 400),
    ("value true", post(hit(value=True)), 400),
    ("value 4000 digits", post(hit(value="9" * 4000)), 400),
    # -- integers and booleans ----------------------------------------------------------------------
    ("width Arabic-Indic digits", post(hit(w="١٢٣")), 400),
    ("width superscript two", post(hit(w="²")), 400),
    ("width negative", post(hit(w=-1)), 400),
    ("width 1e308", post(hit(w=1e308)), 400),
    ("width hexadecimal", post(hit(w="0x10")), 400),
    ("width object", post(hit(w={})), 400),
    ("sd with a percent sign", post(hit(n="engagement", sd="50%")), 400),
    ("e negative", post(hit(n="engagement", e=-1)), 400),
    ("e in exponent notation", post(hit(n="engagement", e="1e3")), 400),
    ("interactive maybe", post(hit(i="maybe")), 400),
    ("hash mode yes", post(hit(h="yes")), 400),
    # -- names, URLs, sites, props ------------------------------------------------------------------
    ("name a number", post(hit(n=5)), 400),
    ("name only spaces", post(hit(n="   ")), 400),
    ("name too long", post(hit(n="x" * 121)), 400),
    ("url not a string", post(hit(u=["https://example.com/"])), 400),
    ("url ftp", post(hit(u="ftp://example.com/")), 400),
    ("url broken IPv6", post(hit(u="http://[::1")), 400),
    ("url host invalid under NFKC", post(hit(u="https://example.com\uff03@evil.test/")), 400),
    ("url host over 253 characters", post(hit(u="https://" + "a" * 300 + ".example.com/")), 400),
    ("url without a host", post(hit(u="https:///nohost")), 400),
    ("url javascript", post(hit(u="javascript:alert(1)")), 400),
    ("referrer a list", post(hit(r=["x"])), 400),
    ("domain a list", post(hit(d=["example.com"])), 400),
    ("no site at all", post(hit(d=None)), 400),
    ("props a list", post(hit(p=[1])), 400),
    ("props string not JSON", post(hit(p="{plan: pro")), 400),
    ("props nested object", post(hit(p={"a": {"b": 1}})), 400),
    ("props 31 pairs", post(hit(p={str(i): "v" for i in range(31)})), 400),
    ("unknown domain", post(hit(d="unknown.test")), 404),
    ("unknown site id", post(hit(d=None, sid="NOPE2345")), 404),
    ("known domain after five unknown", post(hit(d="a.test,b.test,c.test,d.test,e.test,example.com")), 404),
    # -- sizes and lengths --------------------------------------------------------------------------
    ("body over 4 KiB", post(hit(p={"k": "x" * 5000})), 413),
    ("body of 4 KiB of spaces then JSON", post(" " * 4096 + hit()), 413),
    ("Content-Length that lies", post(hit(p={"k": "x" * 5000}), CONTENT_LENGTH="100"), 400),
    ("Content-Length not a number", post(hit(), CONTENT_LENGTH="abc"), 400),
    ("Content-Length negative", post(hit(), CONTENT_LENGTH="-1"), 400),
    ("Content-Length in Arabic-Indic digits", post(hit(), CONTENT_LENGTH="١٢"), 400),
    ("Content-Length with spaces", post(hit(), CONTENT_LENGTH=" 12"), 400),
    ("Content-Length huge", post(hit(), CONTENT_LENGTH="9" * 30), 413),
    ("Content-Length of 5000 digits", post(hit(), CONTENT_LENGTH="9" * 5000), 413),
    ("Content-Length with leading zeros", post(hit(), CONTENT_LENGTH="0" * 20 + str(len(hit()))), 202),
    # -- the GET pixel ------------------------------------------------------------------------------
    ("pixel good", pixel(), 202),
    ("pixel repeated parameter, last one good", get("n=x%00&n=pageview&u=https://example.com/&d=example.com"), 202),
    ("pixel empty optional parameters", pixel(w="", r="", p="", value="", i=""), 202),
    ("pixel stray separators", get("&&=&=x&" + urlencode(GOOD) + "&&"), 202),
    ("pixel garbage percent-encoding in the url", pixel(u="https://example.com/%zz%"), 202),
    ("pixel raw percent signs", get(urlencode(GOOD) + "&v=%&%=1"), 202),
    ("pixel bytes that are not UTF-8", get(urlencode(GOOD).replace("pageview", "%ff%fe")), 202),
    ("pixel raw latin-1 byte", get(urlencode(GOOD).replace("pageview", "\xff")), 202),
    ("pixel percent-encoded surrogate (not UTF-8)", get(urlencode(GOOD).replace("pageview", "%ed%a0%80")), 202),
    ("pixel props as JSON", pixel(p='{"plan": "pro"}'), 202),
    ("pixel revenue as JSON", pixel(n="Purchase", **{"$": '{"amount": "19.99", "currency": "USD"}'}), 202),
    ("pixel empty query", get(""), 400),
    ("pixel name only", get("n=pageview"), 400),
    ("pixel NUL in the name", get(urlencode(GOOD).replace("pageview", "page%00view")), 400),
    ("pixel NUL in a parameter name", get(urlencode(GOOD) + "&x%00=1"), 400),
    ("pixel surrogate escape in props", pixel(p='{"k": "\\ud800"}'), 400),
    ("pixel surrogate escape in revenue", pixel(**{"$": '{"amount": "1", "currency": "\\udc00SD"}'}), 400),
    ("pixel deep props, raw brackets", get(urlencode(GOOD) + "&p=" + "[" * 1500 + "]" * 1500), 400),
    ("pixel deep revenue, raw brackets", get(urlencode(GOOD) + "&$=" + "{" * 1500), 400),
    ("pixel props not JSON", pixel(p="{plan"), 400),
    ("pixel revenue 1e999", pixel(**{"$": '{"amount": "1e999"}'}), 400),
    ("pixel revenue not JSON", pixel(**{"$": "19.99"}), 400),
    ("pixel value Arabic-Indic digits", pixel(value="١٢٣"), 400),
    ("pixel width superscript two", pixel(w="²"), 400),
    ("pixel width with underscores", pixel(w="1_000"), 400),
    ("pixel width with spaces", get(urlencode(GOOD) + "&w=%2012%20"), 400),
    ("pixel value negative", pixel(value="-5"), 400),
    ("pixel interactive maybe", pixel(i="maybe"), 400),
    ("pixel repeated domain, last one empty", get(urlencode(GOOD) + "&d="), 400),
    ("pixel javascript url", pixel(u="javascript:alert(1)"), 400),
    ("pixel 1001 empty parameters", get(urlencode(GOOD) + "&" * 1001), 400),
    ("pixel unknown site", pixel(d="unknown.test"), 404),
    ("pixel query string over 4 KiB", pixel(p=json.dumps({"k": "x" * 4100})), 414),
    ("pixel deep props, percent-encoded", pixel(p=DEEP_ARRAY), 414),
    ("pixel 5000 ampersands", get("&" * 5000), 414),
    # -- methods ------------------------------------------------------------------------------------
    ("OPTIONS preflight", call("OPTIONS"), 204),
    ("PUT", call("PUT"), 405),
    ("PATCH", call("PATCH"), 405),
    ("DELETE", call("DELETE"), 405),
    ("HEAD", call("HEAD"), 405),
    ("TRACE", call("TRACE"), 405),
    ("PROPFIND", call("PROPFIND"), 405),
    ("made-up method", call("BREW"), 405),
]  # fmt: skip


def perform(client: Client, request: Req) -> Any:
    meta = dict(request.meta)
    if request.method == "POST":
        return client.generic("POST", "/api/event", request.body, content_type=request.content_type, **meta)
    if request.method == "GET":
        # A query string of our own, byte for byte: the test client would otherwise re-encode it.
        return client.generic("GET", "/api/event", QUERY_STRING=request.query or "", **meta)
    return client.generic(request.method, "/api/event", **meta)


def assert_documented_answer(response: Any, request: Req, expected: int) -> None:
    assert response.status_code < 500
    assert response.status_code == expected
    assert response["Access-Control-Allow-Origin"] == "*"
    if 400 <= expected < 500 and request.method != "HEAD":  # HEAD answers carry no body
        assert response["Content-Type"] == "application/json"
        error = response.json()["error"]
        assert isinstance(error, str)
        assert error
        for internal in ("Traceback", "Error", "Exception", "invalid literal", "decimal", "int()"):
            assert internal not in error


def test_the_corpus_is_large_and_its_labels_are_unique():
    labels = [label for label, _, _ in CORPUS]
    assert len(labels) == len(set(labels))
    assert len(CORPUS) >= 100


@pytest.mark.parametrize(("label", "request_", "expected"), CORPUS, ids=[label for label, _, _ in CORPUS])
def test_each_bad_input_gets_its_documented_answer(browser_client, site, label, request_, expected):
    response = perform(browser_client, request_)
    assert_documented_answer(response, request_, expected)
    if expected >= 400:
        assert Event.objects.count() == 0


@pytest.fixture
def no_auto_ban(settings):
    """The corpus comes from one address in one minute; the test is about answers and counts, not bans."""
    settings.AUTO_BAN_SCORE = 10**9


def test_the_corpus_counts_as_malformed_and_good_hits_around_it_are_kept(site, frozen_clock, no_auto_ban):
    ip = "203.0.113.99"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR=ip)
    before = client.post("/api/event", hit(u=URL + "before"), content_type="text/plain")
    assert before.status_code == 202

    written = 1
    rejected = 0
    for _label, request, expected in CORPUS:
        response = perform(client, request)
        assert_documented_answer(response, request, expected)
        if 400 <= expected < 500:
            rejected += 1
        elif expected == 202 and "X-Dropped" not in response:
            written += 1

    after = client.post("/api/event", hit(u=URL + "after"), content_type="text/plain")
    assert after.status_code == 202
    written += 1

    malformed = cache.get(detectors._counter_key("malformed", ip, time.time()))
    assert rejected > 90
    assert malformed == rejected
    assert Event.objects.count() == written
    assert set(Event.objects.filter(path__in=["/before", "/after"]).values_list("path", flat=True)) == {
        "/before",
        "/after",
    }

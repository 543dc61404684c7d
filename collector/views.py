"""The public collector: /script.js and /api/event.

A warm request runs no SQL: the site and the salts come from caches, the hit goes to the
broker. The raw IP and User-Agent are used here, in memory, for the visitor hash and the
browser/OS/bot facts, and never leave this request.
"""

from __future__ import annotations

import base64
import logging
import re
import time
import traceback
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import TooManyFieldsSent
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from collector.payload import BadHit, Hit, parse_body, parse_hit
from collector.services import BrokerUnavailable, build_messages, enqueue_hits
from security import detectors, metrics
from security.guards import after_collector_hit, collector_limits
from sites.cache import SiteInfo, get_site
from sites.models import PUBLIC_ID

log = logging.getLogger(__name__)

SCRIPT_PATH = Path(__file__).parent / "static" / "collector" / "script.js"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CORS_HEADERS = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "POST, GET, OPTIONS",
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def _cors(response: HttpResponse) -> HttpResponse:
    for key, value in CORS_HEADERS.items():
        response[key] = value
    return response


def error(status: int, message: str, **headers: str) -> JsonResponse:
    response = JsonResponse({"error": message}, status=status)
    for key, value in headers.items():
        response[key.replace("_", "-")] = value
    _cors(response)
    return response


@lru_cache(maxsize=1)
def _script() -> bytes:
    return SCRIPT_PATH.read_bytes()


def script(request: HttpRequest) -> HttpResponse:
    response = HttpResponse(_script(), content_type="application/javascript; charset=utf-8")
    # Browsers revalidate after a day; CDNs may keep it a week. The snippet URL never changes.
    response["Cache-Control"] = "public, max-age=86400, stale-while-revalidate=604800"
    response["Access-Control-Allow-Origin"] = "*"
    return response


DOMAIN = re.compile(r"^[a-z0-9.-]{1,253}$")


def _sites_for(hit: Hit) -> list[SiteInfo]:
    # Ids and domains that cannot exist never reach the cache or the database; at most five
    # lookups per hit, so a list of made-up sites cannot multiply the cost of one request.
    found = [get_site("id", site_id) for site_id in hit.site_ids[:5] if PUBLIC_ID.match(site_id)]
    domains = [domain.removeprefix("www.") for domain in hit.domains[:5] if DOMAIN.match(domain)]
    found += [get_site("domain", domain) for domain in domains[: 5 - len(found)]]
    unique: dict[int, SiteInfo] = {info.id: info for info in found if info is not None}
    return list(unique.values())


def _country(request: HttpRequest) -> str:
    # Only a trusted CDN sets this header; a direct client could send anything.
    if settings.TRUSTED_PROXY_HOPS <= 0:
        return ""
    code = request.META.get("HTTP_CLOUDFRONT_VIEWER_COUNTRY", "").strip().upper()
    return code if len(code) == 2 and code.isalpha() and code not in {"XX", "ZZ"} else ""


def now_ms() -> int:
    """The hit's timestamp. A seam for tests that script a day of traffic."""
    return int(time.time() * 1000)


def _read_body(request: HttpRequest) -> bytes:
    return request.read(settings.COLLECTOR_MAX_BODY + 1)


_LENGTH = re.compile(r"[0-9]+")  # int() would also take '-1', ' 12' and '١٢'


class Rejected(Exception):
    """The request is refused before it becomes a hit: the client gets this status and message."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _pixel_data(request: HttpRequest) -> dict[str, Any]:
    # The query string is capped like a body: the pixel must not be a way around the body cap.
    if len(request.META.get("QUERY_STRING", "")) > settings.COLLECTOR_MAX_BODY:
        raise Rejected(414, f"query string over {settings.COLLECTOR_MAX_BODY} bytes")
    try:
        # A repeated parameter counts once (its last value); an empty one is an absent one.
        values = {key: request.GET.get(key) for key in request.GET}
    except TooManyFieldsSent:
        raise Rejected(400, "too many query parameters") from None
    return {key: value for key, value in values.items() if value != ""}


def _post_data(request: HttpRequest) -> Any:
    declared = request.META.get("CONTENT_LENGTH") or "0"
    if not _LENGTH.fullmatch(declared):
        raise Rejected(400, "invalid Content-Length")
    digits = declared.lstrip("0")  # int() refuses more than 4300 digits
    if len(digits) > 9 or int(digits or "0") > settings.COLLECTOR_MAX_BODY:
        raise Rejected(413, f"body over {settings.COLLECTOR_MAX_BODY} bytes")
    try:
        body = _read_body(request)
    except OSError:  # UnreadablePostError: the client went away mid-body
        raise Rejected(400, "the body could not be read") from None
    if len(body) > settings.COLLECTOR_MAX_BODY:
        raise Rejected(413, f"body over {settings.COLLECTOR_MAX_BODY} bytes")
    return parse_body(body)


def _parse(request: HttpRequest, pixel: bool) -> Hit:
    """The request's hit, or Rejected / BadHit saying why not."""
    data = _pixel_data(request) if pixel else _post_data(request)
    return parse_hit(data)


def _accepted(pixel: bool, dropped: str = "") -> HttpResponse:
    if pixel:
        response = HttpResponse(PIXEL, content_type="image/gif", status=202)
        response["Cache-Control"] = "no-store"
    else:
        response = HttpResponse(b"ok", content_type="text/plain", status=202)
    if dropped:
        response["X-Dropped"] = dropped
    return _cors(response)


def _messages(request: HttpRequest, hit: Hit, sites: list[SiteInfo]) -> tuple[list[dict[str, Any]], str]:
    return build_messages(
        hit,
        sites,
        ip=request.META["REMOTE_ADDR"],
        user_agent=request.META.get("HTTP_USER_AGENT", ""),
        country=_country(request),
        ts=now_ms(),
    )


def _origin_ok(request: HttpRequest, site: SiteInfo) -> bool | None:
    """Does the browser's Origin header belong to the site? None when there is no Origin."""
    origin = request.META.get("HTTP_ORIGIN", "")
    if not origin or origin == "null":
        return None
    try:
        host = (urlsplit(origin).hostname or "").lower().removeprefix("www.")
    except ValueError:  # "http://[::1": no browser sends that
        return False
    return site.allows_hostname(host)


def _rejected(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    metrics.record("dropped")
    detectors.observe(request.META["REMOTE_ADDR"], "malformed")
    return response


@csrf_exempt
def event(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204))
    # Per-IP limit first: a flood is turned away before its body is even parsed.
    limited = collector_limits(request, [])
    if limited is not None:
        return limited
    if request.method not in ("GET", "POST"):
        response = error(405, "use POST (or GET for the pixel)")
        response["Allow"] = "POST, GET, OPTIONS"
        return _rejected(response, request)
    pixel = request.method == "GET"
    try:
        hit = _parse(request, pixel)
    except Rejected as exc:
        return _rejected(error(exc.status, exc.message), request)
    except BadHit as exc:
        return _rejected(error(400, str(exc)), request)
    except Exception as exc:
        # Last resort: a parsing bug must not be a 500 (with a traceback) that anyone can farm.
        # One line, no content: the exception's message could quote the body.
        frame = traceback.extract_tb(exc.__traceback__)[-1]
        log.error("collector: unexpected %s while parsing a hit (%s:%s)", type(exc).__name__, frame.name, frame.lineno)
        return _rejected(error(400, "this hit could not be read"), request)
    sites = _sites_for(hit)
    if not sites:
        return _rejected(error(404, "unknown site"), request)
    site_keys = [site.public_id for site in sites]
    limited = collector_limits(request, site_keys)
    if limited is not None:
        return limited
    messages, dropped = _messages(request, hit, sites)
    after_collector_hit(
        request,
        site=site_keys[0],
        site_domain_ok=_origin_ok(request, sites[0]),
        visitor=messages[0]["vid"] if messages else None,
        name=hit.name,
        dropped=dropped,
    )
    if dropped:
        return _accepted(pixel, dropped)
    try:
        enqueue_hits(messages)
    except BrokerUnavailable:
        return error(503, "temporarily unavailable, retry later", Retry_After="5")
    return _accepted(pixel)

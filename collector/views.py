"""The public collector: /script.js and /api/event.

A warm request runs no SQL: the site and the salts come from caches, the hit goes to the
broker. The raw IP and User-Agent are used here, in memory, for the visitor hash and the
browser/OS/bot facts, and never leave this request.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import time
import uuid
from functools import lru_cache
from pathlib import Path
from typing import Any

from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from collector.enrich import device_from_width, parse_agent, parse_referrer
from collector.payload import BadHit, Hit, parse_hit
from collector.salts import current_salts, visitor_hash
from collector.services import BrokerUnavailable, enqueue_hits
from collector.sites import SiteInfo, get_site

log = logging.getLogger(__name__)

SCRIPT_PATH = Path(__file__).parent / "static" / "collector" / "script.js"
PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
LOCAL_HOSTS = {"localhost", "127.0.0.1", "::1", "[::1]", "0.0.0.0"}  # noqa: S104 (hostnames to drop, not a bind)
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


def _is_local(hostname: str) -> bool:
    return hostname in LOCAL_HOSTS or hostname.startswith("127.") or hostname.endswith(".localhost")


def _sites_for(hit: Hit) -> list[SiteInfo]:
    found = [get_site("id", site_id) for site_id in hit.site_ids[:10]]
    found += [get_site("domain", domain.removeprefix("www.")) for domain in hit.domains[:10]]
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


def _accepted(pixel: bool, dropped: str = "") -> HttpResponse:
    if pixel:
        response = HttpResponse(PIXEL, content_type="image/gif", status=202)
        response["Cache-Control"] = "no-store"
    else:
        response = HttpResponse(b"ok", content_type="text/plain", status=202)
    if dropped:
        response["X-Dropped"] = dropped
    return _cors(response)


def _build_messages(request: HttpRequest, hit: Hit, sites: list[SiteInfo]) -> tuple[list[dict[str, Any]], str]:
    """The broker messages for this hit (one per site), or the reason it is dropped."""
    user_agent = request.META.get("HTTP_USER_AGENT", "")
    agent = parse_agent(user_agent)
    if agent.bot:
        return [], "bot"
    accepted = []
    reason = ""
    for site in sites:
        if not site.allows_hostname(hit.hostname):
            reason = "localhost" if _is_local(hit.hostname) else "hostname"
            continue
        accepted.append(site)
    if not accepted:
        return [], reason
    source = parse_referrer(hit.referrer, hit.hostname) if hit.name != "engagement" else None
    ts = now_ms()
    # The salt is the one of the hit's UTC day; yesterday's lets a visit go on past midnight.
    today_salt, previous_salt = current_salts(dt.datetime.fromtimestamp(ts / 1000, dt.UTC).date())
    ip = request.META["REMOTE_ADDR"]
    device = device_from_width(hit.width, agent.device)
    country = _country(request)
    messages = []
    for site in accepted:
        message: dict[str, Any] = {
            "id": uuid.uuid4().hex,
            "site": site.id,
            "ts": ts,
            "n": hit.name,
            "p": hit.path,
            "host": hit.hostname,
            "b": agent.browser,
            "os": agent.os,
            "dev": device,
            "cc": country,
            "i": hit.interactive,
            "vid": visitor_hash(today_salt, site.id, ip, user_agent),
            "pvid": visitor_hash(previous_salt, site.id, ip, user_agent) if previous_salt else None,
        }
        if source is not None and source.source:
            message["ref"], message["src"] = source.referrer, source.source
        elif hit.utm[0] and hit.name != "engagement":
            message["src"] = hit.utm[0]  # no referrer: the campaign's source is the visit's source
        if any(hit.utm):
            message["utm"] = list(hit.utm)
        if hit.value is not None:
            message["v"] = hit.value
        if hit.props:
            message["props"] = hit.props
        if hit.scroll_depth is not None:
            message["sd"] = hit.scroll_depth
        if hit.engaged_ms is not None:
            message["e"] = hit.engaged_ms
        messages.append(message)
    return messages, ""


@csrf_exempt
def event(request: HttpRequest) -> HttpResponse:
    if request.method == "OPTIONS":
        return _cors(HttpResponse(status=204))
    pixel = request.method == "GET"
    if pixel:
        data: Any = {key: request.GET.get(key) for key in request.GET}
    elif request.method == "POST":
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            return error(400, "invalid Content-Length")
        if length > settings.COLLECTOR_MAX_BODY:
            return error(413, f"body over {settings.COLLECTOR_MAX_BODY} bytes")
        body = _read_body(request)
        if len(body) > settings.COLLECTOR_MAX_BODY:
            return error(413, f"body over {settings.COLLECTOR_MAX_BODY} bytes")
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return error(400, "body must be JSON")
    else:
        response = error(405, "use POST (or GET for the pixel)")
        response["Allow"] = "POST, GET, OPTIONS"
        return response

    try:
        hit = parse_hit(data)
    except BadHit as exc:
        return error(400, str(exc))
    sites = _sites_for(hit)
    if not sites:
        return error(404, "unknown site")
    messages, dropped = _build_messages(request, hit, sites)
    if dropped:
        return _accepted(pixel, dropped)
    try:
        enqueue_hits(messages)
    except BrokerUnavailable:
        return error(503, "temporarily unavailable, retry later", Retry_After="5")
    return _accepted(pixel)

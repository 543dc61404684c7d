"""Request guards the collector and the pages call: rate limits and detector hooks.

Rate limits use django-ratelimit on the shared cache, keyed on the resolved client IP (IPv6
grouped by /64, since one host owns a whole /64). The collector fails open when the cache is
down (analytics keep flowing, with a log line); login fails closed.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest, JsonResponse
from django_ratelimit.core import get_usage

from security import detectors, metrics
from security.counters import safe_incr_many

log = logging.getLogger(__name__)


def ip_key(ip: str) -> str:
    """The rate-limit identity of an address: itself for IPv4, its /64 for IPv6."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return ip


@dataclass(frozen=True)
class Limited:
    retry_after: int
    scope: str


class LimiterUnavailable(Exception):
    pass


def check_limit(request: HttpRequest, group: str, value: str, rate: str, *, fail_open: bool) -> Limited | None:
    """Count one request against `rate` for `value`; return Limited when over it."""
    try:
        usage = get_usage(request, group=group, key=lambda _group, _request: value, rate=rate, increment=True)
    except Exception as exc:
        if fail_open:
            log.warning("rate limit %s skipped, cache unavailable: %s", group, type(exc).__name__)
            return None
        raise LimiterUnavailable(group) from exc
    if usage is None:
        return None
    if usage["should_limit"]:
        if usage["limit"] == 0 and usage["count"] == 0:  # django-ratelimit's "cache failed" answer
            if fail_open:
                return None
            raise LimiterUnavailable(group)
        return Limited(retry_after=max(1, int(usage["time_left"])), scope=group)
    return None


def too_many(limited: Limited) -> JsonResponse:
    response = JsonResponse({"error": "rate limited, retry later"}, status=429)
    response["Retry-After"] = str(limited.retry_after)
    response["Access-Control-Allow-Origin"] = "*"
    return response


def collector_limits(request: HttpRequest, site_keys: list[str]) -> JsonResponse | None:
    """With no site: the per-IP limit. With sites: the per-(IP, site) limits.
    A 429 also counts towards the IP's flag."""
    ip = request.META["REMOTE_ADDR"]
    key = ip_key(ip)
    limited = None
    if not site_keys:
        limited = check_limit(request, "collector-ip", key, settings.COLLECTOR_RATE, fail_open=True)
    for site in site_keys[:3]:
        if limited:
            break
        limited = check_limit(request, "collector-site", f"{key}|{site}", settings.COLLECTOR_SITE_RATE, fail_open=True)
    if limited is None:
        return None
    metrics.record("rate_limited")
    detectors.observe(ip, "ratelimited", site_keys[0] if site_keys else "")
    return too_many(limited)


def _token(salt: bytes, text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), key=salt, digest_size=8).digest(), "big", signed=True)


def ip_tokens(ip: str, salt: bytes) -> list[int]:
    """Keyed hashes of the address and its two enclosing networks (/24 and /16, or /64 and /48).

    They travel with a queued hit instead of the IP, so the worker can drop hits from an address
    banned after they were queued without the address ever reaching the broker. The key is the
    day's salt: the tokens become unlinkable when it is deleted.
    """
    address = ipaddress.ip_address(ip)
    widths = (24, 16) if address.version == 4 else (64, 48)
    networks = [ipaddress.ip_network(f"{address}/{width}", strict=False) for width in widths]
    return [_token(salt, f"ip|{address}")] + [_token(salt, f"net|{network}") for network in networks]


def ban_tokens(networks: list[ipaddress.IPv4Network | ipaddress.IPv6Network], salt: bytes) -> set[int]:
    """The tokens that match any address in the given banned networks.

    Exact matches for single addresses and for /24, /16 (IPv4) or /64, /48 (IPv6); networks in
    between are expanded to the next finer level when that is at most 256 items. Wider or odd
    networks are enforced on the request path only (logged).
    """
    tokens: set[int] = set()
    for network in networks:
        levels = (32, 24, 16) if network.version == 4 else (128, 64, 48)
        if network.prefixlen == levels[0]:
            tokens.add(_token(salt, f"ip|{network.network_address}"))
            continue
        if network.prefixlen in levels[1:]:
            tokens.add(_token(salt, f"net|{network}"))
            continue
        finer = [level for level in levels if level > network.prefixlen]
        target = min(finer) if finer else None
        if target is None or target - network.prefixlen > 8:
            log.info("ban %s is enforced on the request path only (too wide to expand for the worker)", network)
            continue
        for subnet in network.subnets(new_prefix=target):
            text = f"ip|{subnet.network_address}" if target == levels[0] else f"net|{subnet}"
            tokens.add(_token(salt, text))
    return tokens


def after_collector_hit(
    request: HttpRequest,
    *,
    site: str,
    site_domain_ok: bool | None,
    visitor: int | None,
    name: str,
    dropped: str,
) -> None:
    """Metrics and detectors for one collector request (one cache round trip on Redis)."""
    ip = request.META["REMOTE_ADDR"]
    minute = int(time.time() // 60)
    items = [metrics.counter("dropped" if dropped else "accepted")]
    if visitor is not None:
        items.append((f"vr:{visitor}:{minute}", 120))
        items.append((f"seen:{ip}:{site}", 3600))
        if name == "pageview":
            items.append((f"pv:{visitor}", 1800))
    values = safe_incr_many(items)
    if getattr(request, "client_ip_anomaly", False):
        detectors.observe(ip, "xff", site)
    if dropped == "hostname":
        detectors.observe(ip, "hostname", site)
    if dropped == "bot" and detectors.is_automation(request.META.get("HTTP_USER_AGENT", "")):
        detectors.observe(ip, "automation_ua", site)
    if site_domain_ok is False:
        detectors.observe(ip, "origin", site)
    if values is None or visitor is None:
        return
    human_max = settings.DETECT_HUMAN_MAX_PER_MINUTE
    if values[1] > human_max and (values[1] - 1) % human_max == 0:
        # Once per human_max hits beyond it: a visitor at ten times a human's rate is banned
        # within the minute, one slightly over it is only flagged.
        detectors.observe(ip, "rate", site)
    if values[2] == 1:  # first hit of this IP on this site this hour
        distinct = safe_incr_many([(f"sites:{ip}", 3600)])
        if distinct and distinct[0] == settings.DETECT_MAX_SITES_PER_HOUR + 1:
            detectors.observe(ip, "many_sites", site)
    if name not in ("pageview", "engagement"):
        try:
            had_pageview = cache.get(f"pv:{visitor}") is not None
        except Exception:
            had_pageview = True
        if not had_pageview:
            detectors.observe(ip, "no_pageview", site)

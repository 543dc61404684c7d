"""Detectors: reason codes counted per IP in short-TTL cache counters.

Ordinary traffic only touches counters. An IP whose counter for a reason reaches that
reason's threshold becomes (or updates) a FlaggedIP row with its evidence; past
AUTO_BAN_SCORE it is banned automatically from the collector (scope `collector`), for longer
each time. Anything below waits for a human on the security dashboard.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from security.counters import safe_incr_many
from security.models import FlaggedIP
from security.services import auto_ban_duration, ban_network

log = logging.getLogger(__name__)

WINDOW = 600  # seconds a reason counter lives, unless the reason says otherwise


@dataclass(frozen=True)
class Reason:
    threshold: int  # counter value at which the IP is flagged (and again at each multiple)
    weight: int  # score added per threshold reached
    label: str
    window: int = WINDOW


REASONS: dict[str, Reason] = {
    # Short window: a NAT full of identical browsers can cross the per-visitor line once a
    # minute; only a real flood crosses it many times within two minutes.
    "rate": Reason(1, 10, "one visitor sending far more hits per minute than a human", window=120),
    "many_sites": Reason(1, 15, "one IP sending hits to many sites"),
    "ratelimited": Reason(10, 10, "rate limit hits"),
    "hostname": Reason(5, 3, "page hostname not matching the site"),
    "origin": Reason(5, 3, "Origin header not matching the site"),
    "automation_ua": Reason(5, 4, "headless browser or HTTP library User-Agent"),
    "xff": Reason(5, 5, "malformed or forged X-Forwarded-For"),
    "no_pageview": Reason(10, 3, "custom events with no pageview in the visit"),
    "malformed": Reason(20, 5, "malformed, oversized or unknown-site requests"),
}
# Declared crawlers (Googlebot, Bingbot...) are dropped as bots but are not attacks; these are
# tools that pretend, or scripts.
AUTOMATION_MARKERS = (
    "HeadlessChrome",
    "PhantomJS",
    "Puppeteer",
    "Playwright",
    "Selenium",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "httpx",
    "curl/",
    "Wget",
    "Go-http-client",
    "okhttp",
    "axios",
    "node-fetch",
    "libwww-perl",
    "Scrapy",
    "Java/",
)


def is_automation(user_agent: str) -> bool:
    return not user_agent or any(marker in user_agent for marker in AUTOMATION_MARKERS)


def score_of(reasons: dict[str, int]) -> int:
    return sum(
        REASONS[code].weight * min(count // REASONS[code].threshold, 50)
        for code, count in reasons.items()
        if code in REASONS
    )


def _counter_key(code: str, ip: str, now: float) -> str:
    """Fixed windows: the counter of the reason's current window for this IP."""
    return f"det:{code}:{ip}:{int(now // REASONS[code].window)}"


def recent_score(ip: str) -> int:
    """The score of what this IP did within the reasons' windows (the auto-ban decision).

    The FlaggedIP row keeps every piece of evidence for the operator; the ban decision only
    looks at recent behaviour, so slow accumulation (a busy NAT over a day) never bans.
    """
    now = time.time()
    keys = {code: _counter_key(code, ip, now) for code in REASONS}
    try:
        values = cache.get_many(list(keys.values()))
    except Exception:
        return 0
    return score_of({code: int(values.get(key) or 0) for code, key in keys.items()})


def observe(ip: str, code: str, site: str = "") -> None:
    """Count one occurrence of a reason for this IP; flag it when the threshold is reached."""
    reason = REASONS[code]
    values = safe_incr_many([(_counter_key(code, ip, time.time()), reason.window * 2)])
    if values is None:
        return
    count = values[0]
    if count >= reason.threshold and count % reason.threshold == 0:
        try:
            flag(ip, code, reason.threshold, site)
        except Exception:  # never turn an attack into a 500 for the attacker to count
            log.exception("could not record flag for reason %s", code)


def flag(ip: str, code: str, amount: int, site: str = "") -> None:
    """Add evidence to the IP's FlaggedIP row (created if needed); auto-ban past the threshold."""
    now = timezone.now()
    expires_at = now + timezone.timedelta(days=settings.FLAG_EXPIRY_DAYS)
    with transaction.atomic():
        row = FlaggedIP.objects.select_for_update().filter(ip=ip).first()
        if row is None:
            row = FlaggedIP(ip=ip, first_seen=now, reasons={}, sites=[], expires_at=expires_at)
        row.reasons[code] = row.reasons.get(code, 0) + amount
        if site and site not in row.sites and len(row.sites) < 50:
            row.sites.append(site)
        row.last_seen = now
        row.expires_at = expires_at
        row.score = score_of(row.reasons)
        recent = recent_score(ip)
        should_ban = row.status == FlaggedIP.Status.OPEN and recent >= settings.AUTO_BAN_SCORE
        times_banned = row.times_banned
        row.save()
    if should_ban:
        top = sorted(row.reasons, key=lambda c: -REASONS[c].weight * row.reasons[c] if c in REASONS else 0)[:3]
        ban_network(
            network=ip,
            reason=f"auto: score {recent} within minutes ({', '.join(top)})",
            source="auto",
            duration=auto_ban_duration(times_banned),
            # Every reason is evidence about collector traffic: it closes the collector, not the
            # owner pages that others behind the same address (an office NAT, a VPN) may need.
            scope="collector",
        )
        log.warning("auto-banned %s: recent score %s", ip, recent)

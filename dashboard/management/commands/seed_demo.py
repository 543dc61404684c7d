"""Fill a demo site with realistic traffic, through the real collector path.

Every hit is a tracker payload validated by parse_hit, enriched and hashed by build_messages
(the same code the /api/event view runs) and written by ingest_batch (the worker's code).
Only the clock is scripted: hits are spread over the past weeks.
"""

from __future__ import annotations

import datetime as dt
import random
import secrets
import zoneinfo
from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandParser
from django.db import transaction

from analytics import store as analytics_store
from collector.ingest import ingest_batch
from collector.models import DailyBreakdown, Event, HourlyTotal, MonthlyBreakdown, Visit
from collector.payload import parse_hit
from collector.salts import rotate_salts
from collector.services import build_messages
from dashboard.models import SharedLink
from sites.cache import SiteInfo
from sites.models import Site

DOMAIN = "demo.fathom.test"
USERNAME, PASSWORD = "demo", "demo-password"

PAGES = [
    ("/", 30),
    ("/pricing", 12),
    ("/blog", 8),
    ("/blog/cookieless-analytics-explained", 9),
    ("/blog/why-we-left-google-analytics", 7),
    ("/blog/surviving-a-layer-7-flood", 4),
    ("/docs", 6),
    ("/docs/install", 6),
    ("/docs/api", 4),
    ("/about", 3),
    ("/signup", 5),
    ("/changelog", 2),
]
SOURCES = [  # (referrer, utm query, weight)
    (None, "", 38),
    ("https://www.google.com/", "", 24),
    ("https://duckduckgo.com/", "", 5),
    ("https://www.bing.com/search?q=privacy+analytics", "", 3),
    ("https://news.ycombinator.com/item?id=41234567", "", 5),
    ("https://www.reddit.com/r/selfhosted/comments/abc/", "", 3),
    ("https://t.co/Zx81k", "", 3),
    ("https://github.com/awesome-selfhosted/awesome-selfhosted", "", 3),
    ("https://chatgpt.com/", "", 2),
    ("https://www.linkedin.com/feed/", "", 2),
    (None, "utm_source=newsletter&utm_medium=email&utm_campaign=november", 6),
    ("https://www.producthunt.com/posts/fathom", "utm_source=producthunt&utm_medium=launch", 2),
]
AGENTS = [  # (User-Agent, screen width, weight)
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        1920,
        26,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15",
        1440,
        12,
    ),
    (
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        1280,
        10,
    ),
    (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        390,
        18,
    ),
    (
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        412,
        12,
    ),
    ("Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", 1920, 7),
    (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
        1536,
        8,
    ),
    (
        "Mozilla/5.0 (iPad; CPU OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1",
        820,
        4,
    ),
]
COUNTRIES = [
    ("US", 30), ("DE", 12), ("GB", 9), ("FR", 6), ("NL", 5), ("IN", 6), ("CA", 5), ("BR", 4),
    ("JP", 3), ("ES", 3), ("SE", 3), ("PL", 3), ("AU", 3), ("IT", 3), ("CH", 2), ("", 3),
]  # fmt: skip
# Hourly shape of a working day (local time), 0..23.
HOUR_WEIGHTS = [1, 1, 1, 1, 1, 2, 3, 5, 8, 10, 11, 11, 10, 11, 12, 12, 11, 9, 8, 7, 6, 5, 3, 2]


def pick(rng: random.Random, items: list[tuple]) -> tuple:
    return rng.choices(items, weights=[item[-1] for item in items])[0]


class Command(BaseCommand):
    help = "Create the demo user and site and fill it with realistic traffic (idempotent)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--days", type=int, default=60)
        parser.add_argument("--visitors-per-day", type=int, default=250)
        parser.add_argument("--seed", type=int, default=42)
        parser.add_argument("--reset", action="store_true", help="delete the demo site's data first")

    def handle(self, *args: Any, days: int, visitors_per_day: int, seed: int, reset: bool, **options: Any) -> None:
        user = self._demo_user()
        site, _ = Site.objects.get_or_create(
            domain=DOMAIN, defaults={"name": "Demo site", "timezone": "Europe/Berlin", "owner": user}
        )
        link = self._shared_link(site)
        self.stdout.write(f"public dashboard (shared link, no password): /share/{link.token}/")
        clickhouse = analytics_store.kind() == analytics_store.CLICKHOUSE
        if reset:
            if clickhouse:
                analytics_store.delete_site_rows(site.id)
            for model in (Event, Visit, HourlyTotal, DailyBreakdown, MonthlyBreakdown):
                model.objects.filter(site=site).delete()
        elif analytics_store.site_has_rows(site.id) if clickhouse else Event.objects.filter(site=site).exists():
            self.stdout.write(f"demo site {site.domain} ({site.public_id}) already has data; --reset to refill")
            return
        total = self._fill(site, days, visitors_per_day, random.Random(seed))
        rotate_salts()  # the past days' salts are older than 48 h: delete them as the scheduler would
        self.stdout.write(f"demo site {site.domain} ({site.public_id}): {total} events written")

    def _demo_user(self) -> Any:
        users = get_user_model()
        user = users.objects.filter(username=USERNAME).first()
        if user is None:
            user = users.objects.create_superuser(USERNAME, "demo@example.com", PASSWORD)
        return user

    def _shared_link(self, site: Site) -> SharedLink:
        """One public read-only link to the demo dashboard (reused when it exists)."""
        link = SharedLink.objects.filter(site=site, revoked_at__isnull=True, password_hash="").first()
        if link is None:
            link = SharedLink.objects.create(site=site, name="Public demo", token=secrets.token_urlsafe(32))
        return link

    def _fill(self, site: Site, days: int, per_day: int, rng: random.Random) -> int:
        info = SiteInfo(site.id, site.public_id, site.domain, site.timezone, ())
        tz = zoneinfo.ZoneInfo(site.timezone)
        today = dt.datetime.now(tz).date()
        now = dt.datetime.now(dt.UTC)
        hn_spike = today - dt.timedelta(days=min(days - 1, 12))
        total = 0
        for offset in range(days - 1, -1, -1):
            day = today - dt.timedelta(days=offset)
            growth = 0.6 + 0.4 * (days - offset) / days
            weekend = 0.55 if day.weekday() >= 5 else 1.0
            count = int(per_day * growth * weekend * rng.uniform(0.85, 1.15))
            if day == hn_spike:
                count *= 4
            hits: list[dict[str, Any]] = []
            for _ in range(count):
                hour = rng.choices(range(24), weights=HOUR_WEIGHTS)[0]
                start = dt.datetime(day.year, day.month, day.day, hour, rng.randrange(60), rng.randrange(60), tzinfo=tz)
                if start.astimezone(dt.UTC) > now:
                    continue
                hits += self._visit(info, start.astimezone(dt.UTC), rng, spike=day == hn_spike, now=now)
            with transaction.atomic():
                for chunk in range(0, len(hits), 2000):
                    total += ingest_batch(hits[chunk : chunk + 2000]).written
        return total

    def _visit(
        self, site: SiteInfo, start: dt.datetime, rng: random.Random, spike: bool, now: dt.datetime
    ) -> list[dict[str, Any]]:
        ua, width, _ = pick(rng, AGENTS)
        country = pick(rng, COUNTRIES)[0]
        ip = f"198.18.{rng.randrange(256)}.{rng.randrange(1, 255)}"  # benchmark range, never a real client
        referrer, utm, _ = SOURCES[4] if spike and rng.random() < 0.7 else pick(rng, SOURCES)
        pages = [pick(rng, PAGES)[0]]
        depth = rng.choices([1, 2, 3, 4, 6], weights=[45, 25, 15, 10, 5])[0]
        for _ in range(depth - 1):
            pages.append(pick(rng, PAGES)[0])
        messages: list[dict[str, Any]] = []
        ts = start

        def emit(body: dict[str, Any], when: dt.datetime) -> None:
            if when > now:
                return
            hit = parse_hit({"sid": site.public_id, **body})
            built, _ = build_messages(
                hit, [site], ip=ip, user_agent=ua, country=country, ts=int(when.timestamp() * 1000)
            )
            messages.extend(built)

        for index, path in enumerate(pages):
            query = f"?{utm}" if utm and index == 0 else ""
            url = f"https://{site.domain}{path}{query}"
            emit({"n": "pageview", "u": url, "r": referrer if index == 0 else None, "w": width}, ts)
            if path == "/signup" and rng.random() < 0.5:
                emit(
                    {
                        "n": "Signup",
                        "u": url,
                        "$": {"amount": rng.choice(["9.00", "19.00", "49.00"]), "currency": "EUR"},
                    },
                    ts + dt.timedelta(seconds=40),
                )
            if path.startswith("/docs") and rng.random() < 0.15:
                emit({"n": "Download", "u": url, "p": {"file": "tracker.zip"}}, ts + dt.timedelta(seconds=20))
            if rng.random() < 0.1:
                emit(
                    {"n": "Outbound Link: Click", "u": url, "i": False, "p": {"url": "https://github.com"}},
                    ts + dt.timedelta(seconds=15),
                )
            stay = int(rng.expovariate(1 / 70)) + 5
            emit(
                {"n": "engagement", "u": url, "sd": rng.randrange(20, 101), "e": stay * 1000},
                ts + dt.timedelta(seconds=stay),
            )
            ts += dt.timedelta(seconds=stay + rng.randrange(1, 20))
        return messages

"""What the tests of every app share: User-Agents, a hit through the collector, the services and
Chromium they need, the scripted traffic, a small HTML reader, admin messages, WAF helpers.

Helpers and constants live here and are imported by name; fixtures live in conftest.py files (the
root one, or an app's tests/conftest.py when only that app uses them). No module imports a test
module or a conftest (fathom/tests/test_layout.py checks it). Not in the Lambda zips:
zappa_settings.json excludes this file.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import zoneinfo
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from django.test import Client
from django.utils import timezone

from security import waf
from security.models import Ban

ARTIFACTS = Path(__file__).resolve().parent / "artifacts"  # screenshots and reports of browser tests

# -- User-Agents ------------------------------------------------------------------------------

CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
IPHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.1 Mobile/15E148 Safari/604.1"
)
FIREFOX_UA = "Mozilla/5.0 (X11; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0"


def send(client: Client, body: Any, content_type: str = "text/plain", **extra: Any) -> Any:
    """POST a hit to the collector's /api/event, as the tracker does (text/plain: no CORS preflight)."""
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post("/api/event", data, content_type=content_type, **extra)


# -- services and browsers --------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package; a downloaded browser is never used
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


def port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def require_service(name: str, host: str, port: int) -> None:
    if not port_open(host, port):
        message = f"{name} is not reachable on {host}:{port}: start it (see Makefile `services`)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"SKIPPED LOUDLY: {message}")


def reset_celery_connections(app: Any) -> None:
    """Forget pooled broker connections so the next publish connects to app.conf.broker_url."""
    from kombu import pools

    pools.reset()  # closes and forgets kombu's global producer/connection pools
    if app._pool is not None:
        app._pool.force_close_all()
    app._pool = None
    app.amqp._producer_pool = None


# -- the scripted traffic ---------------------------------------------------------------------
# Site in America/New_York. Local times:
#
# Thu 2026-11-19 (the previous period of Friday)
#   E (Chrome, US)   08:00 /  from Google                          visit: bounce, 0 s
#   F (iPhone, DE)   15:00 /pricing from t.co -> 15:03 /           visit: 2 pv, 180 s
# Fri 2026-11-20: the scripted day of collector/tests/test_scripted_day.py
#   A (Chrome, US)   09:00 / from Google -> 09:02 /pricing -> 09:05 Signup $19.99 -> engagement
#                    14:00 /blog from Hacker News                  visits: 2 pv 360 s; bounce
#   B (iPhone, DE)   10:00 /?utm_source=newsletter -> "Outbound Link: Click" (not interactive)
#                    -> 10:20 engagement                           visit: bounce, 1200 s
#   C (Firefox, US)  23:50 / from t.co -> Sat 00:10 /docs          visit: 2 pv, 1200 s (counted Friday)
#   D (Chrome, FR)   18:55 / -> 19:05 /about (00:05 UTC: new salt) visit: 2 pv, 600 s
# Sat 2026-10-31 / Sun 2026-11-01 (DST ends at 02:00 EDT: Sunday has 25 hours)
#   G (Firefox, FR)  Sat 23:30 EDT /  (03:30 UTC on Sunday)        visit: bounce
#   H (Chrome, US)   Sun 01:30 EDT /blog, Sun 01:30 EST /blog      two visits (an hour apart), bounces

NY = zoneinfo.ZoneInfo("America/New_York")
THURSDAY, FRIDAY, SATURDAY = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)
OCT31, NOV1 = dt.date(2026, 10, 31), dt.date(2026, 11, 1)
# visitor: (client IP, User-Agent, CloudFront country, screen width the tracker reports)
VISITORS = {
    "A": ("198.51.100.11", CHROME_UA, "US", 1920),
    "B": ("2001:db8:1::22", IPHONE_UA, "DE", 390),
    "C": ("198.51.100.33", FIREFOX_UA, "US", None),
    "D": ("198.51.100.44", CHROME_UA, "FR", 1280),
    "E": ("198.51.100.55", CHROME_UA, "US", 1920),
    "F": ("2001:db8:1::66", IPHONE_UA, "DE", 390),
    "G": ("198.51.100.77", FIREFOX_UA, "FR", None),
    "H": ("198.51.100.88", CHROME_UA, "US", 1920),
}
MATCH_ALL = "visit:entry_page!=/nowhere"  # a filter every visit passes: forces the raw path


def url(path: str) -> str:
    return f"https://example.com{path}"


def replay(site: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    """Send the scripted traffic above through /api/event (ingest runs inline). The collector's
    clock stays at the last hit until `monkeypatch` is undone."""
    settings.TRUSTED_PROXY_HOPS = 1

    def hit(day: dt.date, hh: int, mm: int, who: str, body: dict[str, Any], fold: int = 0) -> None:
        moment = dt.datetime(day.year, day.month, day.day, hh, mm, tzinfo=NY, fold=fold)
        monkeypatch.setattr("collector.views.now_ms", lambda: int(moment.timestamp() * 1000))
        ip, agent, country, width = VISITORS[who]
        payload = {"sid": site.public_id, **body}
        if width and body.get("n") == "pageview":
            payload["w"] = width
        response = send(
            Client(HTTP_USER_AGENT=agent),
            payload,
            REMOTE_ADDR="10.0.0.2",
            HTTP_X_FORWARDED_FOR=ip,
            HTTP_CLOUDFRONT_VIEWER_COUNTRY=country,
        )
        assert response.status_code == 202
        assert not response.has_header("X-Dropped")

    pv = "pageview"
    hit(OCT31, 23, 30, "G", {"n": pv, "u": url("/")})
    hit(NOV1, 1, 30, "H", {"n": pv, "u": url("/blog")})
    hit(NOV1, 1, 30, "H", {"n": pv, "u": url("/blog")}, fold=1)  # the same wall time, an hour later
    hit(THURSDAY, 8, 0, "E", {"n": pv, "u": url("/"), "r": "https://www.google.com/"})
    hit(THURSDAY, 15, 0, "F", {"n": pv, "u": url("/pricing"), "r": "https://t.co/xyz"})
    hit(THURSDAY, 15, 3, "F", {"n": pv, "u": url("/"), "r": "https://example.com/pricing"})
    hit(FRIDAY, 9, 0, "A", {"n": pv, "u": url("/"), "r": "https://www.google.com/"})
    hit(FRIDAY, 9, 2, "A", {"n": pv, "u": url("/pricing"), "r": "https://www.google.com/"})
    hit(FRIDAY, 9, 5, "A", {"n": "Signup", "u": url("/pricing"), "value": 1999})
    hit(FRIDAY, 9, 6, "A", {"n": "engagement", "u": url("/pricing"), "sd": 75, "e": 60000})
    hit(FRIDAY, 10, 0, "B", {"n": pv, "u": url("/?utm_source=newsletter&utm_medium=email&utm_campaign=fall")})
    hit(FRIDAY, 10, 1, "B", {"n": "Outbound Link: Click", "u": url("/"), "i": False})
    hit(FRIDAY, 10, 20, "B", {"n": "engagement", "u": url("/"), "sd": 30, "e": 5000})
    hit(FRIDAY, 14, 0, "A", {"n": pv, "u": url("/blog"), "r": "https://news.ycombinator.com/item?id=1"})
    hit(FRIDAY, 18, 55, "D", {"n": pv, "u": url("/")})
    hit(FRIDAY, 19, 5, "D", {"n": pv, "u": url("/about"), "r": "https://example.com/"})
    hit(FRIDAY, 23, 50, "C", {"n": pv, "u": url("/"), "r": "https://t.co/abc"})
    hit(SATURDAY, 0, 10, "C", {"n": pv, "u": url("/docs"), "r": "https://example.com/"})


# -- a small HTML reader: assert what a person sees -------------------------------------------


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        parts = [c if isinstance(c, str) else c.text() for c in self.children]
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def visible_text(self) -> str:
        """Text without visually-hidden helpers (what a sighted person reads)."""
        parts = []
        for c in self.children:
            if isinstance(c, str):
                parts.append(c)
            elif "visually-hidden" not in c.classes:
                parts.append(c.visible_text())
        return re.sub(r"\s+", " ", " ".join(parts)).strip()

    def all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        found = []
        for c in self.children:
            if isinstance(c, Node):
                if (
                    (tag is None or c.tag == tag)
                    and (cls is None or cls in c.classes)
                    and all(c.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
                ):
                    found.append(c)
                found.extend(c.all(tag, cls, **attrs))
        return found

    def one(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.all(tag, cls, **attrs)
        assert len(found) == 1, f"expected one <{tag} class={cls} {attrs}>, found {len(found)}"
        return found[0]


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class _Builder(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("root", {}, None)
        self.current = self.root

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in VOID:
            self.current = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.current.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.current))

    def handle_endtag(self, tag: str) -> None:
        node = self.current
        while node is not None and node.tag != tag:
            node = node.parent
        if node is not None and node.parent is not None:
            self.current = node.parent

    def handle_data(self, data: str) -> None:
        self.current.children.append(data)


def html(response: Any) -> Node:
    builder = _Builder()
    builder.feed(response.content.decode())
    return builder.root


def headline(doc: Node) -> dict[str, tuple[str, str]]:
    """The dashboard's headline: {metric label: (value, change as shown)}."""
    result = {}
    for metric in doc.all("a", "metric"):
        change = metric.all("span", "change")
        result[metric.one("span", "metric-label").text()] = (
            metric.one("span", "metric-value").text(),
            change[0].visible_text() if change else "",
        )
    return result


def panel_rows(doc: Node, key: str) -> list[list[str]]:
    panel = doc.one("section", data_panel=key)
    return (
        [
            [row.one("th").visible_text(), *(td.text() for td in row.all("td"))]
            for row in panel.all("tbody")[0].all("tr")
        ]
        if panel.all("tbody")
        else []
    )


def row_link(doc: Node, key: str, label: str) -> str:
    panel = doc.one("section", data_panel=key)
    for link in panel.all("a", "filter-link"):
        if link.visible_text() == label:
            return link.attrs["href"]
    raise AssertionError(f"no row {label!r} in panel {key}")


def chart_rows(doc: Node) -> list[list[str]]:
    table = doc.one("table", "chart-table")
    return [[cell.text() for cell in row.children if isinstance(cell, Node)] for row in table.all("tbody")[0].all("tr")]


def chip_texts(doc: Node) -> list[str]:
    return [chip.one("span").text() for chip in doc.all("li", "chip")]


def flashes(response: Any) -> list[str]:
    """The messages Django's messages framework shows on the page (admin actions, dashboard forms)."""
    return [str(message) for message in response.context["messages"]]


# -- AWS WAF (moto) ---------------------------------------------------------------------------

REGION = "us-east-1"  # the region of zappa_settings.json, and of every moto-backed test


def in_set(client: Any, arn: str) -> set[str]:
    """The addresses in a WAF IP set."""
    ref = waf.parse_ipset_arn(arn)
    return set(client.get_ip_set(Name=ref.name, Scope=ref.scope, Id=ref.id)["IPSet"]["Addresses"])


def make_ban(network: str, *, minutes_ago: int = 0, expires_in: dt.timedelta | None = None, scope: str = "all") -> Ban:
    now = timezone.now()
    return Ban.objects.create(
        network=network,
        created_at=now - dt.timedelta(minutes=minutes_ago),
        expires_at=now + expires_in if expires_in is not None else None,
        scope=scope,
    )

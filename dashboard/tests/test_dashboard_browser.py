"""The dashboard in real headless Chromium: an owner logs in, reads the numbers, changes the
period, filters by a source and removes the filter, exports the CSV zip; a logged-out visitor
opens the shared link. Screenshots (desktop, filtered, phone, dark mode) go to artifacts/."""

from __future__ import annotations

import contextlib
import io
import re
import threading
import zipfile
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from django.core.management import call_command
from django.db import connections

from dashboard import report_data
from dashboard.models import SharedLink
from dashboard.selectors.periods import parse_period
from sites.models import Site
from testing import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


@pytest.fixture
def server(live_server: Any) -> Iterator[str]:
    """The live server. On in-memory SQLite its request threads share this thread's one
    connection, so requests take turns (the page and its realtime fetch could overlap)."""
    shared = any(conn.vendor == "sqlite" and conn.is_in_memory_db() for conn in connections.all())
    lock = threading.Lock() if shared else contextlib.nullcontext()
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def serial(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        with lock:
            result = app(environ, start_response)
            try:
                body = b"".join(result)
            finally:
                close = getattr(result, "close", None)
                if close is not None:
                    close()
        return [body]

    httpd.set_app(serial)
    try:
        yield live_server.url
    finally:
        httpd.set_app(app)


@pytest.fixture
def demo(server: str) -> Site:
    call_command("seed_demo", "--days", "40", "--visitors-per-day", "25", stdout=io.StringIO())
    return Site.objects.get(domain="demo.fathom.test")


def metric(page: Any, key: str) -> str:
    return page.locator(f'a.metric[data-metric="{key}"] .metric-value').inner_text().strip()


def expected(site: Site, period: str, filters: str = "") -> report_data.Report:
    return report_data.build_report(site, parse_period(period, None, site.tz), filters, panels=("sources",))


def shot(page: Any, name: str, full_page: bool = True) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard_{name}.png"), full_page=full_page)


# Elements sticking out to the right of a phone's screen (visually-hidden helpers aside).
OVERFLOWING = """
[...document.querySelectorAll('body *')]
  .filter(e => !e.closest('.visually-hidden') && e.getBoundingClientRect().right > innerWidth + 1)
  .slice(0, 8).map(e => e.tagName + '.' + e.className)
"""


def test_owner_reads_filters_and_exports_and_the_shared_link_works(chromium, server, demo):
    context = chromium.new_context(viewport=DESKTOP, accept_downloads=True)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Log in through the form; the login page sends the owner on to the dashboard.
    page.goto(f"{server}/accounts/login/?next=/sites/{demo.public_id}/")
    page.fill("input[name=username]", "demo")
    page.fill("input[name=password]", "demo-password")
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(rf"/sites/{demo.public_id}/$"))

    month = expected(demo, "30d")
    assert page.locator("h1").inner_text() == "demo.fathom.test"
    assert page.locator(".period-title").inner_text() == "Last 30 days"
    assert metric(page, "visitors") == f"{month.metric('visitors').value:,}"
    assert metric(page, "pageviews") == f"{month.metric('pageviews').value:,}"
    assert page.locator("svg.chart").get_attribute("data-points") == "30"
    # The realtime counter fills itself in (the demo's last visits are minutes old at most).
    page.wait_for_selector(".realtime:not([hidden])")
    assert re.fullmatch(r"\d+", page.locator("[data-realtime-count]").inner_text())
    shot(page, "desktop")

    # Another period from the menu.
    page.click(".picker summary")
    page.click(".picker-menu a:has-text('Last 7 days')")
    page.wait_for_url(re.compile(r"period=7d"))
    week = expected(demo, "7d")
    assert page.locator(".period-title").inner_text() == "Last 7 days"
    assert metric(page, "visitors") == f"{week.metric('visitors').value:,}"
    assert page.locator("svg.chart").get_attribute("data-points") == "7"

    # Click a source row: the dashboard is filtered and a chip appears.
    page.click('[data-panel="sources"] a.filter-link:has-text("Google")')
    page.wait_for_url(re.compile(r"filters=visit%3Asource%3D%3DGoogle"))
    google = expected(demo, "7d", "visit:source==Google")
    assert page.locator(".chip").count() == 1
    assert page.locator(".chip").inner_text().startswith("Source is Google")
    assert metric(page, "visitors") == f"{google.metric('visitors').value:,}"
    assert google.metric("visitors").value < week.metric("visitors").value
    assert page.locator('[data-panel="sources"] tbody tr').count() == 1
    shot(page, "filtered")

    # Export the filtered view.
    with page.expect_download() as download:
        page.click("a:has-text('Export CSV')")
    assert re.fullmatch(r"demo\.fathom\.test_\d{4}-\d\d-\d\d_\d{4}-\d\d-\d\d\.zip", download.value.suggested_filename)
    with zipfile.ZipFile(download.value.path()) as archive:
        assert "sources.csv" in archive.namelist()
        sources = archive.read("sources.csv").decode().splitlines()
        visitors = archive.read("visitors.csv").decode().splitlines()
    assert sources[1].startswith(f"Google,{google.metric('visitors').value},")
    assert len(sources) == 2
    assert visitors[1].split(",")[:2] == ["visitors", str(google.metric("visitors").value)]

    # Remove the chip: back to the whole week.
    page.click(".chip-remove")
    page.wait_for_url(re.compile(r"period=7d$"))
    assert page.locator(".chip").count() == 0
    assert metric(page, "visitors") == f"{week.metric('visitors').value:,}"

    # Keyboard shortcut: "t" is today.
    page.keyboard.press("t")
    page.wait_for_url(re.compile(r"period=day"))
    assert page.locator(".period-title").inner_text() == "Today"
    assert page.locator("svg.chart").get_attribute("data-points") == "24"
    assert errors == []
    context.close()

    # The shared link, in a fresh logged-out browser.
    link = SharedLink.objects.get(site=demo, revoked_at__isnull=True)
    visitor = chromium.new_context(viewport=DESKTOP)
    shared = visitor.new_page()
    shared.goto(f"{server}/share/{link.token}/")
    assert shared.locator("h1").inner_text() == "demo.fathom.test"
    assert metric(shared, "visitors") == f"{month.metric('visitors').value:,}"
    assert "Shared dashboard" in shared.locator("header").inner_text()
    assert shared.locator("text=Log out").count() == 0
    assert shared.locator("text=Site settings").count() == 0
    shot(shared, "shared")
    visitor.close()

    # Phone width: the metrics wrap into two columns, nothing overflows sideways.
    phone = chromium.new_context(viewport=PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    small = phone.new_page()
    small.goto(f"{server}/share/{link.token}/")
    assert metric(small, "visitors") == f"{month.metric('visitors').value:,}"
    assert small.evaluate("innerWidth") == PHONE["width"]
    assert small.evaluate(OVERFLOWING) == []
    assert small.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    shot(small, "phone_top", full_page=False)
    shot(small, "phone")
    phone.close()

    # Dark mode follows the system.
    dark = chromium.new_context(viewport=DESKTOP, color_scheme="dark")
    night = dark.new_page()
    night.goto(f"{server}/share/{link.token}/")
    background = night.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 26)"
    shot(night, "dark")
    dark.close()

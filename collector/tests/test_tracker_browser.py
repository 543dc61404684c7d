"""The real tracker (/script.js) in real headless Chromium, end to end.

The customer's page is served by a small http.server on 127.0.0.1 (its own origin) and loads
the tracker from the live Django server (another origin), as a real deployment does, so the
cross-origin fetch and the collector's CORS headers are exercised too. What the tracker sends
is checked where it lands: Event rows and the HourlyTotal / DailyBreakdown rollups.

The browser has to look like a person, since the product ignores bots on purpose:
- navigator.webdriver must be false or the tracker sends nothing:
  --disable-blink-features=AutomationControlled does that (and one test checks the opposite);
- the User-Agent must not say "HeadlessChrome" or the collector drops the hit as a bot
  (202 + X-Dropped: bot). The browser is launched with its own UA minus "Headless"
  (--user-agent, browser-wide: Playwright's per-context override does not reach the keepalive
  requests a page sends while it unloads, such as the engagement report).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from django.db import connections
from django.db.models import Sum

from collector.models import DailyBreakdown, Event, HourlyTotal, Visit
from sites.models import Site
from testing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.browser

NOT_AUTOMATED = "--disable-blink-features=AutomationControlled"  # keeps navigator.webdriver false
VIEWPORT = {"width": 1280, "height": 720}  # 1280 px wide: the "Laptop" device class
WAIT_SECONDS = 10.0

# A tall page, so scrolling to the bottom changes the scroll depth the tracker reports.
PAGE = """<!doctype html>
<html>
<head>
<meta charset="utf-8">
<title>Acme: a customer's site</title>
<script>window.scrolls = 0; addEventListener('scroll', function () {{ window.scrolls++; }});</script>
<script defer src="{script}" data-site="{site_id}" data-allow-local="true"{extra}></script>
</head>
<body>
<h1>Acme</h1>
<p>A customer's page on its own origin, with the tracker loaded from the collector.</p>
<button id="pricing" onclick="history.pushState({{}}, '', '/pricing')">Pricing (SPA navigation)</button>
<button id="signup" onclick="fathom.trackEvent('Signup', {{value: 1999}})">Sign up (custom event)</button>
<button id="settings" onclick="location.hash = '#/settings'">Settings (hash route)</button>
<div style="height: 2400px"></div>
<p id="footer">Footer</p>
</body>
</html>
"""


# -- the browser ------------------------------------------------------------------------------


def _launch(playwright: Any, *extra_args: str) -> Any:
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=[*CHROMIUM_ARGS, *extra_args])


@pytest.fixture(scope="module")
def person_user_agent(playwright: Any) -> str:
    """This Chromium's own User-Agent without the "Headless" the collector treats as a bot."""
    browser = _launch(playwright)
    try:
        agent = browser.new_page().evaluate("navigator.userAgent")
    finally:
        browser.close()
    assert "Chrome/" in agent, agent
    return agent.replace("HeadlessChrome/", "Chrome/")


@pytest.fixture(scope="module")
def chromium(playwright: Any, person_user_agent: str) -> Iterator[Any]:
    """Chromium as a visitor's browser: navigator.webdriver is false."""
    browser = _launch(playwright, NOT_AUTOMATED, f"--user-agent={person_user_agent}")
    try:
        yield browser
    finally:
        browser.close()


@pytest.fixture(scope="module")
def automated_chromium(playwright: Any, person_user_agent: str) -> Iterator[Any]:
    """Chromium under automation as Playwright normally runs it: navigator.webdriver is true.
    Same person-like UA, so the collector would accept its hits: only the tracker holds back."""
    browser = _launch(playwright, f"--user-agent={person_user_agent}")
    try:
        yield browser
    finally:
        browser.close()


# -- the customer's site (another origin) -----------------------------------------------------


class _CustomerServer(ThreadingHTTPServer):
    daemon_threads = True
    html = b""


class _CustomerHandler(BaseHTTPRequestHandler):
    server: _CustomerServer

    def do_GET(self) -> None:
        if self.path.startswith("/favicon"):
            self.send_error(404)
            return
        # Every path serves the app, as an SPA's server does (so a reload of /pricing works too).
        body = self.server.html
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def customer_site() -> Iterator[Callable[[str], str]]:
    """serve(html) -> the URL of that page, served from http://127.0.0.1:<free port>/."""
    server = _CustomerServer(("127.0.0.1", 0), _CustomerHandler)
    thread = threading.Thread(target=server.serve_forever, name="customer-site", daemon=True)
    thread.start()

    def serve(html: str) -> str:
        server.html = html.encode()
        return f"http://127.0.0.1:{server.server_address[1]}/"

    try:
        yield serve
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture
def tracked_site(transactional_db: Any) -> Site:
    # The page's hostname is 127.0.0.1: allowed explicitly, as a customer would for a staging host.
    return Site.objects.create(domain="acme.test", name="Acme", timezone="UTC", allowed_hostnames="127.0.0.1")


# -- the collector (the live server) ----------------------------------------------------------


@dataclass
class Collector:
    url: str
    db_lock: contextlib.AbstractContextManager[Any]  # hold it while this thread reads the database
    _count_lock: threading.Lock = field(default_factory=threading.Lock)
    _in_flight: int = 0
    _last_activity: float = 0.0

    @property
    def script(self) -> str:
        return f"{self.url}/script.js"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/api/event"

    def _started(self) -> None:
        with self._count_lock:
            self._in_flight += 1
            self._last_activity = time.monotonic()

    def _finished(self) -> None:
        with self._count_lock:
            self._in_flight -= 1
            self._last_activity = time.monotonic()

    def quiet(self, period: float = 0.5, timeout: float = WAIT_SECONDS) -> None:
        """Wait until no request is being handled and none came for `period` seconds. Used after
        closing a page: its unload-time hits are invisible to Playwright but must not reach the
        server after the test's database is flushed."""
        deadline = time.monotonic() + timeout
        while True:
            with self._count_lock:
                idle = self._in_flight == 0 and time.monotonic() - self._last_activity >= period
            if idle:
                return
            if time.monotonic() > deadline:
                pytest.fail(f"the collector was still busy {timeout}s after the page closed")
            time.sleep(0.05)


@pytest.fixture
def collector(live_server: Any, transactional_db: Any) -> Iterator[Collector]:
    """The live server, with its requests counted.

    On in-memory SQLite (the default test database) pytest-django hands the test thread's one
    connection to every request thread of the live server, so the pageview and the engagement
    report a navigation sends together would share one transaction ("database table is locked",
    503). That is the harness, not the product (a real server has a connection per thread), so
    there the requests and this thread's reads take turns. MariaDB keeps real concurrency.
    """
    shared = any(conn.vendor == "sqlite" and conn.is_in_memory_db() for conn in connections.all())
    lock = threading.Lock()
    found = Collector(live_server.url, lock if shared else contextlib.nullcontext())
    httpd = live_server.thread.httpd
    app = httpd.get_app()

    def counted(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        found._started()
        try:
            with found.db_lock:
                result = app(environ, start_response)
                try:
                    body = b"".join(result)
                finally:
                    close = getattr(result, "close", None)
                    if close is not None:
                        close()
        finally:
            found._finished()
        return [body]

    httpd.set_app(counted)
    try:
        yield found
    finally:
        httpd.set_app(app)


# -- a visit ----------------------------------------------------------------------------------


@dataclass
class Visitor:
    """A browser tab, and the answers to the hits Playwright saw it send to /api/event."""

    context: Any
    page: Any
    collector: Collector
    sent: list[Any] = field(default_factory=list)
    done: list[Any] = field(default_factory=list)
    answers: list[tuple[int, str | None, str]] = field(default_factory=list)  # status, X-Dropped, body
    left: bool = False

    def watch(self) -> None:
        def is_hit(request: Any) -> bool:
            return request.url == self.collector.endpoint

        def on_request(request: Any) -> None:
            if is_hit(request):
                self.sent.append(request)

        def on_finished(request: Any) -> None:
            if is_hit(request):
                self.done.append(request)

        def on_response(response: Any) -> None:
            if is_hit(response.request):
                body = response.request.post_data or ""
                self.answers.append((response.status, response.headers.get("x-dropped"), body))

        self.context.on("request", on_request)
        self.context.on("requestfinished", on_finished)
        self.context.on("requestfailed", on_finished)
        self.context.on("response", on_response)

    def settle(self, timeout: float = WAIT_SECONDS) -> None:
        """Wait until every hit the open page sent has been answered (pumping Playwright's events)."""
        deadline = time.monotonic() + timeout
        while len(self.done) < len(self.sent):
            if time.monotonic() > deadline:
                pytest.fail(f"{len(self.sent) - len(self.done)} hit(s) still in flight after {timeout}s")
            self.page.wait_for_timeout(50)

    def leave(self) -> None:
        """Close the tab (pagehide: the tracker may send an engagement report) and wait until the
        collector has handled everything it sent."""
        if not self.left:
            self.left = True
            self.page.close()
        self.collector.quiet()

    def wait_for(self, what: str, check: Callable[[], Any], timeout: float = WAIT_SECONDS) -> Any:
        """Poll the database until check() is truthy (never a fixed sleep); fail with what arrived."""
        deadline = time.monotonic() + timeout
        while True:
            with self.collector.db_lock:
                result = check()
            if result:
                return result
            if time.monotonic() > deadline:
                with self.collector.db_lock:
                    rows = list(Event.objects.order_by("ts", "id").values_list("name", "path", "hostname", "value"))
                pytest.fail(
                    f"timed out after {timeout}s waiting for {what}.\n"
                    f"Event rows: {rows}\n"
                    f"collector answers seen by the page (status, X-Dropped, body): {self.answers}"
                )
            if self.left:
                time.sleep(0.05)
            else:
                self.page.wait_for_timeout(50)  # also lets Playwright deliver request/response events


@pytest.fixture
def visit(collector: Collector) -> Iterator[Callable[[Any], Visitor]]:
    """visit(browser) -> a fresh tab in its own context, closed (after its last hits) at teardown."""
    opened: list[Visitor] = []

    def open_visit(browser: Any) -> Visitor:
        context = browser.new_context(viewport=VIEWPORT)
        visitor = Visitor(context=context, page=context.new_page(), collector=collector)
        visitor.watch()
        opened.append(visitor)
        return visitor

    yield open_visit
    for visitor in opened:
        try:
            visitor.leave()
        finally:
            visitor.context.close()


def event(site: Site, **filters: Any) -> Callable[[], Event | None]:
    return lambda: Event.objects.filter(site=site, **filters).first()


def hourly_sums(site: Site) -> dict[str, Any]:
    return HourlyTotal.objects.filter(site=site).aggregate(
        pageviews=Sum("pageviews"), events=Sum("events"), new_visitors=Sum("new_visitors"), visits=Sum("visits")
    )


def page_views(site: Site) -> dict[str, int]:
    return dict(DailyBreakdown.objects.filter(site=site, dim="page").values_list("value", "pageviews"))


# -- tests ------------------------------------------------------------------------------------


def test_pageviews_spa_navigation_custom_event_and_engagement_reach_the_rollups(
    chromium: Any,
    visit: Callable[[Any], Visitor],
    collector: Collector,
    customer_site: Callable[[str], str],
    tracked_site: Site,
) -> None:
    url = customer_site(PAGE.format(script=collector.script, site_id=tracked_site.public_id, extra=""))
    assert not url.startswith(collector.url), "the page must be on another origin than the collector"
    visitor = visit(chromium)
    page = visitor.page

    page.goto(url)
    assert page.evaluate("[navigator.webdriver, navigator.userAgent.includes('Headless')]") == [False, False]
    landing = visitor.wait_for("the landing pageview", event(tracked_site, name="pageview", path="/"))
    assert landing.hostname == "127.0.0.1"
    assert "chrom" in landing.browser.lower(), landing.browser
    assert landing.os == "Linux"
    assert landing.device == "Laptop"
    assert landing.referrer_source == ""
    assert landing.value is None

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "tracker_browser_customer_page.png"))

    page.click("#pricing")
    assert page.evaluate("location.pathname") == "/pricing"
    pricing = visitor.wait_for("the SPA pageview of /pricing", event(tracked_site, name="pageview", path="/pricing"))
    assert pricing.hostname == "127.0.0.1"
    assert (pricing.visitor_id, pricing.visit_key) == (landing.visitor_id, landing.visit_key)

    page.click("#signup")
    signup = visitor.wait_for("the Signup event", event(tracked_site, name="Signup"))
    assert signup.value == 1999
    assert signup.path == "/pricing"
    assert signup.hostname == "127.0.0.1"
    assert signup.visit_key == landing.visit_key

    expected = {"pageviews": 2, "events": 1, "new_visitors": 1, "visits": 1}
    visitor.wait_for(f"HourlyTotal sums {expected}", lambda: hourly_sums(tracked_site) == expected)
    visitor.settle()  # no hit in flight: the reads below see the final rows
    # One visitor: each hour row counts them once (two rows only if the test straddled an hour).
    assert list(HourlyTotal.objects.filter(site=tracked_site).values_list("visitors", flat=True)) in ([1], [1, 1])
    signups = DailyBreakdown.objects.get(site=tracked_site, dim="event", value="Signup")
    assert (signups.value_sum, signups.events, signups.visitors) == (1999, 1, 1)
    assert page_views(tracked_site) == {"/": 1, "/pricing": 1}
    browsers = DailyBreakdown.objects.filter(site=tracked_site, dim="browser").values_list("value", flat=True)
    assert list(browsers) == [landing.browser]
    assert Visit.objects.filter(site=tracked_site).count() == 1

    # Every hit was accepted across origins: nothing dropped (bot, hostname), no CORS failure.
    assert visitor.sent, "the tracker sent nothing"
    assert len(visitor.answers) == len(visitor.sent)
    assert all(status == 202 and dropped is None for status, dropped, _ in visitor.answers), visitor.answers

    # Scroll to the bottom of /pricing and leave: pagehide sends its engagement report.
    page.evaluate("window.scrollTo(0, document.documentElement.scrollHeight)")
    page.wait_for_function("window.scrolls > 0")  # the tracker's scroll listener ran in the same dispatch
    visitor.leave()
    engaged = visitor.wait_for(
        "the engagement report of /pricing", event(tracked_site, name="engagement", path="/pricing")
    )
    assert engaged.scroll_depth == 100
    assert engaged.engaged_ms is not None
    assert engaged.engaged_ms >= 0
    assert engaged.visit_key == landing.visit_key
    pricing_page = DailyBreakdown.objects.get(site=tracked_site, dim="page", value="/pricing")
    assert (pricing_page.engagements, pricing_page.scroll_sum) == (1, 100)
    # Engagement reports are neither pageviews nor events.
    assert hourly_sums(tracked_site) == expected


def test_tracker_sends_nothing_when_navigator_webdriver_is_true(
    automated_chromium: Any,
    visit: Callable[[Any], Visitor],
    collector: Collector,
    customer_site: Callable[[str], str],
    tracked_site: Site,
) -> None:
    url = customer_site(PAGE.format(script=collector.script, site_id=tracked_site.public_id, extra=""))
    visitor = visit(automated_chromium)
    page = visitor.page
    scripts: list[int] = []
    page.on("response", lambda response: scripts.append(response.status) if response.url == collector.script else None)

    page.goto(url)
    assert page.evaluate("navigator.webdriver") is True
    assert scripts == [200], "the tracker did not load, so this test would prove nothing"
    # The API is there (as no-ops), so a site's own calls do not break under automation.
    assert page.evaluate("[typeof fathom.trackEvent, typeof fathom.trackPageview]") == ["function", "function"]
    page.evaluate("fathom.trackEvent('Signup', {value: 1999})")  # raises here if the call threw
    page.click("#signup")
    page.click("#pricing")
    page.wait_for_load_state("networkidle")
    assert visitor.sent == []

    visitor.leave()  # nor on pagehide
    with collector.db_lock:
        assert Event.objects.count() == 0
        assert HourlyTotal.objects.count() == 0


def test_hash_mode_records_hash_routes(
    chromium: Any,
    visit: Callable[[Any], Visitor],
    collector: Collector,
    customer_site: Callable[[str], str],
    tracked_site: Site,
) -> None:
    html = PAGE.format(script=collector.script, site_id=tracked_site.public_id, extra=' data-hash="true"')
    url = customer_site(html)
    visitor = visit(chromium)
    page = visitor.page

    page.goto(url)
    visitor.wait_for("the landing pageview", event(tracked_site, name="pageview", path="/"))
    page.evaluate("location.hash = '#/settings'")
    settings_view = visitor.wait_for(
        "the pageview of the hash route", event(tracked_site, name="pageview", path="/#/settings")
    )
    assert settings_view.hostname == "127.0.0.1"

    page.evaluate("fathom.trackEvent('Signup', {value: 1999})")
    signup = visitor.wait_for("the Signup event", event(tracked_site, name="Signup"))
    assert (signup.path, signup.value) == ("/#/settings", 1999)
    pages = {"/": 1, "/#/settings": 1}
    visitor.wait_for(f"page breakdown {pages}", lambda: page_views(tracked_site) == pages)

"""The security dashboard in real headless Chromium: sign in through the admin, ban a flagged IP
with one click, see it under active bans. Leaves a screenshot in artifacts/security_dashboard.png.

The live server runs in this process. On in-memory SQLite pytest-django hands this thread's one
connection to the server's threads, so the test reads the database only once the page shows the
result (the request that wrote it has finished by then).
"""

from __future__ import annotations

import datetime as dt
import time

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from security import metrics
from security.models import Ban, BanAudit, FlaggedIP
from security.services import ban_network
from testing import ARTIFACTS

pytestmark = pytest.mark.browser

SCREENSHOT = ARTIFACTS / "security_dashboard.png"
TIMEOUT_MS = 10_000
PASSWORD = "pw-browser-staff-123"


def _seed(now: dt.datetime) -> None:
    """The flagged IP under test, some neighbours, an existing ban, and a burst of traffic."""
    flags = [
        ("203.0.113.7", 85, {"rate": 42, "many_sites": 3, "automation_ua": 5}, ["a1b2c3", "d4e5f6", "x9y8z7"], 1),
        ("198.51.100.23", 40, {"xff": 5, "origin": 10}, ["a1b2c3"], 0),
        ("2001:db8:1::9", 18, {"hostname": 5}, ["d4e5f6"], 0),
    ]
    for ip, score, reasons, sites, times_banned in flags:
        FlaggedIP.objects.create(
            ip=ip,
            score=score,
            reasons=reasons,
            sites=sites,
            times_banned=times_banned,
            first_seen=now - dt.timedelta(hours=3, minutes=12),
            last_seen=now - dt.timedelta(minutes=2),
            expires_at=now + dt.timedelta(days=7),
        )
    ban_network(network="192.0.2.0/24", reason="auto: score 130 (rate)", source="auto", duration=dt.timedelta(hours=4))
    clock = time.time()
    for minute in range(150, 0, -1):
        at = clock - minute * 60
        for _ in range(20 + (minute * 7) % 13):
            metrics.record("accepted", now=at)
        if minute % 4 == 0:
            metrics.record("dropped", now=at)
        if 20 < minute < 45:  # an attack a while ago: rate limits, then bans
            for _ in range(30 - abs(32 - minute)):
                metrics.record("rate_limited", now=at)
            for _ in range(max(0, 12 - abs(28 - minute))):
                metrics.record("banned", now=at)


def test_staff_bans_a_flagged_ip_with_one_click(chromium, live_server, transactional_db):
    from playwright.sync_api import expect

    get_user_model().objects.create_user("ops", "ops@example.com", PASSWORD, is_staff=True)
    _seed(timezone.now())

    context = chromium.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    try:
        page.goto(f"{live_server.url}/security/")
        expect(page).to_have_url(f"{live_server.url}/admin/login/?next=/security/")
        page.fill("#id_username", "ops")
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page).to_have_url(f"{live_server.url}/security/")
        expect(page.locator("h2#traffic-title")).to_have_text("Traffic, last 3 h")
        expect(page.locator("svg.chart path.bars").first).to_be_visible()
        expect(page.locator("#bans tr[data-network='203.0.113.7/32']")).to_have_count(0)

        row = page.locator("tr[data-ip='203.0.113.7']")
        expect(row.locator(".reasons")).to_contain_text("rate \u00d742")  # the multiplication sign
        row.locator("select[name=duration]").select_option("24h")
        row.locator("button[name=action][value=ban]").click()

        expect(page.locator(".messages .msg-success")).to_have_text("Banned 203.0.113.7/32 for 24h.")
        ban_row = page.locator("#bans tr[data-network='203.0.113.7/32']")
        expect(ban_row).to_be_visible()
        expect(ban_row).to_contain_text("ops")
        # Without a filter the row left the open list: it is banned now.
        expect(page.locator("#flagged tr[data-ip='203.0.113.7']")).to_have_count(0)
        page.wait_for_load_state("networkidle")

        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(SCREENSHOT), full_page=True)
    finally:
        context.close()

    # The page has shown the result, so the request that wrote it is over: safe to read now.
    deadline = time.monotonic() + 5
    while not Ban.objects.filter(network="203.0.113.7/32").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    ban = Ban.objects.get(network="203.0.113.7/32")
    assert ban.created_by.username == "ops"
    assert abs((ban.expires_at - timezone.now() - dt.timedelta(hours=24)).total_seconds()) < 120
    assert BanAudit.objects.filter(action="ban", network="203.0.113.7/32", actor=ban.created_by).exists()
    assert FlaggedIP.objects.get(ip="203.0.113.7").status == "banned"
    assert SCREENSHOT.stat().st_size > 10_000

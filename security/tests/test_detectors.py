"""Detector scenarios replayed against the collector, on real Redis counters.

Attacks must be flagged (and the worst auto-banned); legitimate traffic that looks busy must
not be: an office behind one NAT address, and a search engine crawler rendering the site.
"""

from __future__ import annotations

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from collector.models import Event
from security.models import Ban, FlaggedIP
from sites.models import Site
from testing import CHROME_UA, send

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_cache")]


def ua(version: int) -> str:
    return CHROME_UA.replace("Chrome/131.0.0.0", f"Chrome/{version}.0.0.0")


def pageview(site, path="/", **extra):
    return {"n": "pageview", "u": f"https://{site.domain}{path}", "sid": site.public_id, **extra}


def flags() -> dict[str, dict[str, int]]:
    return {row.ip: row.reasons for row in FlaggedIP.objects.all()}


def test_a_single_ip_flood_is_flagged_then_auto_banned(
    site, settings, django_capture_on_commit_callbacks, frozen_clock
):
    settings.COLLECTOR_SITE_RATE = "20/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.66")
    with django_capture_on_commit_callbacks(execute=True):  # the ban is announced when its transaction commits
        statuses = [send(client, pageview(site, f"/{i}")).status_code for i in range(125)]
    assert statuses[:20] == [202] * 20
    assert set(statuses[20:]) == {429}
    after = [send(client, pageview(site)).status_code for _ in range(5)]
    assert after == [403] * 5  # banned automatically: bare 403 from then on
    flagged = FlaggedIP.objects.get(ip="203.0.113.66")
    assert flagged.status == "banned"
    assert flagged.reasons["ratelimited"] >= 100
    assert flagged.score >= settings.AUTO_BAN_SCORE
    assert flagged.sites == [site.public_id]
    ban = Ban.objects.get(network="203.0.113.66/32")
    assert ban.source == "auto"
    assert dt.timedelta(minutes=59) < ban.expires_at - timezone.now() <= dt.timedelta(hours=1)
    assert Event.objects.count() == 20


def test_a_returning_attacker_is_banned_again_for_longer(
    site, settings, django_capture_on_commit_callbacks, frozen_clock
):

    from security.services import expire_bans

    settings.COLLECTOR_SITE_RATE = "20/m"
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.67")

    def flood() -> None:
        with django_capture_on_commit_callbacks(execute=True):
            for i in range(125):
                send(client, pageview(site, f"/{i}"))

    flood()
    first = Ban.objects.get()
    assert dt.timedelta(minutes=59) < first.expires_at - timezone.now() <= dt.timedelta(hours=1)
    # An hour later the ban expires (the scheduler's job) and the address comes back.
    Ban.objects.update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with django_capture_on_commit_callbacks(execute=True):
        assert expire_bans() == 1
    flagged = FlaggedIP.objects.get()
    assert (flagged.status, flagged.score, flagged.times_banned) == ("open", 0, 1)
    frozen_clock[0] += 3600  # an hour later: new windows for the limits and the counters
    flood()
    second = Ban.objects.get()
    # Second ban: the base hour x 4.
    assert dt.timedelta(hours=3, minutes=59) < second.expires_at - timezone.now() <= dt.timedelta(hours=4)
    assert FlaggedIP.objects.get().times_banned == 2


def test_a_nat_of_identical_browsers_is_never_auto_banned(site, settings, monkeypatch):
    # 25 colleagues on one address with the same Chrome build look like one visitor to the
    # per-visitor rate: about 60 hits a minute, minute after minute.
    clock = [1_800_000_010.0]
    monkeypatch.setattr("time.time", lambda: clock[0])
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="198.51.100.201")
    for _minute in range(12):
        for i in range(60):
            assert send(client, pageview(site, f"/{i % 7}")).status_code == 202
        clock[0] += 60
    flagged = FlaggedIP.objects.get()
    assert flagged.reasons == {"rate": 12}  # the evidence is there for a human to judge...
    assert flagged.status == "open"
    assert not Ban.objects.exists()  # ...but it never adds up to a ban


def test_one_visitor_far_above_human_rate_is_flagged_but_not_banned(site, settings, frozen_clock):
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.68")
    for i in range(settings.DETECT_HUMAN_MAX_PER_MINUTE + 5):
        assert send(client, pageview(site, f"/{i}")).status_code == 202
    assert flags() == {"203.0.113.68": {"rate": 1}}
    assert FlaggedIP.objects.get().status == "open"
    assert not Ban.objects.exists()


def test_one_ip_across_many_sites_is_flagged(db):
    sites = [Site.objects.create(domain=f"site{i}.example") for i in range(8)]
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.69")
    for target in sites:
        assert send(client, pageview(target)).status_code == 202
    flagged = FlaggedIP.objects.get(ip="203.0.113.69")
    assert flagged.reasons == {"many_sites": 1}
    assert flagged.sites == [sites[5].public_id]  # the site that crossed the line


def test_hostname_and_origin_mismatches_are_flagged(site):
    spoofer = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.70")
    for _ in range(5):
        assert (
            send(spoofer, {"n": "pageview", "u": "https://casino.example/", "sid": site.public_id})["X-Dropped"]
            == "hostname"
        )
    embedder = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.71")
    for _ in range(5):
        send(embedder, pageview(site), HTTP_ORIGIN="https://spam.example")
    assert flags() == {"203.0.113.70": {"hostname": 5}, "203.0.113.71": {"origin": 5}}


def test_automation_user_agents_are_flagged_but_declared_crawlers_are_not(site):
    script = Client(HTTP_USER_AGENT="python-requests/2.32.3", REMOTE_ADDR="203.0.113.72")
    headless = Client(HTTP_USER_AGENT=CHROME_UA.replace("Chrome/", "HeadlessChrome/"), REMOTE_ADDR="203.0.113.73")
    crawler = Client(
        HTTP_USER_AGENT="Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        REMOTE_ADDR="66.249.66.1",
    )
    for _ in range(5):
        assert send(script, pageview(site))["X-Dropped"] == "bot"
        assert send(headless, pageview(site))["X-Dropped"] == "bot"
    for i in range(30):  # Google rendering the customer's pages runs the tracker: dropped, never flagged
        assert send(crawler, pageview(site, f"/page-{i}"))["X-Dropped"] == "bot"
    assert flags() == {"203.0.113.72": {"automation_ua": 5}, "203.0.113.73": {"automation_ua": 5}}


def test_malformed_forwarded_for_behind_the_proxy_is_flagged(site, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="10.0.0.9")
    for _ in range(5):
        send(client, pageview(site), HTTP_X_FORWARDED_FOR="not-an-address")
    assert flags() == {"10.0.0.9": {"xff": 5}}


def test_custom_events_with_no_pageview_are_flagged(site):
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.74")
    for _ in range(10):
        send(client, {"n": "Signup", "u": "https://example.com/", "sid": site.public_id})
    real = Client(HTTP_USER_AGENT=ua(120), REMOTE_ADDR="203.0.113.75")
    send(real, pageview(site))
    for _ in range(10):
        send(real, {"n": "Signup", "u": "https://example.com/", "sid": site.public_id})
    assert flags() == {"203.0.113.74": {"no_pageview": 10}}


def test_a_busy_office_behind_one_nat_address_is_not_flagged(site):
    # 60 colleagues, each a different browser build, reading a few pages and clicking once:
    # 240 hits from one address within the minute (the per-IP limits are 600 and 300 per site).
    for person in range(60):
        colleague = Client(HTTP_USER_AGENT=ua(60 + person), REMOTE_ADDR="198.51.100.200")
        for page in ("/", "/pricing", "/docs"):
            assert send(colleague, pageview(site, page)).status_code == 202
        assert (
            send(colleague, {"n": "Download", "u": "https://example.com/docs", "sid": site.public_id}).status_code
            == 202
        )
    assert flags() == {}
    assert Event.objects.count() == 240


def test_one_visitor_at_ten_times_a_humans_rate_is_banned_within_the_minute(
    site, settings, django_capture_on_commit_callbacks, frozen_clock
):
    settings.DETECT_HUMAN_MAX_PER_MINUTE = 10
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.76")
    with django_capture_on_commit_callbacks(execute=True):
        statuses = [send(client, pageview(site, f"/{i}")).status_code for i in range(101)]
    assert set(statuses) == {202}  # under every rate limit...
    assert FlaggedIP.objects.get().reasons == {"rate": 10}
    assert send(client, pageview(site)).status_code == 403  # ...and banned for what it is


def test_a_stream_of_malformed_requests_is_flagged(site):
    client = Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.77")
    for i in range(20):
        body = "x" * 5000 if i % 2 else "{not json"
        assert send(client, body).status_code in (400, 413)
    assert flags() == {"203.0.113.77": {"malformed": 20}}

"""Email reports: `manage.py send_reports` over traffic replayed through the real collector.

Site in Pacific/Auckland (UTC+13 in November). Local times; the report week is Mon 16 - Sun 22
November 2026, the week before it is the comparison:

Wed 11 Nov 10:00  P  /         from Google                     visit: bounce
Thu 12 Nov 11:00  Q  /                                         visit: bounce
Mon 16 Nov 00:30  A  /         from Google -> 00:32 /pricing    visit: 2 pv, 120 s  (Sunday 11:30 in UTC)
Tue 17 Nov 09:00  B  /         from Twitter (t.co)             visit: bounce
Sat 21 Nov 14:00  C  /blog     from Hacker News -> 14:05 /      visit: 2 pv, 300 s
Sun 22 Nov 23:30  D  /pricing                                  visit: bounce
Mon 23 Nov 00:10  E  /                                         next week (still Sunday in UTC)

Week: 4 visitors, 4 visits, 6 pageviews, bounce rate 50%, 105 s a visit, 1.50 views a visit.
Before: 2 visitors, 2 visits, 2 pageviews, bounce rate 100%, 0 s, 1.00.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.core.mail.backends.locmem import EmailBackend
from django.core.management import CommandError, call_command
from django.test import Client

from dashboard import reports
from dashboard.models import Membership, ReportSubscription, Role
from dashboard.report_data import METRIC_LABELS
from sites.models import Site
from testing import CHROME_UA, send

pytestmark = [pytest.mark.django_db, pytest.mark.analytics]  # on both stores (make test-chdb)

AKL = zoneinfo.ZoneInfo("Pacific/Auckland")
WEEK = "2026-11-16,2026-11-22"


def hit(
    site: Site, monkeypatch: pytest.MonkeyPatch, moment: dt.datetime, ip: str, path: str, referrer: str = ""
) -> None:
    monkeypatch.setattr("collector.views.now_ms", lambda: int(moment.timestamp() * 1000))
    body = {"n": "pageview", "u": f"https://{site.domain}{path}", "sid": site.public_id, "w": 1920}
    if referrer:
        body["r"] = referrer
    response = send(Client(HTTP_USER_AGENT=CHROME_UA), body, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR=ip)
    assert response.status_code == 202
    assert not response.has_header("X-Dropped")


def replay(site: Site, monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    settings.TRUSTED_PROXY_HOPS = 1

    def at(day: int, hh: int, mm: int) -> dt.datetime:
        return dt.datetime(2026, 11, day, hh, mm, tzinfo=AKL)

    hit(site, monkeypatch, at(11, 10, 0), "198.51.100.1", "/", "https://www.google.com/")
    hit(site, monkeypatch, at(12, 11, 0), "198.51.100.2", "/")
    hit(site, monkeypatch, at(16, 0, 30), "198.51.100.3", "/", "https://www.google.com/")
    hit(site, monkeypatch, at(16, 0, 32), "198.51.100.3", "/pricing", f"https://{site.domain}/")
    hit(site, monkeypatch, at(17, 9, 0), "198.51.100.4", "/", "https://t.co/abc")
    hit(site, monkeypatch, at(21, 14, 0), "198.51.100.5", "/blog", "https://news.ycombinator.com/item?id=1")
    hit(site, monkeypatch, at(21, 14, 5), "198.51.100.5", "/", f"https://{site.domain}/blog")
    hit(site, monkeypatch, at(22, 23, 30), "198.51.100.6", "/pricing")
    hit(site, monkeypatch, at(23, 0, 10), "198.51.100.7", "/")


def make_user(name: str, email: str | None = None, **extra: Any) -> Any:
    return get_user_model().objects.create_user(name, email=f"{name}@example.net" if email is None else email, **extra)


@pytest.fixture
def auckland_owner(db: Any) -> Any:
    """The owner of the Auckland site: owner@example.net, as make_user names everyone here."""
    return make_user("owner")


@pytest.fixture
def auckland_site(auckland_owner: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Site:
    """kiwi.example in Pacific/Auckland with the traffic of the module's docstring."""
    site = Site.objects.create(domain="kiwi.example", timezone="Pacific/Auckland", owner=auckland_owner)
    replay(site, monkeypatch, settings)
    return site


def subscribe(site: Site, user: Any, frequency: str = "weekly") -> ReportSubscription:
    return ReportSubscription.objects.create(site=site, user=user, frequency=frequency)


def run(*args: str) -> str:
    from io import StringIO

    out = StringIO()
    call_command("send_reports", *args, stdout=out)
    return out.getvalue()


def numbers(text: str) -> dict[str, list[str]]:
    """The text email's table: {"Unique visitors": ["4", "+100%"], ...}."""
    rows = [
        line for line in text.splitlines() if line.startswith(tuple(METRIC_LABELS[name] for name in reports.METRICS))
    ]
    return {line[:18].strip(): re.split(r"\s{2,}", line[18:].strip()) for line in rows}


def html_of(message: Any) -> str:
    (content, mimetype), *_ = message.alternatives
    assert mimetype == "text/html"
    return content


# -- periods ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frequency", "today", "start", "end"),
    [
        ("weekly", "2026-11-23", "2026-11-16", "2026-11-22"),  # Monday: the week just ended
        ("weekly", "2026-11-29", "2026-11-16", "2026-11-22"),  # Sunday: its own week is not over
        ("weekly", "2027-01-04", "2026-12-28", "2027-01-03"),  # across the new year
        ("monthly", "2026-12-01", "2026-11-01", "2026-11-30"),
        ("monthly", "2026-12-31", "2026-11-01", "2026-11-30"),
        ("monthly", "2026-03-15", "2026-02-01", "2026-02-28"),
        ("monthly", "2026-01-01", "2025-12-01", "2025-12-31"),
    ],
)
def test_the_report_covers_the_last_complete_week_or_month(frequency, today, start, end):
    period = reports.last_complete_period(frequency, dt.date.fromisoformat(today), AKL)
    assert (period.start.isoformat(), period.end.isoformat()) == (start, end)


# -- content ----------------------------------------------------------------------------------


def test_a_weekly_report_has_the_weeks_numbers_and_changes(auckland_site, auckland_owner, settings):
    settings.BASE_URL = "https://stats.example"
    subscribe(auckland_site, auckland_owner)
    assert run("--as-of", "2026-11-23").strip() == "sent 1, skipped 0, failed 0"

    (message,) = mail.outbox
    assert message.to == ["owner@example.net"]
    assert message.subject == "kiwi.example: your weekly report for 16 Nov - 22 Nov 2026"
    text = message.body
    assert "kiwi.example: your week of 16 Nov - 22 Nov 2026" in text
    assert "Changes are against the previous 7 days (9 Nov - 15 Nov 2026)." in text
    assert list(numbers(text).items()) == [
        ("Unique visitors", ["4", "+100%"]),
        ("Total visits", ["4", "+100%"]),
        ("Total pageviews", ["6", "+200%"]),
        ("Bounce rate", ["50%", "-50 pp"]),
        ("Visit duration", ["1m 45s", "from 0"]),
        ("Views per visit", ["1.50", "+50%"]),
    ]
    pages = text.split("Top pages (unique visitors)\n")[1].split("\n\n")[0].splitlines()
    assert [line.split() for line in pages] == [["3", "/"], ["2", "/pricing"], ["1", "/blog"]]
    sources = text.split("Top sources (unique visitors)\n")[1].split("\n\n")[0].splitlines()
    assert [line.split(None, 1) for line in sources] == [
        ["1", "Direct / None"],
        ["1", "Google"],
        ["1", "Hacker News"],
        ["1", "Twitter"],
    ]
    link = f"https://stats.example/sites/{auckland_site.public_id}/?period=custom&date={WEEK}"
    assert link in text

    html = html_of(message)
    for shown in ("16 Nov - 22 Nov 2026", ">4<", ">6<", ">50%<", ">1m 45s<", ">1.50<", "+200%", "-50 pp", "/pricing"):
        assert shown in html, shown
    assert f'href="{link.replace("&", "&amp;")}"' in html
    assert "Hacker News" in html
    assert "prefers-color-scheme: dark" in html
    assert "<script" not in html


def test_the_week_is_the_sites_week_not_utcs(auckland_site, auckland_owner):
    """At 12:00 UTC on Sunday 22 November it is already Monday 01:00 in Auckland: the week of the
    16th is over there (and includes A's visit, which was still Sunday the 15th in UTC), while a
    site in UTC only has the week of the 9th behind it."""
    utc_owner = make_user("utc-owner")
    utc_site = Site.objects.create(domain="utc.example", timezone="UTC", owner=utc_owner)
    subscribe(auckland_site, auckland_owner)
    subscribe(utc_site, utc_owner)
    summary = reports.send_reports("weekly", now=dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC))
    assert (summary.sent, summary.failed) == (2, 0)
    by_site = {message.to[0]: message for message in mail.outbox}
    assert by_site["owner@example.net"].subject.endswith("16 Nov - 22 Nov 2026")
    assert numbers(by_site["owner@example.net"].body)["Unique visitors"] == ["4", "+100%"]  # not E (Monday)
    assert by_site["utc-owner@example.net"].subject.endswith("9 Nov - 15 Nov 2026")
    assert ReportSubscription.objects.get(site=auckland_site).last_period_end == dt.date(2026, 11, 22)
    assert ReportSubscription.objects.get(site=utc_site).last_period_end == dt.date(2026, 11, 15)


def test_a_monthly_report_covers_the_calendar_month(auckland_site, auckland_owner):
    subscribe(auckland_site, auckland_owner, "monthly")
    subscribe(auckland_site, auckland_owner, "weekly")
    assert run("--frequency", "monthly", "--as-of", "2026-12-03").strip() == "sent 1, skipped 0, failed 0"
    (message,) = mail.outbox
    assert message.subject == "kiwi.example: your monthly report for November 2026"
    assert "your month of 1 Nov - 30 Nov 2026" in message.body
    assert "against the previous 30 days (2 Oct - 31 Oct 2026)" in message.body
    # Every visitor of the dataset, E (Monday the 23rd) too; nothing in October.
    assert numbers(message.body)["Unique visitors"] == ["7", "from 0"]
    assert numbers(message.body)["Total pageviews"] == ["9", "from 0"]
    assert "date=2026-11-01,2026-11-30" in message.body
    assert ReportSubscription.objects.get(frequency="weekly").last_period_end is None


def test_due_sends_each_frequency_its_last_period_once(auckland_site, auckland_owner):
    subscribe(auckland_site, auckland_owner, "monthly")
    subscribe(auckland_site, auckland_owner, "weekly")
    assert run("--as-of", "2026-12-03").strip() == "sent 2, skipped 0, failed 0"
    assert sorted(m.subject for m in mail.outbox) == [
        "kiwi.example: your monthly report for November 2026",
        "kiwi.example: your weekly report for 23 Nov - 29 Nov 2026",
    ]
    # The next days of the same week: nothing new is due.
    for day in ("2026-12-04", "2026-12-06"):
        assert run("--as-of", day).strip() == "sent 0, skipped 2, failed 0"
    # Monday: the next week is.
    assert run("--as-of", "2026-12-07").strip() == "sent 1, skipped 1, failed 0"
    assert mail.outbox[-1].subject == "kiwi.example: your weekly report for 30 Nov - 6 Dec 2026"


# -- who gets it ------------------------------------------------------------------------------


def test_only_people_who_can_still_view_the_site_get_it(auckland_site, auckland_owner):
    viewer = make_user("viewer")
    Membership.objects.create(site=auckland_site, user=viewer, role=Role.VIEWER)
    removed = make_user("removed")
    gone = Membership.objects.create(site=auckland_site, user=removed, role=Role.ADMIN)
    inactive = make_user("inactive", is_active=False)
    Membership.objects.create(site=auckland_site, user=inactive)
    no_email = make_user("no-email", email="")
    Membership.objects.create(site=auckland_site, user=no_email)
    for user in (auckland_owner, viewer, removed, inactive, no_email):
        subscribe(auckland_site, user)
    gone.delete()  # removed from the team; the subscription row stayed behind

    output = run("--as-of", "2026-11-23", "--verbosity", "2")
    assert output.splitlines()[-1] == "sent 2, skipped 3, failed 0"
    assert sorted(message.to[0] for message in mail.outbox) == ["owner@example.net", "viewer@example.net"]
    assert all(len(message.to) == 1 and not message.cc and not message.bcc for message in mail.outbox)
    assert "no longer a member of the site" in output
    assert "inactive user" in output
    assert "no email address" in output
    assert "removed@example.net" not in output  # addresses stay out of logs
    assert ReportSubscription.objects.get(user=removed).last_period_end is None


def test_a_second_run_sends_nothing(auckland_site, auckland_owner):
    subscription = subscribe(auckland_site, auckland_owner)
    run("--as-of", "2026-11-23")
    subscription.refresh_from_db()
    assert subscription.last_period_end == dt.date(2026, 11, 22)
    assert subscription.last_sent_at is not None
    assert run("--as-of", "2026-11-24").strip() == "sent 0, skipped 1, failed 0"
    assert len(mail.outbox) == 1


def test_an_earlier_period_is_never_sent_after_a_later_one(auckland_site, auckland_owner):
    """A run with an earlier --as-of (or a site whose local date moved back) does not send the
    older period again, nor does it move the bookkeeping back."""
    subscription = subscribe(auckland_site, auckland_owner, "monthly")
    assert run("--as-of", "2026-12-01").strip() == "sent 1, skipped 0, failed 0"
    assert run("--as-of", "2026-11-26").strip() == "sent 0, skipped 1, failed 0"  # October: older
    assert [m.subject for m in mail.outbox] == ["kiwi.example: your monthly report for November 2026"]
    subscription.refresh_from_db()
    assert subscription.last_period_end == dt.date(2026, 11, 30)
    # The claim refuses it too (two runs racing, one with an older as-of).
    october = reports.last_complete_period("monthly", dt.date(2026, 11, 26), auckland_site.tz)
    assert not reports._claim(subscription, october, dt.datetime.now(dt.UTC))
    subscription.refresh_from_db()
    assert subscription.last_period_end == dt.date(2026, 11, 30)


def test_a_dry_run_sends_and_records_nothing(auckland_site, auckland_owner):
    subscription = subscribe(auckland_site, auckland_owner)
    output = run("--dry-run", "--as-of", "2026-11-23")
    assert "would send weekly kiwi.example 2026-11-16..2026-11-22" in output
    assert output.splitlines()[-1] == "dry run: would send 1, skipped 0, failed 0"
    assert mail.outbox == []
    subscription.refresh_from_db()
    assert (subscription.last_period_end, subscription.last_sent_at) == (None, None)


def test_one_failed_recipient_does_not_stop_the_others(auckland_site, auckland_owner, monkeypatch):
    teammates = [make_user(f"mate{i}") for i in range(3)]
    for user in teammates:
        Membership.objects.create(site=auckland_site, user=user)
    for user in (auckland_owner, *teammates):
        subscribe(auckland_site, user)
    real_send = EmailBackend.send_messages

    def flaky(self: Any, messages: list[Any]) -> int:
        if messages[0].to == ["mate1@example.net"]:
            raise ConnectionResetError("SMTP server hung up")
        return real_send(self, messages)

    monkeypatch.setattr(EmailBackend, "send_messages", flaky)
    with pytest.raises(CommandError, match="1 report"):
        run("--as-of", "2026-11-23")
    assert sorted(m.to[0] for m in mail.outbox) == ["mate0@example.net", "mate2@example.net", "owner@example.net"]
    failed = ReportSubscription.objects.get(user__username="mate1")
    assert failed.last_period_end is None  # not marked: the next run tries again

    monkeypatch.setattr(EmailBackend, "send_messages", real_send)
    assert run("--as-of", "2026-11-23").strip() == "sent 1, skipped 3, failed 0"
    assert mail.outbox[-1].to == ["mate1@example.net"]


def test_a_bad_as_of_date_is_refused(db):
    with pytest.raises(CommandError, match="expected YYYY-MM-DD"):
        run("--as-of", "23/11/2026")


# -- the scheduler ----------------------------------------------------------------------------


def test_the_hourly_task_sends_what_is_due_on_the_default_queue(auckland_site, auckland_owner, settings, monkeypatch):
    from dashboard.tasks import send_reports_task

    subscribe(auckland_site, auckland_owner)
    monkeypatch.setattr("dashboard.reports.timezone.now", lambda: dt.datetime(2026, 11, 23, 9, 0, tzinfo=dt.UTC))
    assert send_reports_task.delay().get() == "sent 1, skipped 0, failed 0"  # eager in tests
    assert send_reports_task() == "sent 0, skipped 1, failed 0"
    assert len(mail.outbox) == 1
    entry = settings.CELERY_BEAT_SCHEDULE["send-reports"]
    assert (entry["task"], entry["schedule"], entry["kwargs"]) == ("dashboard.tasks.send_reports_task", 3600.0, {"frequency": "due"})  # fmt: skip
    assert settings.CELERY_TASK_ROUTES["dashboard.tasks.send_reports_task"] == {"queue": "default"}

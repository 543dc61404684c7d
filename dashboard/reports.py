"""Email reports: a weekly or monthly summary of a site, sent to its opted-in members.

`manage.py send_reports` (run hourly by the scheduler) calls send_reports(). For each
ReportSubscription it works out the last *complete* period in the site's time zone (the ISO
week Mon-Sun, or the calendar month, that ended before the site's "today") and sends it once:

- Idempotent: a subscription whose `last_period_end` is that period's end (or later) is skipped,
  so running the command every hour (or twice by hand, or with an earlier --as-of) never sends
  anyone two copies, nor an older period after a newer one. The row is
  claimed with a conditional UPDATE before the email leaves, so two overlapping runs cannot
  both send it either; a failed send gives the claim back, and the next run retries it.
- Only the last complete period is sent: a scheduler that was down for two weeks does not
  flood anyone with old reports.
- Access is checked at send time (dashboard.access): someone removed from a site keeps no
  report, even if a subscription row survived. Inactive users and users without an email are
  skipped.

The numbers are the dashboard's: report_data.build_report (the page's and the export's report
model) with two of its panels and no chart: totals compared with the previous period of the
same length (7 days, or as many days as the month has: the dashboard's `previous_period`), and
the top 5 pages and sources. This module only words them for an email (ReportEmail).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db.models import Q
from django.template.loader import render_to_string
from django.utils import timezone

from dashboard import access
from dashboard.formatting import FORMATTERS
from dashboard.models import ReportFrequency, ReportSubscription
from dashboard.report_data import Metric, Report, build_report
from dashboard.selectors.periods import Period, parse_period
from sites.models import Site

log = logging.getLogger(__name__)

WEEKLY, MONTHLY = ReportFrequency.WEEKLY.value, ReportFrequency.MONTHLY.value
DUE = "due"  # every frequency whose last period has ended and not been sent yet
FREQUENCIES = (WEEKLY, MONTHLY, DUE)
METRICS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration", "views_per_visit")
TOP = 5


# -- periods ----------------------------------------------------------------------------------


def last_complete_period(frequency: str, today: dt.date, tz: Any) -> Period:
    """The last ISO week (Mon-Sun) or calendar month that ended before `today` (a local date)."""
    if frequency == WEEKLY:
        end = today - dt.timedelta(days=today.isoweekday())  # the Sunday before today
        start = end - dt.timedelta(days=6)
    elif frequency == MONTHLY:
        end = today.replace(day=1) - dt.timedelta(days=1)
        start = end.replace(day=1)
    else:
        raise ValueError(f"unknown report frequency {frequency!r}")
    return parse_period("custom", f"{start.isoformat()},{end.isoformat()}", tz)


def local_today(site: Site, now: dt.datetime | None = None) -> dt.date:
    return (now or timezone.now()).astimezone(site.tz).date()


# -- the email ---------------------------------------------------------------------------------


# The panels of report_data the email shows, in this order, and what an empty one lacks.
PANELS = (("pages", "pageviews"), ("sources", "visits"))


@dataclass(frozen=True)
class ReportEmail:
    """One site's report for one period (report_data.Report), as the email words it."""

    report: Report
    frequency: str

    @property
    def site(self) -> Site:
        return self.report.site

    @property
    def period(self) -> Period:
        return self.report.period

    @property
    def previous(self) -> Period:
        return self.period.previous()

    @property
    def metrics(self) -> list[dict[str, Any]]:
        """The headline in the email's order: label, value and change as text, and whether the change is good news."""
        return [_metric_line(self.report.metric(name)) for name in METRICS]

    @property
    def panels(self) -> list[dict[str, Any]]:
        visitors = int(self.report.metric("visitors").value)
        result = []
        for key, lacking in PANELS:
            panel = self.report.panel(key)
            rows = [
                {
                    "label": row.label,
                    "visitors": row.numbers["visitors"],
                    # Percent of the period's visitors, for the bar in the HTML email.
                    "share": round(100 * row.numbers["visitors"] / visitors) if visitors else 0,
                }
                for row in panel.rows
            ]
            result.append({"title": panel.title, "rows": rows, "empty": f"No {lacking} in this {self.noun}."})
        return result

    @property
    def period_label(self) -> str:
        return date_range(self.period.start, self.period.end)

    @property
    def previous_label(self) -> str:
        return date_range(self.previous.start, self.previous.end)

    @property
    def noun(self) -> str:
        return "week" if self.frequency == WEEKLY else "month"

    @property
    def subject(self) -> str:
        if self.frequency == MONTHLY:
            return f"{self.site.domain}: your monthly report for {self.period.start:%B %Y}"
        return f"{self.site.domain}: your weekly report for {self.period_label}"

    @property
    def dashboard_url(self) -> str:
        dates = f"{self.period.start.isoformat()},{self.period.end.isoformat()}"
        return f"{settings.BASE_URL}/sites/{self.site.public_id}/?period=custom&date={dates}"

    @property
    def settings_url(self) -> str:
        return f"{settings.BASE_URL}/sites/{self.site.public_id}/settings/"


def _metric_line(metric: Metric) -> dict[str, Any]:
    """A headline number as a text email shows it: ASCII signs, two decimals for views per visit."""
    display = f"{metric.value:.2f}" if metric.key == "views_per_visit" else FORMATTERS[metric.key](metric.value)
    if metric.change is None:
        change = "from 0" if metric.value else "-"  # nothing to compare with
    else:
        unit = " pp" if metric.key == "bounce_rate" else "%"  # percentage points for the bounce rate
        sign = "+" if metric.change > 0 else ("-" if metric.change < 0 else "")
        change = f"{sign}{abs(metric.change)}{unit}"
    good = None if not metric.change else (metric.change < 0) == metric.lower_is_better
    return {"label": metric.label, "display": display, "change_display": change, "is_good": good}


def date_range(start: dt.date, end: dt.date) -> str:
    """16 Nov - 22 Nov 2026; 28 Dec 2026 - 3 Jan 2027; 1 Nov - 30 Nov 2026."""
    if start.year == end.year:
        return f"{start.day} {start:%b} - {end.day} {end:%b %Y}"
    return f"{start.day} {start:%b %Y} - {end.day} {end:%b %Y}"


def build_email(site: Site, frequency: str, period: Period) -> ReportEmail:
    report = build_report(site, period, limit=TOP, panels=[key for key, _ in PANELS], chart=False)
    return ReportEmail(report, frequency)


def render_email(email: ReportEmail, recipient: Any) -> EmailMultiAlternatives:
    context = {"email": email, "recipient": recipient}
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=render_to_string("dashboard/email/report.txt", context),
        to=[recipient.email],
    )
    message.attach_alternative(render_to_string("dashboard/email/report.html", context), "text/html")
    return message


# -- sending ----------------------------------------------------------------------------------


@dataclass
class Summary:
    sent: int = 0
    skipped: int = 0
    failed: int = 0
    lines: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        return f"sent {self.sent}, skipped {self.skipped}, failed {self.failed}"


def _skip_reason(subscription: ReportSubscription, period: Period) -> str | None:
    user = subscription.user
    if subscription.last_period_end is not None and subscription.last_period_end >= period.end:
        return "already sent"  # this period, or a later one (an earlier --as-of never goes back)
    if not user.is_active:
        return "inactive user"
    if not user.email:
        return "no email address"
    if not access.user_can_view(user, subscription.site):
        return "no longer a member of the site"
    return None


def _claim(subscription: ReportSubscription, period: Period, now: dt.datetime) -> bool:
    """Mark the period as sent unless another run already did (it, or a later period); True if
    this run owns it."""
    claimed = (
        ReportSubscription.objects.filter(pk=subscription.pk)
        .filter(Q(last_period_end__isnull=True) | Q(last_period_end__lt=period.end))
        .update(last_period_end=period.end, last_sent_at=now)
    )
    return claimed == 1


def _release(subscription: ReportSubscription, period: Period) -> None:
    """Give a claim back after a failed send, so the next run tries again."""
    ReportSubscription.objects.filter(pk=subscription.pk, last_period_end=period.end).update(
        last_period_end=subscription.last_period_end, last_sent_at=subscription.last_sent_at
    )


def frequencies_for(frequency: str) -> tuple[str, ...]:
    if frequency == DUE:
        return (WEEKLY, MONTHLY)
    if frequency in (WEEKLY, MONTHLY):
        return (frequency,)
    raise ValueError(f"unknown frequency {frequency!r}: use one of {', '.join(FREQUENCIES)}")


def send_reports(
    frequency: str = DUE,
    *,
    today: dt.date | None = None,
    now: dt.datetime | None = None,
    dry_run: bool = False,
    subscriptions: Iterable[ReportSubscription] | None = None,
) -> Summary:
    """Send every subscription's last complete period, once. `today` is taken as each site's
    local date (for --as-of); otherwise each site's local date at `now` (default: now).
    One recipient's failure is logged and counted; the others are still sent."""
    now = now or timezone.now()
    if subscriptions is None:
        subscriptions = (
            ReportSubscription.objects.filter(frequency__in=frequencies_for(frequency))
            .select_related("site", "user")
            .order_by("site_id", "frequency", "pk")
        )
    summary = Summary()
    emails: dict[tuple[int, str, dt.date], ReportEmail] = {}
    connection = None if dry_run else get_connection()
    try:
        for subscription in subscriptions:
            site, user = subscription.site, subscription.user
            period = last_complete_period(subscription.frequency, today or local_today(site, now), site.tz)
            who = f"{subscription.frequency} {site.domain} {period.start}..{period.end} to user {user.pk}"
            reason = _skip_reason(subscription, period)
            if reason:
                summary.skipped += 1
                summary.lines.append(f"skipped {who}: {reason}")
                continue
            key = (site.pk, subscription.frequency, period.end)
            try:
                if key not in emails:
                    emails[key] = build_email(site, subscription.frequency, period)
                message = render_email(emails[key], user)
            except Exception:
                log.exception("report %s could not be built", who)
                summary.failed += 1
                summary.lines.append(f"FAILED {who}: could not build the report")
                continue
            if dry_run:
                summary.sent += 1
                summary.lines.append(f"would send {who} <{user.email}>: {message.subject}")
                continue
            if not _claim(subscription, period, now):
                summary.skipped += 1
                summary.lines.append(f"skipped {who}: already sent (by another run)")
                continue
            try:
                message.connection = connection
                message.send(fail_silently=False)
            except Exception:
                # Logged with the user id, never the address or the report's content.
                log.exception("report %s could not be sent", who)
                _release(subscription, period)
                summary.failed += 1
                summary.lines.append(f"FAILED {who}: could not be sent")
                continue
            summary.sent += 1
            summary.lines.append(f"sent {who}")
    finally:
        if connection is not None:
            try:
                connection.close()
            except Exception:
                log.exception("closing the email connection failed")
    return summary

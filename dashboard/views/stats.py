"""The dashboard of one site (/sites/<id>/), its shared read-only twin (/share/<token>/), the
realtime counter (JSON) and the CSV export (a zip, one CSV per panel).

Every view parses the query string into a DashboardQuery, asks report_data.build_report for the
numbers and shapes them; no SQL here. Query string: period=day|yesterday|7d|30d|month|lastmonth|
6mo|12mo|custom, date=YYYY-MM-DD (anchor) or YYYY-MM-DD,YYYY-MM-DD (custom; or from= and to=, as
the no-JavaScript range form sends them), filters= (selectors' syntax), metric= (the charted
metric), interval=hour|date|month, compare=off. A bad value is a 400 page saying what is wrong.

Access: anyone signed in sees a site they own or are a teammate on; an outsider gets the same
404 as for an unknown id; an anonymous visitor of /sites/<id>/ (and its export) is sent to the
login page, never shown data; the realtime JSON answers an anonymous caller 404.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse, QueryDict
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from dashboard import access, report_data, selectors
from dashboard.charts import Point, bucket_labels, line_chart
from dashboard.models import SharedLink, Site
from dashboard.periods import HOUR_INTERVAL_MAX_DAYS, Period, parse_period
from dashboard.report_data import HEADLINE, METRIC_LABELS, PERCENT, VALUE, Report
from dashboard.selectors import Filter
from security.guards import LimiterUnavailable, check_limit

PERIOD_CHOICES = (  # (query value, label, keyboard shortcut)
    ("day", "Today", "t"),
    ("yesterday", "Yesterday", "y"),
    ("7d", "Last 7 days", "w"),
    ("30d", "Last 30 days", "d"),
    ("month", "This month", "m"),
    ("lastmonth", "Last month", "l"),
    ("6mo", "Last 6 months", "s"),
    ("12mo", "Last 12 months", "a"),
)
PAGE_PERIODS = {key for key, _, _ in PERIOD_CHOICES} | {"custom"}
DEFAULT_PERIOD = "30d"
INTERVAL_LABELS = {"hour": "Hours", "date": "Days", "month": "Months"}
MAX_FILTERS = 10
PROPERTY_TITLES = {
    "event:page": "Page",
    "event:name": "Event",
    "visit:entry_page": "Entry page",
    "visit:exit_page": "Exit page",
    "visit:source": "Source",
    "visit:referrer": "Referrer",
    "visit:utm_source": "UTM source",
    "visit:utm_medium": "UTM medium",
    "visit:utm_campaign": "UTM campaign",
    "visit:device": "Device",
    "visit:browser": "Browser",
    "visit:os": "Operating system",
    "visit:country": "Country",
}
SHARE_SESSION_KEY = "shared_links_unlocked"


# -- the query string -------------------------------------------------------------------------


@dataclass(frozen=True)
class DashboardQuery:
    """The view a URL asks for. `period_key` and `date` are kept as written, for links."""

    period_key: str
    date: str
    period: Period
    filters: tuple[Filter, ...]
    metric: str
    interval: str
    compare: bool
    interval_param: str = ""

    def params(self, **changes: Any) -> dict[str, str]:
        """The query parameters of this view with some changed (defaults left out)."""
        state = {
            "period": self.period_key,
            "date": self.date,
            "filters": filters_text(self.filters),
            "metric": self.metric,
            "interval": self.interval_param,
            "compare": "" if self.compare else "off",
        }
        state.update(changes)
        if state["period"] != self.period_key:  # another period: its own anchor and interval
            state["date"] = changes.get("date", "")
            state["interval"] = changes.get("interval", "")
        if state["metric"] == "visitors":
            state["metric"] = ""
        return {k: v for k, v in state.items() if v}

    def url(self, **changes: Any) -> str:
        return "?" + urlencode(self.params(**changes))


def parse_query(params: QueryDict, site: Site, *, today: dt.date | None = None) -> DashboardQuery:
    """The page's query string -> DashboardQuery, or ValueError with a message for people."""
    tz = site.tz
    today = today or dt.datetime.now(tz).date()
    key = params.get("period", "").strip() or DEFAULT_PERIOD
    if key not in PAGE_PERIODS:
        raise ValueError(f"Unknown period “{key}”. Pick one from the period menu.")
    date = params.get("date", "").strip()
    if key == "custom" and not date and (params.get("from") or params.get("to")):
        date = f"{params.get('from', '').strip()},{params.get('to', '').strip()}"
    if key == "yesterday":
        date = ""
        period = parse_period("day", (today - dt.timedelta(days=1)).isoformat(), tz, today=today)
    elif key == "lastmonth":
        date = ""
        period = parse_period("month", (today.replace(day=1) - dt.timedelta(days=1)).isoformat(), tz, today=today)
    else:
        period = parse_period(key, date or None, tz, today=today)

    filters = tuple(selectors.parse_filters(params.get("filters", "")))
    if len(filters) > MAX_FILTERS:
        raise ValueError(f"At most {MAX_FILTERS} filters at a time.")
    metric = params.get("metric", "").strip() or "visitors"
    if metric not in HEADLINE:
        raise ValueError(f"Unknown metric “{metric}”.")
    compare = params.get("compare", "").strip()
    if compare not in ("", "previous_period", "off"):
        raise ValueError(f"Unknown comparison “{compare}”: use previous_period or off.")
    interval_param = params.get("interval", "").strip()
    interval = period.check_interval(interval_param or None)
    return DashboardQuery(
        period_key=key,
        date=date,
        period=period,
        filters=filters,
        metric=metric,
        interval=interval,
        compare=compare != "off",
        interval_param=interval_param,
    )


def default_query(site: Site) -> DashboardQuery:
    return parse_query(QueryDict(""), site)


# -- filters as text and chips ----------------------------------------------------------------


def filter_text(item: Filter) -> str:
    values = "|".join(item.prop.label(v).replace("|", "\\|") for v in item.values)
    return f"{item.prop.name}{'!=' if item.negate else '=='}{values}"


def filters_text(filters: tuple[Filter, ...] | list[Filter]) -> str:
    return ";".join(filter_text(f) for f in filters)


def filterable(label: str) -> bool:
    """Can this value go into the filter syntax and come back unchanged?"""
    return bool(label) and ";" not in label and label == label.strip() and len(label) <= 2000


def with_filter(filters: tuple[Filter, ...], prop: selectors.Property, label: str) -> tuple[Filter, ...]:
    """The filters plus property == label; a filter already on that property is replaced."""
    kept = tuple(f for f in filters if f.prop.name != prop.name)
    return (*kept, Filter(prop, (prop.raw(label),)))


def chips(query: DashboardQuery) -> list[dict[str, str]]:
    result = []
    for index, item in enumerate(query.filters):
        rest = query.filters[:index] + query.filters[index + 1 :]
        values = [item.prop.label(v) for v in item.values]
        result.append(
            {
                "name": PROPERTY_TITLES[item.prop.name],
                "operator": "is not" if item.negate else "is",
                "value": " or ".join(values),
                "remove_url": query.url(filters=filters_text(rest)),
            }
        )
    return result


# -- numbers for people -----------------------------------------------------------------------


def fmt_int(value: float) -> str:
    return f"{int(value):,}"


def fmt_decimal(value: float) -> str:
    text = f"{value:,.2f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def fmt_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h {minutes}m {secs}s"
    if minutes:
        return f"{minutes}m {secs}s"
    return f"{secs}s"


def fmt_percent(value: float) -> str:
    return f"{fmt_decimal(value)}%"


def fmt_money(cents: float) -> str:
    return f"{int(cents) / 100:,.2f}"


FORMATTERS: dict[str, Callable[[float], str]] = {
    "visitors": fmt_int,
    "visits": fmt_int,
    "pageviews": fmt_int,
    "events": fmt_int,
    "views_per_visit": fmt_decimal,
    "bounce_rate": fmt_percent,
    "visit_duration": fmt_duration,
    PERCENT: fmt_percent,
    report_data.CONVERSION: fmt_percent,
    VALUE: fmt_money,
}


def change_view(metric: report_data.Metric) -> dict[str, Any] | None:
    if metric.change is None:
        return None
    unit = " pp" if metric.key == "bounce_rate" else "%"
    change = metric.change
    direction = "up" if change > 0 else "down" if change < 0 else "flat"
    good = direction != "flat" and (change < 0) == metric.lower_is_better
    arrow = {"up": "↑", "down": "↓", "flat": ""}[direction]
    return {
        "text": f"{arrow}{abs(change)}{unit}",
        "direction": direction,
        "tone": "flat" if direction == "flat" else "up" if good else "down",
        "spoken": f"{direction} {abs(change)}{' percentage points' if unit == ' pp' else ' percent'}",
    }


def flag(code: str) -> str:
    """The flag emoji of a two-letter country code (regional indicator symbols), or ''."""
    if len(code) != 2 or not code.isascii() or not code.isalpha():
        return ""
    return "".join(chr(0x1F1E6 + ord(c) - ord("A")) for c in code.upper())


# -- period navigation ------------------------------------------------------------------------


def _shift_months(day: dt.date, months: int) -> dt.date:
    index = day.year * 12 + day.month - 1 + months
    return dt.date(index // 12, index % 12 + 1, 1)


def period_title(query: DashboardQuery, today: dt.date) -> str:
    period, key = query.period, query.period_key
    if key in ("day", "yesterday"):
        if period.start == today:
            return "Today"
        if period.start == today - dt.timedelta(days=1):
            return "Yesterday"
        return f"{period.start:%a} {period.start.day} {period.start:%b %Y}"
    if key in ("7d", "30d"):
        return f"Last {period.days} days" if period.end == today else f"{period.days} days to {_day(period.end)}"
    if key in ("month", "lastmonth"):
        return f"{period.start:%B %Y}"
    if key in ("6mo", "12mo"):
        months = 6 if key == "6mo" else 12
        if period.start <= today <= period.end:
            return f"Last {months} months"
        return f"{months} months to {period.end:%b %Y}"
    return f"{_day(period.start)} \N{EN DASH} {_day(period.end)}"


def _day(day: dt.date) -> str:
    return f"{day.day} {day:%b %Y}"


def neighbour_urls(query: DashboardQuery, today: dt.date) -> tuple[str, str | None]:
    """(previous period, next period or None when it would be all in the future)."""
    period, key = query.period, query.period_key
    if key in ("day", "yesterday"):
        prev = ("day", (period.start - dt.timedelta(days=1)).isoformat())
        nxt = ("day", (period.start + dt.timedelta(days=1)).isoformat())
    elif key in ("7d", "30d"):
        days = dt.timedelta(days=period.days)
        prev, nxt = (key, (period.end - days).isoformat()), (key, (period.end + days).isoformat())
    elif key in ("month", "lastmonth"):
        prev = ("month", _shift_months(period.start, -1).isoformat())
        nxt = ("month", _shift_months(period.start, 1).isoformat())
    elif key in ("6mo", "12mo"):
        months = 6 if key == "6mo" else 12
        prev = (key, _shift_months(period.start, -1).isoformat())
        nxt = (key, (_shift_months(period.start, 2 * months) - dt.timedelta(days=1)).isoformat())
    else:
        days = dt.timedelta(days=period.days)
        prev = ("custom", f"{(period.start - days).isoformat()},{(period.end - days).isoformat()}")
        nxt = ("custom", f"{(period.start + days).isoformat()},{(period.end + days).isoformat()}")
    next_start = period.end + dt.timedelta(days=1)
    prev_url = query.url(period=prev[0], date=prev[1], interval="")
    next_url = query.url(period=nxt[0], date=nxt[1], interval="") if next_start <= today else None
    return prev_url, next_url


def interval_choices(query: DashboardQuery) -> list[dict[str, Any]]:
    days = query.period.days
    allowed = []
    if days <= min(7, HOUR_INTERVAL_MAX_DAYS):
        allowed.append("hour")
    if 1 < days <= 400:
        allowed.append("date")
    if days >= 28:
        allowed.append("month")
    if len(allowed) < 2:
        return []
    return [
        {"label": INTERVAL_LABELS[i], "url": query.url(interval=i), "current": i == query.interval} for i in allowed
    ]


# -- the page ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    """Where this dashboard lives: the owner's pages or a shared link's."""

    base: str
    export: str
    realtime: str
    shared: bool = False


def _site_links(site: Site) -> Links:
    return Links(
        base=reverse("site_dashboard", args=[site.public_id]),
        export=reverse("site_export", args=[site.public_id]),
        realtime=reverse("site_realtime", args=[site.public_id]),
    )


def _share_links(link: SharedLink) -> Links:
    return Links(
        base=reverse("share_dashboard", args=[link.token]),
        export=reverse("share_export", args=[link.token]),
        realtime=reverse("share_realtime", args=[link.token]),
        shared=True,
    )


def _chart(report: Report, query: DashboardQuery, now: dt.datetime) -> dict[str, Any]:
    metric = query.metric
    fmt = FORMATTERS[metric]
    current_bucket = _bucket_key(now, report.interval)
    points = []
    for index, row in enumerate(report.series):
        tick, label = bucket_labels(row["date"], report.interval)
        future = row["date"] > current_bucket
        prev_row = report.previous_series[index] if index < len(report.previous_series) else None
        points.append(
            Point(
                key=row["date"],
                tick=tick,
                label=label,
                value=None if future else row[metric],
                previous=prev_row[metric] if prev_row else None,
                previous_label=bucket_labels(prev_row["date"], report.interval)[1] if prev_row else "",
            )
        )
    chart = line_chart(points, fmt=fmt, integer=metric not in ("views_per_visit",))
    unit = {"hour": "hour", "date": "day", "month": "month"}[report.interval]
    chart["title"] = f"{METRIC_LABELS[metric]} per {unit}, {_day(report.period.start)} to {_day(report.period.end)}"
    chart["metric_label"] = METRIC_LABELS[metric]
    chart["rows"] = [
        {
            "label": p.label,
            "value": fmt(p.value) if p.value is not None else "\N{EN DASH}",
            "previous": fmt(p.previous) if p.previous is not None else "",
        }
        for p in points
    ]
    return chart


def _bucket_key(now: dt.datetime, interval: str) -> str:
    if interval == "hour":
        return f"{now:%Y-%m-%d %H}:00:00"
    if interval == "month":
        return f"{now:%Y-%m}-01"
    return now.date().isoformat()


def _panels(report: Report, query: DashboardQuery, base: str) -> list[dict[str, Any]]:
    result = []
    for panel in report.panels:
        spec = panel.spec
        prop = spec.property
        columns = [{"key": c, "label": spec.column_label(c)} for c in spec.shown]
        rows = []
        for row in panel.rows:
            link = None
            if filterable(row.label):
                link = base + query.url(filters=filters_text(with_filter(query.filters, prop, row.label)))
            rows.append(
                {
                    "label": row.label,
                    "flag": flag(row.label) if prop.name == "visit:country" else "",
                    "url": link,
                    "bar": row.bar,
                    "cells": [FORMATTERS[c](row.numbers[c]) for c in spec.shown],
                    "external": f"https://{row.label}" if prop.name == "visit:referrer" else "",
                }
            )
        result.append(
            {"key": spec.key, "title": spec.title, "heading": spec.heading, "columns": columns, "rows": rows,
             "more": panel.more}
        )  # fmt: skip
    return result


def render_dashboard(
    request: HttpRequest, site: Site, links: Links, *, can_admin: bool = False, extra: dict | None = None
) -> HttpResponse:
    """The dashboard of `site` for the request's query string (the owner's page or a shared one)."""
    tz = site.tz
    now = dt.datetime.now(tz)
    context: dict[str, Any] = {
        "site": site,
        "links": links,
        "shared": links.shared,
        "can_admin": can_admin and not links.shared,
        "timezone": site.timezone,
        **(extra or {}),
    }
    try:
        query = parse_query(request.GET, site, today=now.date())
        report = report_data.build_report(
            site, query.period, list(query.filters), compare=query.compare, interval=query.interval
        )
    except ValueError as exc:
        query = default_query(site)
        context.update(error=str(exc), query=query, **_picker(query, links, now.date()))
        context["has_data"] = True
        return render(request, "dashboard/stats/dashboard.html", context, status=400)

    context.update(
        query=query,
        report=report,
        has_data=report_data.site_has_data(site),
        metrics=[
            {
                "key": m.key,
                "label": m.label,
                "value": FORMATTERS[m.key](m.value),
                "change": change_view(m) if report.compare else None,
                "url": links.base + query.url(metric=m.key),
                "current": m.key == query.metric,
            }
            for m in report.metrics
        ],
        chart=_chart(report, query, now),
        panels=_panels(report, query, links.base),
        chips=chips(query),
        clear_filters_url=links.base + query.url(filters=""),
        compare_toggle_url=links.base + query.url(compare="" if not query.compare else "off"),
        intervals=interval_choices(query),
        export_url=links.export + query.url(),
        snippet=_snippet(request, site),
        **_picker(query, links, now.date()),
    )
    return render(request, "dashboard/stats/dashboard.html", context)


def _picker(query: DashboardQuery, links: Links, today: dt.date) -> dict[str, Any]:
    prev_url, next_url = neighbour_urls(query, today)
    keep_date = query.period_key == "custom"
    return {
        "period_title": period_title(query, today),
        "period_range": f"{_day(query.period.start)} \N{EN DASH} {_day(query.period.end)}"
        if query.period.days > 1
        else _day(query.period.start),
        "period_choices": [
            {
                "key": key,
                "label": label,
                "shortcut": shortcut,
                "url": links.base + query.url(period=key, date=""),
                "current": key == query.period_key,
            }
            for key, label, shortcut in PERIOD_CHOICES
        ],
        "prev_url": links.base + prev_url,
        "next_url": links.base + next_url if next_url else None,
        "custom_from": query.period.start.isoformat() if keep_date else "",
        "custom_to": query.period.end.isoformat() if keep_date else "",
        "custom_hidden": [(k, v) for k, v in query.params().items() if k in ("filters", "metric", "compare")],
        "today": today.isoformat(),
    }


def _snippet(request: HttpRequest, site: Site) -> str:
    src = request.build_absolute_uri(reverse("script"))
    return f'<script defer src="{src}" data-site="{site.public_id}"></script>'


def _not_found(request: HttpRequest, message: str = "") -> HttpResponse:
    return render(request, "dashboard/stats/not_found.html", {"message": message}, status=404)


def _site_for(request: HttpRequest, public_id: str) -> tuple[Site, str] | None:
    try:
        return access.get_site_or_404(request.user, public_id)
    except Http404:
        return None


@never_cache
@require_GET
def site_dashboard(request: HttpRequest, public_id: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    found = _site_for(request, public_id)
    if found is None:
        return _not_found(request)
    site, role = found
    return render_dashboard(request, site, _site_links(site), can_admin=role in (access.OWNER, access.ADMIN))


@never_cache
@require_GET
def site_realtime(request: HttpRequest, public_id: str) -> HttpResponse:
    found = _site_for(request, public_id)
    if found is None:
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"visitors": selectors.realtime_visitors(found[0])})


@never_cache
@require_GET
def site_export(request: HttpRequest, public_id: str) -> HttpResponse:
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    found = _site_for(request, public_id)
    if found is None:
        return _not_found(request)
    return export_response(request, found[0])


# -- shared links -----------------------------------------------------------------------------


def _active_link(token: str) -> SharedLink | None:
    if not token or len(token) > 64:
        return None
    return SharedLink.objects.select_related("site").filter(token=token, revoked_at__isnull=True).first()


def _unlock_mark(link: SharedLink) -> str:
    """What the session keeps for an unlocked link: changes when the password does."""
    return salted_hmac("shared-link-unlock", f"{link.token}:{link.password_hash}").hexdigest()[:32]


def _unlocked(request: HttpRequest, link: SharedLink) -> bool:
    if not link.has_password:
        return True
    return request.session.get(SHARE_SESSION_KEY, {}).get(link.token) == _unlock_mark(link)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def share_dashboard(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None:
        return _not_found(request, "This shared link does not exist or has been revoked.")
    if request.method == "POST":
        return _share_password(request, link)
    if not _unlocked(request, link):
        return render(request, "dashboard/stats/share_password.html", {"link": link, "site": link.site})
    return render_dashboard(request, link.site, _share_links(link))


def _share_password(request: HttpRequest, link: SharedLink) -> HttpResponse:
    context = {"link": link, "site": link.site}
    if not link.has_password:
        return redirect("share_dashboard", token=link.token)
    try:
        limited = check_limit(request, "share-password", link.token, settings.LOGIN_RATE, fail_open=False)
    except LimiterUnavailable:
        context["error"] = "Password checks are unavailable right now. Try again in a minute."
        return render(request, "dashboard/stats/share_password.html", context, status=503)
    if limited:
        context["error"] = f"Too many attempts. Try again in {limited.retry_after} seconds."
        response = render(request, "dashboard/stats/share_password.html", context, status=429)
        response["Retry-After"] = str(limited.retry_after)
        return response
    if not check_password(request.POST.get("password", ""), link.password_hash):
        context["error"] = "That password is not right."
        return render(request, "dashboard/stats/share_password.html", context, status=403)
    unlocked = dict(request.session.get(SHARE_SESSION_KEY, {}))
    unlocked[link.token] = _unlock_mark(link)
    request.session[SHARE_SESSION_KEY] = unlocked
    request.session.cycle_key()
    return redirect("share_dashboard", token=link.token)


@never_cache
@require_GET
def share_realtime(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None or not _unlocked(request, link):
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"visitors": selectors.realtime_visitors(link.site)})


@never_cache
@require_GET
def share_export(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None:
        return _not_found(request, "This shared link does not exist or has been revoked.")
    if not _unlocked(request, link):
        return redirect("share_dashboard", token=link.token)
    return export_response(request, link.site)


# -- export -----------------------------------------------------------------------------------


def _cell(value: Any) -> Any:
    """A CSV cell that a spreadsheet will not run as a formula (values come from visitors' URLs)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv(header: list[str], rows: list[list[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_cell(v) for v in row])
    return out.getvalue()


def export_files(report: Report) -> dict[str, str]:
    """The CSV files of a report: name -> text. Numbers as the Stats API gives them (seconds,
    percents, cents as a decimal amount)."""
    files = {}
    metric_rows = [[m.key, m.value, m.change if report.compare else ""] for m in report.metrics]
    files["visitors.csv"] = _csv(["metric", "value", "change"], metric_rows)
    header = ["date", *HEADLINE]
    rows = [[row["date"], *(row[m] for m in HEADLINE)] for row in report.series]
    files["timeseries.csv"] = _csv(header, rows)
    for panel in report.panels:
        spec = panel.spec
        header = [spec.property.short, *spec.columns]
        rows = [
            [row.label, *(fmt_money(row.numbers[c]) if c == VALUE else row.numbers[c] for c in spec.columns)]
            for row in panel.rows
        ]
        files[f"{spec.key}.csv"] = _csv(header, rows)
    return files


def export_response(request: HttpRequest, site: Site) -> HttpResponse:
    try:
        query = parse_query(request.GET, site)
        report = report_data.build_report(
            site,
            query.period,
            list(query.filters),
            compare=query.compare,
            interval=query.interval,
            limit=report_data.EXPORT_LIMIT,
        )
    except ValueError as exc:
        return render(
            request,
            "dashboard/stats/not_found.html",
            {"message": f"Cannot export this view: {exc}", "title": "Bad request"},
            status=400,
        )
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in export_files(report).items():
            archive.writestr(name, text)
    filename = f"{site.domain}_{query.period.start.isoformat()}_{query.period.end.isoformat()}.zip"
    response = HttpResponse(buffer.getvalue(), content_type="application/zip")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response

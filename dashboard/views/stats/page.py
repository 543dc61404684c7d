"""The dashboard page: its context (headline metrics, chart, panels, period picker) for the
owner's page and the shared one, and the owner's views (site_dashboard, site_realtime, site_export)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from dashboard import access, report_data, selectors
from dashboard.charts import Point, bucket_labels, line_chart
from dashboard.formatting import FORMATTERS, change_view, flag, fmt_day
from dashboard.report_data import METRIC_LABELS, Report
from dashboard.selectors import periods
from dashboard.views.stats.export import export_response
from dashboard.views.stats.query import (
    PERIOD_CHOICES,
    DashboardQuery,
    chips,
    default_query,
    filterable,
    filters_text,
    interval_choices,
    neighbour_urls,
    parse_query,
    period_title,
    problem,
    with_filter,
)
from sites.models import Site


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
    chart["title"] = (
        f"{METRIC_LABELS[metric]} per {unit}, {fmt_day(report.period.start)} to {fmt_day(report.period.end)}"
    )
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
    now = periods.local_now(site.tz)
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
            site, query.period, list(query.filters), compare=query.compare, interval=query.interval, now=now
        )
    except (ValueError, SuspiciousOperation) as exc:
        query = default_query(site)
        context.update(error=problem(exc), query=query, **_picker(query, links, now.date()))
        context["has_data"] = True
        return render(request, "dashboard/stats/dashboard.html", context, status=400)

    context.update(
        query=query,
        report=report,
        has_data=selectors.has_data(site),
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
        "period_range": f"{fmt_day(query.period.start)} \N{EN DASH} {fmt_day(query.period.end)}"
        if query.period.days > 1
        else fmt_day(query.period.start),
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


def not_found(request: HttpRequest, message: str = "") -> HttpResponse:
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
        return not_found(request)
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
        return not_found(request)
    return export_response(request, found[0])

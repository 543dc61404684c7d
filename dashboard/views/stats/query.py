"""The dashboard's query string (DashboardQuery, parse_query), filters as text and chips, and
period navigation (titles, previous/next links, interval choices)."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from django.core.exceptions import SuspiciousOperation
from django.http import QueryDict

from dashboard import selectors
from dashboard.formatting import fmt_day
from dashboard.report_data import HEADLINE
from dashboard.selectors import MAX_VALUE_CHARS, Filter, periods
from dashboard.selectors.periods import HOUR_INTERVAL_MAX_DAYS, InvalidParameter, Period, month_start, parse_period
from sites.models import Site

log = logging.getLogger(__name__)

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
    """The page's query string -> DashboardQuery, or InvalidParameter with a message for people.
    (Filters: at most selectors.MAX_FILTERS, as the Stats API.)"""
    tz = site.tz
    today = today or periods.local_now(tz).date()
    key = params.get("period", "").strip() or DEFAULT_PERIOD
    if key not in PAGE_PERIODS:
        raise InvalidParameter(f"Unknown period {_shown(key)}. Pick one from the period menu.")
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
    metric = params.get("metric", "").strip() or "visitors"
    if metric not in HEADLINE:
        raise InvalidParameter(f"Unknown metric {_shown(metric)}.")
    compare = params.get("compare", "").strip()
    if compare not in ("", "previous_period", "off"):
        raise InvalidParameter(f"Unknown comparison {_shown(compare)}: use previous_period or off.")
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


def _shown(value: str) -> str:
    """A value in “quotes” for a person: as typed, unless it holds characters that do not print
    (then escaped, as the API shows them), and cut short."""
    text = value[: periods.QUOTE_CHARS]
    if not text.isprintable():
        text = repr(text)[1:-1]
    if len(value) > periods.QUOTE_CHARS:
        text += "\N{HORIZONTAL ELLIPSIS}"
    return f"\N{LEFT DOUBLE QUOTATION MARK}{text}\N{RIGHT DOUBLE QUOTATION MARK}"


def default_query(site: Site) -> DashboardQuery:
    return parse_query(QueryDict(""), site)


def problem(exc: Exception) -> str:
    """What to tell a person whose query string failed (parse_query, build_report): the message of
    an InvalidParameter; for anything else (Django refusing the query string, or a check failing
    in a way nobody planned) a plain sentence, never Python's words."""
    if isinstance(exc, InvalidParameter):
        return str(exc)
    if isinstance(exc, SuspiciousOperation):  # more parameters than Django parses, ...
        return "This address has too many or malformed parameters."
    log.exception("dashboard: a parameter check failed unexpectedly")
    return "These parameters cannot be shown."


# -- filters as text and chips ----------------------------------------------------------------


def filter_text(item: Filter) -> str:
    values = "|".join(item.prop.label(v).replace("|", "\\|") for v in item.values)
    return f"{item.prop.name}{'!=' if item.negate else '=='}{values}"


def filters_text(filters: tuple[Filter, ...] | list[Filter]) -> str:
    return ";".join(filter_text(f) for f in filters)


def filterable(label: str) -> bool:
    """Can this value go into the filter syntax and come back unchanged?"""
    return bool(label) and ";" not in label and label == label.strip() and len(label) <= MAX_VALUE_CHARS


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


# -- period navigation ------------------------------------------------------------------------


def period_title(query: DashboardQuery, today: dt.date) -> str:
    period, key = query.period, query.period_key
    if key in ("day", "yesterday"):
        if period.start == today:
            return "Today"
        if period.start == today - dt.timedelta(days=1):
            return "Yesterday"
        return f"{period.start:%a} {period.start.day} {period.start:%b %Y}"
    if key in ("7d", "30d"):
        return f"Last {period.days} days" if period.end == today else f"{period.days} days to {fmt_day(period.end)}"
    if key in ("month", "lastmonth"):
        return f"{period.start:%B %Y}"
    if key in ("6mo", "12mo"):
        months = 6 if key == "6mo" else 12
        if period.start <= today <= period.end:
            return f"Last {months} months"
        return f"{months} months to {period.end:%b %Y}"
    return f"{fmt_day(period.start)} \N{EN DASH} {fmt_day(period.end)}"


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
        prev = ("month", month_start(period.start, -1).isoformat())
        nxt = ("month", month_start(period.start, 1).isoformat())
    elif key in ("6mo", "12mo"):
        months = 6 if key == "6mo" else 12
        prev = (key, month_start(period.start, -1).isoformat())
        nxt = (key, (month_start(period.start, 2 * months) - dt.timedelta(days=1)).isoformat())
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

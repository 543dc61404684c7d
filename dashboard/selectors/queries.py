"""The public stats reads: aggregate, aggregate_compared, timeseries, breakdown,
realtime_visitors and has_data. They check what the caller asks for, ask the backend
(backends.get_backend) for sums and turn them into metrics; the counting rules are the same
whichever backend answers, and the same as the collector's (see collector/ingest.py):

- Unique visitors over a range are the **sum of daily unique visitors**. Visitor ids come
  from a salt that changes every day, so the same person on two days has two unrelated ids:
  a distinct count over several days would only look more precise. Per hour (hourly
  timeseries) it is the unique visitors of that hour.
- Visits, bounces and visit durations count on the local day and hour the visit started;
  pageviews and custom events at their own time.
- `events` counts custom events (not pageviews, not engagement reports).
  *Departure from Plausible*, whose `events` also counts pageviews.
- `value` (event:name breakdowns, internal to the dashboard) sums the custom events' values in
  cents.
- bounce_rate, visit_duration and views_per_visit derive from the sums (selectors.arithmetic).

Comparisons (aggregate_compared) are with the previous period of the same number of days. A
period still in progress (it holds the site's current local time) compares only its elapsed
part, up to the end of the current local hour, with the same part of the previous period: today
until 09:59 against yesterday until 09:59 (periods.compared_periods). Backends honour such a
cutoff (Period.cutoff) in totals and timeseries; breakdowns always read whole days (the
breakdown rollups are per day / month).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.utils import timezone

from dashboard.selectors.arithmetic import Totals, change
from dashboard.selectors.backends import get_backend
from dashboard.selectors.filters import as_filters
from dashboard.selectors.periods import Period, compared_periods
from dashboard.selectors.properties import Property, check_metrics, check_property
from sites.models import Site

REALTIME_WINDOW = dt.timedelta(minutes=5)


def aggregate(
    site: Site, period: Period, metrics: Iterable[str] | str | None = None, filters: Any = None
) -> dict[str, int | float]:
    """Totals of the period: {"visitors": 4, "bounce_rate": 40, "views_per_visit": 1.4, ...}
    in the order the metrics were asked for. Raises ValueError on an unknown metric or filter."""
    metrics = check_metrics(metrics)
    filters = as_filters(filters)
    return get_backend().totals(site, period, metrics, filters).metrics(metrics)


def aggregate_compared(
    site: Site,
    period: Period,
    metrics: Iterable[str] | str | None = None,
    filters: Any = None,
    *,
    now: dt.datetime | None = None,
) -> dict[str, dict[str, int | float | None]]:
    """{"visitors": {"value": 4, "change": 100}, ...}: against the previous period of equal
    length; a period in progress at `now` (default: the site's current time) compares only its
    elapsed part with the same part of the previous one (periods.compared_periods)."""
    metrics = check_metrics(metrics)
    filters = as_filters(filters)
    current_period, previous_period = compared_periods(period, now)
    backend = get_backend()
    current = backend.totals(site, current_period, metrics, filters)
    previous = backend.totals(site, previous_period, metrics, filters)
    return {
        name: {"value": current.metric(name), "change": change(name, previous.metric(name), current.metric(name))}
        for name in metrics
    }


def timeseries(
    site: Site,
    period: Period,
    metrics: Iterable[str] | str | None = None,
    filters: Any = None,
    interval: str | None = None,
) -> list[dict[str, Any]]:
    """One row per bucket of the period, every bucket present (zeros where nothing happened):
    [{"date": "2026-11-20", "visitors": 4, ...}, ...]. The date is "YYYY-MM-DD HH:00:00"
    (local wall-clock hour) for interval hour, "YYYY-MM-DD" for date, "YYYY-MM-01" for month.
    With interval hour, visitors are unique per hour; otherwise the sum of daily uniques."""
    metrics = check_metrics(metrics)
    filters = as_filters(filters)
    interval = period.check_interval(interval)
    backend = get_backend()

    if interval == "hour":
        hourly = backend.hourly(site, period, metrics, filters)
        return [
            {"date": f"{day.isoformat()} {hour:02d}:00:00", **hourly.get((day, hour), Totals()).metrics(metrics)}
            for day, hour in period.hours()
        ]

    daily = backend.daily(site, period, metrics, filters)
    if interval == "date":
        return [{"date": day.isoformat(), **daily.get(day, Totals()).metrics(metrics)} for day in period.dates()]
    months: dict[dt.date, Totals] = {}
    for day in period.dates():
        months.setdefault(day.replace(day=1), Totals()).add(daily.get(day, Totals()))
    return [{"date": month.isoformat(), **totals.metrics(metrics)} for month, totals in months.items()]


def breakdown(
    site: Site,
    period: Period,
    property: str | Property,
    metrics: Iterable[str] | str | None = None,
    filters: Any = None,
    limit: int = 100,
    page: int = 1,
) -> list[dict[str, Any]]:
    """The period's numbers per value of a property, by visitors (most first) then value (exit
    pages asked for `visits` alone: by visits, i.e. exits, from the rollup when unfiltered):
    [{"page": "/", "visitors": 4, ...}, ...], keyed by the property's short name (page, name,
    entry_page, exit_page, source, referrer, utm_source, utm_medium, utm_campaign, device,
    browser, os, country). `page` is 1-based, `limit` rows a page. Empty values read
    "Direct / None" (source) or "(not set)" (browser, os, device, country); empty referrers
    and UTM values are left out. event:page's bounce_rate and visit_duration are those of the
    visits that entered on the page (as Plausible); event:name answers visitors, visits, events,
    and `value` (VALUE: the events' values summed, in cents; for the dashboard, not the Stats API).
    """
    prop, metrics, order, offset = _breakdown_ask(property, metrics, limit, page)
    filters = as_filters(filters)
    period = period.whole  # the breakdown rollups are per day: a breakdown always reads whole days
    backend = get_backend()
    rows = backend.breakdown(site, period, prop, metrics, filters, order=order, offset=offset, limit=limit)
    entered = prop.name == "event:page" and bool({"bounce_rate", "visit_duration"} & set(metrics))
    entries = backend.entries(site, period, filters, [row.value for row in rows]) if entered and rows else {}

    result = []
    for row in rows:
        numbers = row.totals.metrics(metrics)
        if entered:
            entry = entries.get(row.value) or Totals()
            for name in ("bounce_rate", "visit_duration"):
                if name in numbers:
                    numbers[name] = entry.metric(name)
        result.append({prop.short: prop.label(row.value), **numbers})
    return result


def _breakdown_ask(
    property: str | Property, metrics: Iterable[str] | str | None, limit: int, page: int
) -> tuple[Property, tuple[str, ...], str, int]:
    """breakdown()'s arguments checked: (property, metrics, the sum it sorts by, offset)."""
    prop = property if isinstance(property, Property) else check_property(property)
    metrics = check_metrics(metrics, prop, internal=True)
    if limit < 1 or page < 1:
        raise ValueError("limit and page must be positive")
    # Exit pages asked for exits (visits) only: sorted by them (the rollup keeps nothing else).
    order = "visits" if prop.name == "visit:exit_page" and metrics == ("visits",) else "visitors"
    return prop, metrics, order, (page - 1) * limit


def prefetch(
    site: Site,
    period: Period,
    filters: Any = None,
    *,
    breakdowns: Iterable[tuple[str | Property, Iterable[str], int]] = (),
    series: Iterable[tuple[Period, str]] = (),
) -> None:
    """Tell the backend which reads the current view (one_view) makes next: `breakdowns`
    ((property, metrics, limit) each, first page; one per property) of `period`, and `series`
    ((period, interval) each: a timeseries; totals read the daily series of their period). A
    backend that can read them all at once does (ClickHouse: one statement instead of one
    each); the others, and calls outside a view, ignore it."""
    backend_prefetch = getattr(get_backend(), "prefetch", None)
    if backend_prefetch is None:
        return
    checked = []
    for prop, metrics, limit in breakdowns:
        prop, _, order, offset = _breakdown_ask(prop, metrics, limit, 1)
        checked.append((prop, order, offset, limit))
    wanted = [(part, part.check_interval(interval) == "hour") for part, interval in series]
    backend_prefetch(site, period.whole, as_filters(filters), checked, wanted)


def realtime_visitors(site: Site, now: dt.datetime | None = None) -> int:
    """Distinct visitors with any hit (engagement reports included) in the last 5 minutes."""
    now = now or timezone.now()
    return get_backend().realtime_visitors(site, now - REALTIME_WINDOW, now)


def has_data(site: Site) -> bool:
    """Has this site ever recorded a hit? (For the page's "waiting for the first hit".)"""
    return get_backend().has_data(site)

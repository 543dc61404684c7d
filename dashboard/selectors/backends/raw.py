"""The Django database's raw rows, Event and Visit: filtered queries, the exit-page breakdown
beyond exits, and the realtime count (see backends/database.py). Visitors are unique per bucket
(a local day; an hour in an hourly series); `value` sums Event.value; the UTC bounds of a period
end at its cutoff.

Events carry their visit's attributes (collector.models.Event, Property.event_column): event
numbers and event breakdowns apply every filter to the event row itself, with no per-event
lookup of the visit, except an exit-page filter (the exit page is not known when an event is
written: that filter looks each event's visit up). Visit numbers come from Visit rows, visit
filters on Visit's own columns, event filters as one `visit_key IN (...)` semi-join.

Measured at 1M events (docs/benchmarks.md section 5), a filtered 30-day page went from ~5-8 s to
about a second: range reads (FORCE INDEX, _force_index), statements answered from an index (the
covering (site, ts, name, visitor_id, visit_key, visit_source) index; visit attributes checked in
(site, started, ...) before a row is read), a page filter reading that page's entries of
(site, path prefix, ts), and the page's repeated statements read once (base.one_view).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Sequence
from typing import Any

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
)
from django.db.models.expressions import Expression
from django.db.models.functions import Collate, Floor
from django.db.models.sql.datastructures import BaseTable

from collector.models import Event, Visit
from collector.payload import ENGAGEMENT
from dashboard.selectors.arithmetic import Totals
from dashboard.selectors.backends.base import BreakdownRow, view_memo
from dashboard.selectors.filters import Filter
from dashboard.selectors.periods import Period, local_midnight
from dashboard.selectors.properties import VISIT_METRICS, Property
from sites.models import Site

PAGEVIEW = "pageview"
# The indexes a filtered read goes through (collector/migrations/0007_filtered_view_indexes.py).
EVENT_INDEX = "event_site_ts_cover"  # (site, ts, name, visitor_id, visit_key, visit_source)
EVENT_PATH_INDEX = "event_site_path_ts"  # (site, path prefix, ts): with a page filter
VISIT_INDEX = "visit_site_started_attrs"  # (site, started, referrer_source, country, device, browser, os)
VISIT_KEY_INDEX = "visit_site_key"  # (site, visit_key), unique


def totals(site: Site, period: Period, metrics: Sequence[str], filters: list[Filter]) -> Totals:
    result = Totals()
    for bucket in _raw_buckets(site, period, filters, _day_boundaries(period), metrics):
        result.add(bucket)
    return result


def hourly(
    site: Site, period: Period, metrics: Sequence[str], filters: list[Filter]
) -> dict[tuple[dt.date, int], Totals]:
    buckets = _raw_buckets(site, period, filters, _hour_boundaries(period), metrics)
    return dict(zip(period.hours(), buckets, strict=True))


def daily(site: Site, period: Period, metrics: Sequence[str], filters: list[Filter]) -> dict[dt.date, Totals]:
    return dict(zip(period.dates(), _raw_buckets(site, period, filters, _day_boundaries(period), metrics), strict=True))


def breakdown(site: Site, period: Period, prop: Property, filters: list[Filter]) -> list[BreakdownRow]:
    """Every value's totals from raw rows, grouped per local day first (visitors are daily
    uniques), in no order; values without visitors left out."""
    by_value: dict[str, BreakdownRow] = {}
    if prop.is_visit:
        visits = _matching_visits(site, period, filters)
        if not prop.keep_empty:
            visits = visits.exclude(**{prop.column: ""})
        rows = (
            visits.annotate(group=_binary(prop.column))
            .values("day", "group")
            .annotate(visitors=Count("visitor_id", distinct=True), **_VISIT_AGGREGATES)
        )
    else:
        events = _matching_events(site, period, filters)
        if prop.name == "event:page":
            events = events.filter(name=PAGEVIEW)
            counts: dict[str, Any] = {"pageviews": Count("id")}
        else:
            events = events.exclude(name=PAGEVIEW)
            counts = {"events": Count("id"), "value_cents": Sum("value")}
        rows = (
            events.annotate(day=_bucket("ts", _day_boundaries(period)), group=_binary(prop.column))
            .values("day", "group")
            .annotate(visitors=Count("visitor_id", distinct=True), visits=Count("visit_key", distinct=True), **counts)
        )
    for row in rows:
        row.pop("day")
        value = row.pop("group")
        by_value.setdefault(value, BreakdownRow(value=value)).totals.add(_visit_row(row) if prop.is_visit else row)
    return [row for row in by_value.values() if row.totals.visitors > 0]


def entries(site: Site, period: Period, filters: list[Filter], pages: Sequence[str]) -> dict[str, Totals]:
    """Visits, bounces and duration of the matching visits that entered on each of these pages."""
    found: dict[str, Totals] = defaultdict(Totals)
    rows = (
        _matching_visits(site, period, filters)
        .filter(entry_path__in=pages)
        .annotate(group=_binary("entry_path"))
        .values("group")
        .annotate(**{k: v for k, v in _VISIT_AGGREGATES.items() if k in ("visits", "bounces", "duration")})
    )
    for row in rows:
        found[row.pop("group")].add(row)
    return found


def realtime_visitors(site: Site, since: dt.datetime, until: dt.datetime) -> int:
    """Distinct visitors with any hit (engagement reports included) in [since, until]."""
    events = _force_index(Event.objects.filter(site=site, ts__gte=since, ts__lte=until), EVENT_INDEX)
    return events.aggregate(n=Count("visitor_id", distinct=True))["n"] or 0


# -- SQL helpers ------------------------------------------------------------------------------


def _binary(column: str) -> Any:
    """The column compared byte for byte: MySQL's default collation folds case, the rollups do not."""
    collation = {"mysql": "utf8mb4_bin", "sqlite": "BINARY", "postgresql": "C"}.get(connection.vendor)
    return Collate(F(column), collation) if collation else F(column)


def _bucket(column: str, boundaries: Sequence[dt.datetime]) -> Expression:
    """Index i of the bucket [boundaries[i], boundaries[i+1]) holding the column's time.

    A balanced tree of CASEs: log2(buckets) comparisons a row, and it works for any time zone
    (half-hour offsets, DST days of 23 or 25 hours) without time zone tables in the database.
    Rows outside [boundaries[0], boundaries[-1]) must be filtered out by the caller.
    """

    def build(lo: int, hi: int) -> Expression:
        if hi - lo == 1:
            return Value(lo)
        mid = (lo + hi) // 2
        return Case(
            When(**{f"{column}__lt": boundaries[mid]}, then=build(lo, mid)),
            default=build(mid, hi),
            output_field=IntegerField(),
        )

    return build(0, len(boundaries) - 1)


class _HintedTable(BaseTable):
    """The query's main table with MySQL's FORCE INDEX hint (Django has no index hints)."""

    def __init__(self, table_name: str, alias: str, indexes: tuple[str, ...]) -> None:
        super().__init__(table_name, alias)
        self.indexes = indexes

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list]:
        sql, params = super().as_sql(compiler, connection)
        return f"{sql} FORCE INDEX ({', '.join(map(connection.ops.quote_name, self.indexes))})", params

    def relabeled_clone(self, change_map: dict[str, str]) -> _HintedTable:  # as a subquery
        return self.__class__(self.table_name, change_map.get(self.table_alias, self.table_alias), self.indexes)

    @property
    def identity(self) -> tuple:
        return (*super().identity, self.indexes)


def _force_index(rows: QuerySet, *indexes: str) -> QuerySet:
    """Rows read through this index (site_id, time or path, ...): a range on both columns.

    MariaDB 10.11 otherwise reads the (site_id, ts) and (site_id, started) indexes by `ref` on
    their site part alone, every entry the site ever stored, and checks the time by index
    condition pushdown (its cost model caps the cost of `ref`): measured at 1M events, 0.59 s
    as planned against 0.24 s with the hint for one 30-day statement, and the gap grows with
    the site's history. SQLite plans the range by itself."""
    if connection.vendor != "mysql":
        return rows
    rows = rows.all()  # a clone: its alias_map is its own
    alias = rows.query.get_initial_alias()
    rows.query.alias_map[alias] = _HintedTable(rows.query.alias_map[alias].table_name, alias, indexes)
    return rows


def _apply(item: Filter, rows: QuerySet, column: str) -> QuerySet:
    """The rows whose `column` matches this filter, values compared exactly (case too, on MySQL
    as well)."""
    exact = f"{column}_exact"
    rows = rows.alias(**{exact: _binary(column)})
    if item.negate:
        return rows.exclude(**{f"{exact}__in": item.values})
    # The plain comparison as well lets MySQL use an index holding the column (event names).
    return rows.filter(**{f"{column}__in": item.values, f"{exact}__in": item.values})


# Whole seconds of each visit, truncated per visit as the collector does (int(total_seconds())).
_VISIT_SECONDS = Floor(
    ExpressionWrapper(F("last_seen") - F("started"), output_field=BigIntegerField()) / Value(1_000_000)
)
_VISIT_AGGREGATES = {
    "visits": Count("id"),
    "bounces": Count("id", filter=Q(pageviews__lte=1, interactive=False)),
    "duration": Sum(_VISIT_SECONDS, output_field=BigIntegerField()),
    # Named apart from Visit's own fields (an annotation may not shadow a field).
    "visit_pageviews": Sum("pageviews"),
    "visit_events": Sum("events"),
}


def _visit_row(row: dict[str, Any]) -> dict[str, Any]:
    row["pageviews"] = row.pop("visit_pageviews", 0)
    row["events"] = row.pop("visit_events", 0)
    return row


def _event_filters(filters: list[Filter]) -> list[Filter]:
    return [f for f in filters if not f.prop.is_visit]


def _visit_filters(filters: list[Filter]) -> list[Filter]:
    return [f for f in filters if f.prop.is_visit]


def _matching_events(site: Site, period: Period, filters: list[Filter]) -> QuerySet:
    """Pageviews and custom events of the period matching every filter.

    A visit filter reads the visit's attributes the event carries (Property.event_column), with
    no lookup of the visit: they are the visit's whenever it started (before the period too).
    The exit page alone is not on the event (it is not known when the event is written): an
    exit-page filter looks each event's visit up (site, visit_key)."""
    start, end = period.utc_bounds()
    events = Event.objects.filter(site=site, ts__gte=start, ts__lt=end).exclude(name=ENGAGEMENT)
    lookups = [item for item in filters if item.prop.event_column is None]
    for item in filters:
        if item.prop.event_column is not None:
            events = _apply(item, events, item.prop.event_column)
    if lookups:
        visits = Visit.objects.filter(site_id=OuterRef("site_id"), visit_key=OuterRef("visit_key"))
        for item in lookups:
            visits = _apply(item, visits, item.prop.column)
        events = events.filter(Exists(visits))
    # A page filter (==) reads that page's entries of (site, path, ts); any other the period's.
    by_path = any(item.prop.event_column == "path" and not item.negate for item in filters)
    return _force_index(events.order_by(), EVENT_PATH_INDEX if by_path else EVENT_INDEX)


def _matching_visits(site: Site, period: Period, filters: list[Filter]) -> QuerySet:
    """Visits started in the period matching the visit filters (on Visit's own columns), with a
    matching event in the period if any event filter (one semi-join: visit_key IN (...))."""
    start, end = period.utc_bounds()
    visits = Visit.objects.filter(site=site, started__gte=start, started__lt=end)
    for item in _visit_filters(filters):
        visits = _apply(item, visits, item.prop.column)
    if _event_filters(filters):
        events = _matching_events(site, period, _event_filters(filters))
        visits = visits.filter(visit_key__in=events.values("visit_key"))
        # Or by visit key, from the matching events' (fewer than the period's visits, often).
        return _force_index(visits.order_by(), VISIT_INDEX, VISIT_KEY_INDEX)
    return _force_index(visits.order_by(), VISIT_INDEX)


def _needs_events(metrics: Iterable[str]) -> bool:
    return bool({"visitors", "pageviews", "events", "views_per_visit"} & set(metrics))


def _needs_visits(metrics: Iterable[str]) -> bool:
    return bool(set(VISIT_METRICS) & set(metrics))


def _raw_buckets(
    site: Site, period: Period, filters: list[Filter], boundaries: list[dt.datetime], metrics: Sequence[str]
) -> list[Totals]:
    """Totals per bucket of raw rows (visitors unique per bucket)."""
    buckets = [Totals() for _ in range(len(boundaries) - 1)]
    if _needs_events(metrics):
        rows = (
            _matching_events(site, period, filters)
            .annotate(bucket=_bucket("ts", boundaries))
            .values("bucket")
            .annotate(
                visitors=Count("visitor_id", distinct=True),
                pageviews=Count("id", filter=Q(name=PAGEVIEW)),
                events=Count("id", filter=~Q(name=PAGEVIEW)),
            )
        )
        for row in _fetch(rows):
            buckets[row["bucket"]].add(row)
    if _needs_visits(metrics):
        rows = (
            _matching_visits(site, period, filters)
            .annotate(bucket=_bucket("started", boundaries))
            .values("bucket")
            .annotate(**{k: v for k, v in _VISIT_AGGREGATES.items() if k in ("visits", "bounces", "duration")})
        )
        for row in _fetch(rows):
            buckets[row["bucket"]].add(row)
    return buckets


def _fetch(rows: QuerySet) -> list[dict[str, Any]]:
    """The rows of this statement, read once per view (base.one_view): a dashboard page's
    headline and chart ask for the same daily buckets of a period. Key: the SQL and its
    parameters, so only the very same statement is shared."""
    memo = view_memo()
    if memo is None:
        return list(rows)
    sql, params = rows.query.sql_with_params()
    key = ("raw", sql, tuple(params))
    if key not in memo:
        memo[key] = list(rows)
    return memo[key]


def _day_boundaries(period: Period) -> list[dt.datetime]:
    days = [*period.dates(), period.end + dt.timedelta(days=1)]
    return [local_midnight(day, period.tz) for day in days]


def _hour_boundaries(period: Period) -> list[dt.datetime]:
    """Start of each local wall-clock hour of the period (a skipped hour is an empty bucket, a
    repeated one a two-hour bucket, as in HourlyTotal), then the end of the period."""
    starts = [
        dt.datetime(day.year, day.month, day.day, hour, tzinfo=period.tz).astimezone(dt.UTC)
        for day, hour in period.hours()
    ]
    return [*starts, local_midnight(period.end + dt.timedelta(days=1), period.tz)]

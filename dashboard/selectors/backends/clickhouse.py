"""ClickHouse as a stats backend (ANALYTICS_URL `clickhouse://…` or `chdb:///path`): every
answer from the raw tables `events` and `sessions` (analytics/migrations_clickhouse), filtered
or not, one statement per method call. No rollups: a column store scans a period's events
faster than the Django database reads its rollups' covering indexes.

The counting rules are those of the Django database's backend (backends/raw.py and rollups.py,
selectors/queries.py), statement by statement:

- **Events** (pageviews, custom events; never engagement reports) of a period: `events` rows
  with ts in Period.utc_bounds() (its cutoff included). Visitors are unique per local day
  (`toDate(ts, tz)`, the site's zone) and summed; per local wall-clock hour (`toHour(ts, tz)`)
  in an hourly series: a repeated DST hour is one two-hour bucket, a skipped one empty, as in
  HourlyTotal. A breakdown's visitors (visits) are the distinct (local day, visitor_id)
  ((local day, visit_key)) pairs of its rows: the same as daily uniques summed.
- **Visits** (visits, bounces, duration, and the visit-level breakdowns) count at the local
  time they started: `sessions` rows with `started` in the bounds. `sessions` is a
  VersionedCollapsingMergeTree: a changed visit is a cancel row (sign -1, the old state
  exactly) plus a state row (sign +1). Every number here is a sum of `sign * x` over rows that
  pass a condition on the row's own columns (period, filters), so each cancel row and the
  state row it cancels either both count or both do not: whatever is merged or not yet, a
  visit adds exactly the x of its current state (0 or 1 times), never an old one. A distinct
  count of visitors groups the rows per (value, local day, visitor) first and counts the
  groups whose signs sum above 0.
- **Filters** are applied on `events` (the visit's attributes are copied on each event:
  Property.event_column), except visit:exit_page, which changes as the visit goes on: events
  of visits whose current exit page matches (a semi-join on `sessions`, by sign as above).
  Visit metrics under filters are those of the matching visits: visit filters on `sessions`'
  own columns (Property.column), event filters as `visit_key IN (events matching them)`.
- Client values reach ClickHouse only as server-side query parameters (`{name:Type}`), never
  in the SQL text.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from collector.payload import ENGAGEMENT
from dashboard.selectors.arithmetic import Totals
from dashboard.selectors.backends.base import BreakdownRow, view_memo
from dashboard.selectors.filters import Filter
from dashboard.selectors.periods import Period
from dashboard.selectors.properties import VISIT_METRICS, Property
from sites.models import Site

PAGEVIEW = "pageview"
EXIT_PAGE = "visit:exit_page"
EVENT_METRICS = ("visitors", "pageviews", "events", "views_per_visit")
# One visit's whole seconds, truncated per visit as the collector does (int(total_seconds())).
_DURATION = "intDiv(toUnixTimestamp64Milli(last_seen) - toUnixTimestamp64Milli(started), 1000)"
_BOUNCE = "(pageviews <= 1 AND interactive = 0)"
# The visit sums, by sign (see the module docstring); each one Int64 so that UNION ALL branches agree.
_VISIT_SUMS = {
    "visits": "sum(sign)",
    "bounces": f"sum(sign * {_BOUNCE})",
    "duration": f"sum(sign * {_DURATION})",
    "pageviews": "sum(sign * pageviews)",
    "events": "sum(sign * events)",
}


def _client() -> Any:
    from analytics import store  # at call time: the store module reads settings, tests switch them

    return store.client()


class _Params:
    """Server-side parameters of one statement: `add(value, type)` -> `{pN:Type}` for the SQL text."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}

    def add(self, value: Any, type_: str) -> str:
        name = f"p{len(self.values)}"
        self.values[name] = value
        return f"{{{name}:{type_}}}"


class _Query:
    """The parts every statement of one call shares: site, zone, period bounds and filters."""

    def __init__(self, site: Site, period: Period, filters: Sequence[Filter]) -> None:
        self.params = _Params()
        self.site = self.params.add(site.pk, "UInt64")
        self.tz = self.params.add(str(period.tz.key), "String")
        start, end = period.utc_bounds()
        self.start = self.params.add(start, "DateTime64(6, 'UTC')")
        self.end = self.params.add(end, "DateTime64(6, 'UTC')")
        self.engagement = self.params.add(ENGAGEMENT, "String")
        self.pageview = self.params.add(PAGEVIEW, "String")
        self.filters = list(filters)

    def run(self, sql: str) -> list[tuple]:
        """The statement's rows, read once per view (base.one_view): a dashboard page's headline
        totals and its chart ask for the same daily rows of a period (the same SQL and parameters)."""
        memo = view_memo()
        key = ("clickhouse", sql, repr(sorted(self.params.values.items())))
        if memo is not None and key in memo:
            return memo[key]
        rows = _client().query(sql, parameters=self.params.values).result_rows
        if memo is not None:
            memo[key] = rows
        return rows

    def _condition(self, column: str, item: Filter) -> str:
        values = self.params.add(list(item.values), "Array(String)")
        return f"{column} {'NOT IN' if item.negate else 'IN'} {values}"

    def events_where(self, *, visit_filters: bool = True) -> str:
        """Pageviews and custom events of the period matching the event filters and (unless
        told not to) the visit filters: raw._matching_events on the flat `events` table."""
        where = [
            f"site_id = {self.site}",
            f"ts >= {self.start}",
            f"ts < {self.end}",
            f"name != {self.engagement}",
        ]
        for item in self.filters:
            if item.prop.is_visit and not visit_filters:
                continue
            if item.prop.name == EXIT_PAGE:
                where.append(f"visit_key IN ({self._exit_visits(item)})")
            else:
                where.append(self._condition(item.prop.event_column, item))
        return " AND ".join(where)

    def _exit_visits(self, item: Filter) -> str:
        """visit_keys of the visits that may have events in the period and whose current exit
        page matches the filter. A visit with an event at ts started at or before ts and was
        last seen at or after it; the row conditions keep the sign sum exact (module docstring)."""
        return (
            f"SELECT visit_key FROM sessions WHERE site_id = {self.site} AND started < {self.end}"
            f" AND last_seen >= {self.start} AND {self._condition('exit_path', item)}"
            " GROUP BY visit_key HAVING sum(sign) > 0"
        )

    def visits_where(self) -> str:
        """`sessions` rows of the visits started in the period matching the visit filters, with a
        matching event in the period if any event filter (raw._matching_visits)."""
        where = [f"site_id = {self.site}", f"started >= {self.start}", f"started < {self.end}"]
        for item in self.filters:
            if item.prop.is_visit:
                where.append(self._condition(item.prop.column, item))
        if any(not item.prop.is_visit for item in self.filters):
            where.append(f"visit_key IN (SELECT visit_key FROM events WHERE {self.events_where(visit_filters=False)})")
        return " AND ".join(where)


def _needs_events(metrics: Sequence[str]) -> bool:
    return bool(set(EVENT_METRICS) & set(metrics))


def _needs_visits(metrics: Sequence[str]) -> bool:
    return bool(set(VISIT_METRICS) & set(metrics))


def _series(
    site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter], *, hourly: bool
) -> dict[tuple, Totals]:
    """Totals per local day (or (day, hour)), from one statement: the events' part and the
    visits' part as two branches of a UNION ALL (ClickHouse runs them side by side)."""
    query = _Query(site, period, filters)
    tz = query.tz
    branches = []
    if _needs_events(metrics) or not _needs_visits(metrics):
        hour = f"toHour(ts, {tz})" if hourly else "0"
        branches.append(
            f"SELECT 0 AS part, toDate(ts, {tz}) AS day, {hour} AS hour, toInt64(uniqExact(visitor_id)) AS a,"
            f" toInt64(countIf(name = {query.pageview})) AS b, toInt64(countIf(name != {query.pageview})) AS c"
            f" FROM events WHERE {query.events_where()} GROUP BY day, hour"
        )
    if _needs_visits(metrics):
        hour = f"toHour(started, {tz})" if hourly else "0"
        branches.append(
            f"SELECT 1 AS part, toDate(started, {tz}) AS day, {hour} AS hour, toInt64({_VISIT_SUMS['visits']}) AS a,"
            f" toInt64({_VISIT_SUMS['bounces']}) AS b, toInt64({_VISIT_SUMS['duration']}) AS c"
            f" FROM sessions WHERE {query.visits_where()} GROUP BY day, hour"
        )
    found: dict[tuple, Totals] = defaultdict(Totals)
    for part, day, hour, a, b, c in query.run(" UNION ALL ".join(branches)):
        key = (day, hour) if hourly else day
        if part == 0:
            found[key].add({"visitors": a, "pageviews": b, "events": c})
        else:
            found[key].add({"visits": a, "bounces": b, "duration": c})
    return found


class ClickHouseBackend:
    """Stats from the ClickHouse tables `events` and `sessions` (see the module docstring)."""

    def totals(self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]) -> Totals:
        # Per local day, then summed: visitors are daily uniques summed.
        result = Totals()
        for day_totals in _series(site, period, metrics, filters, hourly=False).values():
            result.add(day_totals)
        return result

    def hourly(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> dict[tuple[dt.date, int], Totals]:
        return _series(site, period, metrics, filters, hourly=True)

    def daily(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> dict[dt.date, Totals]:
        return _series(site, period, metrics, filters, hourly=False)

    def breakdown(
        self,
        site: Site,
        period: Period,
        prop: Property,
        metrics: Sequence[str],
        filters: Sequence[Filter],
        *,
        order: str,
        offset: int,
        limit: int,
    ) -> list[BreakdownRow]:
        """One grouped statement, sorted and cut in ClickHouse: by `order` desc, then value by
        byte (UTF-8 bytes sort as code points, as Python's str order the other backend uses)."""
        query = _Query(site, period, filters)
        tz = query.tz
        if prop.is_visit:
            column = prop.column
            where = query.visits_where()
            if not prop.keep_empty:
                where += f" AND {column} != ''"
            names = ("visitors", "visits", "bounces", "duration", "pageviews", "events")
            sql = (
                "SELECT label, toInt64(countIf(n > 0)) AS visitors, toInt64(sum(n)) AS visits, toInt64(sum(b)),"
                " toInt64(sum(d)), toInt64(sum(pv)), toInt64(sum(ev)) FROM ("
                f"SELECT {column} AS label, toDate(started, {tz}) AS day, visitor_id,"
                f" {_VISIT_SUMS['visits']} AS n, {_VISIT_SUMS['bounces']} AS b, {_VISIT_SUMS['duration']} AS d,"
                f" {_VISIT_SUMS['pageviews']} AS pv, {_VISIT_SUMS['events']} AS ev"
                f" FROM sessions WHERE {where} GROUP BY label, day, visitor_id)"
            )
        else:
            column = prop.event_column
            page = prop.name == "event:page"
            kind = f"name = {query.pageview}" if page else f"name != {query.pageview}"
            counted = "toInt64(count()), toInt64(0)" if page else "toInt64(0), toInt64(count())"
            names = ("visitors", "visits", "pageviews", "events", "value_cents")
            sql = (
                f"SELECT {column} AS label, toInt64(uniqExact(toDate(ts, {tz}), visitor_id)) AS visitors,"
                f" toInt64(uniqExact(toDate(ts, {tz}), visit_key)) AS visits, {counted},"
                " toInt64(sum(ifNull(value, 0)))"
                f" FROM events WHERE {query.events_where()} AND {kind}"
            )
        order_by = {"visitors": "visitors", "visits": "visits"}[order]
        sql += (
            f" GROUP BY label HAVING visitors > 0 ORDER BY {order_by} DESC, label"
            f" LIMIT {query.params.add(limit, 'UInt64')} OFFSET {query.params.add(offset, 'UInt64')}"
        )
        rows = []
        for label, *numbers in query.run(sql):
            row = BreakdownRow(value=label)
            row.totals.add(dict(zip(names, numbers, strict=True)))
            rows.append(row)
        return rows

    def entries(self, site: Site, period: Period, filters: Sequence[Filter], pages: Sequence[str]) -> dict[str, Totals]:
        """Visits, bounces and duration of the matching visits that entered on each of these pages."""
        found: dict[str, Totals] = defaultdict(Totals)
        if not pages:
            return found
        query = _Query(site, period, filters)
        sql = (
            f"SELECT entry_path, toInt64({_VISIT_SUMS['visits']}), toInt64({_VISIT_SUMS['bounces']}),"
            f" toInt64({_VISIT_SUMS['duration']}) FROM sessions WHERE {query.visits_where()}"
            f" AND entry_path IN {query.params.add(list(pages), 'Array(String)')} GROUP BY entry_path"
        )
        for page, visits, bounces, duration in query.run(sql):
            found[page].add({"visits": visits, "bounces": bounces, "duration": duration})
        return found

    def realtime_visitors(self, site: Site, since: dt.datetime, until: dt.datetime) -> int:
        params = _Params()
        moment = "DateTime64(6, 'UTC')"
        sql = (
            f"SELECT uniqExact(visitor_id) FROM events WHERE site_id = {params.add(site.pk, 'UInt64')}"
            f" AND ts >= {params.add(since, moment)} AND ts <= {params.add(until, moment)}"
        )
        return int(_client().query(sql, parameters=params.values).result_rows[0][0])

    def has_data(self, site: Site) -> bool:
        params = _Params()
        sql = f"SELECT 1 FROM events WHERE site_id = {params.add(site.pk, 'UInt64')} LIMIT 1"
        return bool(_client().query(sql, parameters=params.values).result_rows)

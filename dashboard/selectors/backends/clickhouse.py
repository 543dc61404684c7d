"""ClickHouse as a stats backend (ANALYTICS_URL `clickhouse://…` or `chdb:///path`): filtered
answers from the raw tables `events` and `sessions` (analytics/migrations_clickhouse);
unfiltered ones from the rollups for the site's rolled-up days (clickhouse_rollups.py writes
them with this module's SQL) and from the raw tables after them, as branches of one statement.
One statement per method call, and one for a whole dashboard page (prefetch).

The counting rules are those of the Django database's backend (backends/raw.py and rollups.py,
selectors/queries.py), statement by statement:

- **Events** (pageviews, custom events; never engagement reports) of a period: `events` rows
  with ts in Period.utc_bounds() (its cutoff included). Visitors are unique per local day
  (`toDate(ts, tz)`, the site's zone) and summed; per local wall-clock hour (`toHour(ts, tz)`)
  in an hourly series: a repeated DST hour is one two-hour bucket, a skipped one empty, as in
  HourlyTotal. A breakdown's visitors (visits) are unique per (value, local day), summed.
- **Visits** (visits, bounces, duration, and the visit-level breakdowns) count at the local
  time they started: `sessions` rows with `started` in the bounds. `sessions` is a
  VersionedCollapsingMergeTree: a changed visit is a cancel row (sign -1, the old state
  exactly) plus a state row (sign +1). Every number here is a sum of `sign * x` over rows that
  pass a condition on the row's own columns (period, filters), so each cancel row and the
  state row it cancels either both count or both do not: whatever is merged or not yet, a
  visit adds exactly the x of its current state (0 or 1 times), never an old one. A distinct
  count of visitors reads `sessions FINAL`, where the cancel rows and the states they cancel
  have collapsed (one row per visit, its current state; cheap where a partition is merged,
  store.READ_SETTINGS), and counts the distinct (local day, visitor) pairs of its rows.
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
from dashboard.selectors.periods import Period, local_midnight, month_start
from dashboard.selectors.properties import PROPERTIES, VISIT_METRICS, Property
from sites.models import Site

PAGEVIEW = "pageview"
EXIT_PAGE = "visit:exit_page"
ENTRY_PAGE = "visit:entry_page"
UTC_MOMENT = "DateTime64(6, 'UTC')"
EVENT_METRICS = ("visitors", "pageviews", "events", "views_per_visit")
# One visit's whole seconds, truncated per visit as the collector does (int(total_seconds())).
_DURATION = "intDiv(toUnixTimestamp64Milli(last_seen) - toUnixTimestamp64Milli(started), 1000)"
_BOUNCE = "(sessions.pageviews <= 1 AND interactive = 0)"
# The visit sums, by sign (see the module docstring); each one Int64 so that UNION ALL branches
# agree. `sessions.` names the column where a statement's sum is itself named pageviews/events.
_VISIT_SUMS = {
    "visits": "sum(sign)",
    "bounces": f"sum(sign * {_BOUNCE})",
    "duration": f"sum(sign * {_DURATION})",
    "pageviews": "sum(sign * sessions.pageviews)",
    "events": "sum(sign * sessions.events)",
}

# A breakdown's sums, per value (and local day): the columns of breakdown_sql and rollup_breakdowns.
BREAKDOWN_SUMS = ("visitors", "visits", "bounces", "duration", "pageviews", "events", "value_cents")
# BREAKDOWN_SUMS summed per value (outer statements over a UNION ALL of raw and rolled-up parts).
_SUMMED = ", ".join(f"toInt64(sum({name})) AS sum_{name}" for name in BREAKDOWN_SUMS)
_SUMMED_NAMES = ", ".join(f"sum_{name}" for name in BREAKDOWN_SUMS)

# An event breakdown's sums per value, over its (value, local day) groups (_event_day_sums).
_EVENT_VALUE_SUMS = (
    "toInt64(sum(v)) AS visitors, toInt64(sum(k)) AS visits, toInt64(0) AS bounces, toInt64(0) AS duration,"
    " toInt64(sum(pv)) AS pageviews, toInt64(sum(ev)) AS events, toInt64(sum(cents)) AS value_cents"
)


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

    def __init__(
        self,
        site: Site,
        period: Period,
        filters: Sequence[Filter],
        *,
        rollups: bool = False,
        params: _Params | None = None,
    ) -> None:
        self.params = params or _Params()  # shared by the statements of one prefetch
        self.period = period
        self.site = self.params.add(site.pk, "UInt64")
        self.tz = self.params.add(_zone_name(period.tz), "String")
        start, end = period.utc_bounds()
        self.start = self.params.add(start, UTC_MOMENT)
        self.end = self.params.add(end, UTC_MOMENT)
        self.engagement = self.params.add(ENGAGEMENT, "String")
        self.pageview = self.params.add(PAGEVIEW, "String")
        self.filters = list(filters)
        # Unfiltered: the days up to the site's last rolled-up day (in this zone) come from the
        # rollups, the raw tables answer only after it (docs/architecture.md, "rollups").
        self.rolled_until = _rolled_until(site, _zone_name(period.tz)) if rollups and not self.filters else None
        if self.rolled_until is not None and self.rolled_until < period.start:
            self.rolled_until = None  # nothing of this period is rolled up
        self.rollups = self.rolled_until is not None
        self.raw = not self.rollups or period.end > self.rolled_until  # days after the rolled-up ones

    def raw_after(self, column: str) -> str:
        """With rollups: only what happened after the rolled-up days (local midnight after them)."""
        if not self.rollups:
            return ""
        after = local_midnight(self.rolled_until + dt.timedelta(days=1), self.period.tz)
        return f" AND {column} >= {self.params.add(after, UTC_MOMENT)}"

    def rolled_days(self) -> str:
        """The rollup rows' condition: this site, the period's local days up to the rolled-up ones,
        and up to the cutoff's hour on its day (rollup_totals only: breakdowns read whole days)."""
        start = self.params.add(self.period.start, "Date")
        end = self.params.add(self.period.end, "Date")
        until = self.params.add(self.rolled_until, "Date")
        return f"site_id = {self.site} AND day >= {start} AND day <= {end} AND day <= {until}"

    def cutoff(self) -> str:
        if self.period.cutoff is None:
            return ""
        day, hour = self.period.cutoff
        day_p, hour_p = self.params.add(day, "Date"), self.params.add(hour, "UInt8")
        # rollup_totals.hour: the column (the series' statement names its output hour too)
        return f" AND (day < {day_p} OR (day = {day_p} AND rollup_totals.hour <= {hour_p}))"

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
            f"ts < {self.end}{self.raw_after('ts')}",
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
        where = [
            f"site_id = {self.site}",
            f"started >= {self.start}",
            f"started < {self.end}{self.raw_after('started')}",
        ]
        for item in self.filters:
            if item.prop.is_visit:
                where.append(self._condition(item.prop.column, item))
        if any(not item.prop.is_visit for item in self.filters):
            where.append(f"visit_key IN (SELECT visit_key FROM events WHERE {self.events_where(visit_filters=False)})")
        return " AND ".join(where)


def _rolled_until(site: Site, zone: str) -> dt.date | None:
    """The site's last rolled-up local day in this zone (None: none), read once per view."""
    memo = view_memo()
    key = ("clickhouse-rolled", site.pk)
    state = memo[key] if memo is not None and key in memo else rolled_state(site)
    if memo is not None:
        memo[key] = state
    return state[1] if state is not None and state[0] == zone else None


def rolled_state(site: Site) -> tuple[str, dt.date] | None:
    """(zone, last rolled-up local day) of the site's rollups, or None if never rolled up."""
    rows = (
        _client()
        .query(
            "SELECT tz, rolled_until FROM rollup_sites FINAL WHERE site_id = {site:UInt64}",
            parameters={"site": site.pk},
        )
        .result_rows
    )
    return (rows[0][0], rows[0][1]) if rows else None


def _zone_name(tz: dt.tzinfo) -> str:
    """The IANA name ClickHouse takes for a period's zone (a site's ZoneInfo; tests also use dt.UTC)."""
    name = getattr(tz, "key", None)
    if name:
        return name
    if tz.utcoffset(None) == dt.timedelta(0):
        return "UTC"
    raise ValueError(f"no IANA name for the time zone {tz!r}")


def _needs_events(metrics: Sequence[str]) -> bool:
    return bool(set(EVENT_METRICS) & set(metrics))


def _needs_visits(metrics: Sequence[str]) -> bool:
    return bool(set(VISIT_METRICS) & set(metrics))


def _series(
    site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter], *, hourly: bool
) -> dict[tuple, Totals]:
    """Totals per local day (or (day, hour)), from one statement (_series_statement), or from
    the view's prefetch, which read it with every metric."""
    memo = view_memo()
    key = _series_key(site, period, filters, hourly)
    if memo is not None and key in memo:
        return memo[key]
    query = _Query(site, period, filters, rollups=True)
    return _series_totals(query.run(_series_statement(query, metrics, hourly)), hourly)


def _series_key(site: Site, period: Period, filters: Sequence[Filter], hourly: bool) -> tuple:
    return ("clickhouse-series", site.pk, period, repr(list(filters)), hourly)


def _series_statement(query: _Query, metrics: Sequence[str], hourly: bool) -> str:
    """The rows (part, day, hour, a, b, c) of a series: the events' part (0: visitors,
    pageviews, events) and the visits' part (1: visits, bounces, duration) as branches of a
    UNION ALL (ClickHouse runs them side by side), each from the rollups for rolled-up days
    (unfiltered) and from the raw tables for the rest."""
    tz = query.tz
    branches = []
    if _needs_events(metrics) or not _needs_visits(metrics):
        hour = f"toHour(ts, {tz})" if hourly else "0"
        if query.raw:
            branches.append(
                f"SELECT 0 AS part, toDate(ts, {tz}) AS day, {hour} AS hour, toInt64(uniqExact(visitor_id)) AS a,"
                f" toInt64(countIf(name = {query.pageview})) AS b, toInt64(countIf(name != {query.pageview})) AS c"
                f" FROM events WHERE {query.events_where()} GROUP BY day, hour"
            )
        if query.rollups:
            # An hour's unique visitors, or a day's: its visitors first seen in each of its hours, summed.
            visitors = "visitors" if hourly else "new_visitors"
            branches.append(_rolled_series(query, 0, (visitors, "pageviews", "events"), hourly))
    if _needs_visits(metrics):
        hour = f"toHour(started, {tz})" if hourly else "0"
        if query.raw:
            branches.append(
                f"SELECT 1 AS part, toDate(started, {tz}) AS day, {hour} AS hour,"
                f" toInt64({_VISIT_SUMS['visits']}) AS a, toInt64({_VISIT_SUMS['bounces']}) AS b,"
                f" toInt64({_VISIT_SUMS['duration']}) AS c"
                f" FROM sessions WHERE {query.visits_where()} GROUP BY day, hour"
            )
        if query.rollups:
            branches.append(_rolled_series(query, 1, ("visits", "bounces", "duration"), hourly))
    return " UNION ALL ".join(branches)


def _series_totals(rows: Sequence[tuple], hourly: bool) -> dict[tuple, Totals]:
    found: dict[tuple, Totals] = defaultdict(Totals)
    for part, day, hour, a, b, c in rows:
        key = (day, hour) if hourly else day
        if part == 0:
            found[key].add({"visitors": a, "pageviews": b, "events": c})
        else:
            found[key].add({"visits": a, "bounces": b, "duration": c})
    return found


def _rolled_series(query: _Query, part: int, sums: tuple[str, str, str], hourly: bool) -> str:
    a, b, c = (f"toInt64(sum({name}))" for name in sums)
    bucket = "rollup_totals.hour" if hourly else "toUInt8(0)"
    return (
        f"SELECT {part} AS part, day, {bucket} AS hour, {a} AS a, {b} AS b, {c} AS c FROM rollup_totals FINAL"
        f" WHERE {query.rolled_days()}{query.cutoff()} GROUP BY day, hour"
    )


def _breakdown_statement(query: _Query, prop: Property, order: str, offset: int, limit: int) -> str:
    """A breakdown's page of values with BREAKDOWN_SUMS: the raw tables' part, and the rollups'
    for rolled-up days (unfiltered), summed per value, sorted and cut."""
    parts = [breakdown_sql(query, prop)] if query.raw else []
    if query.rollups:
        parts.append(_rolled_breakdown(query, prop))
    return (
        f"SELECT label, {_SUMMED} FROM ({' UNION ALL '.join(parts)}) GROUP BY label HAVING sum_visitors > 0"
        f" ORDER BY sum_{order} DESC, label"
        f" LIMIT {query.params.add(limit, 'UInt64')} OFFSET {query.params.add(offset, 'UInt64')}"
    )


def _panels_statement(query: _Query, asks: Sequence[tuple[Property, str, int, int]]) -> str:
    """Breakdowns of distinct properties as one grouped statement, rows (property, label,
    BREAKDOWN_SUMS..., rank): the rollups' rows of every property read together (one scan of
    rollup_months and of rollup_breakdowns, not one per panel) and the raw tables'
    (_raw_breakdowns), summed per (property, value), ranked per property and cut to the
    longest ask. With event:page and visit:entry_page both asked, the entry rows of the page
    panel's pages come too, whatever their rank: the pages' entries() (_panels_found)."""
    names = [ask[0].name for ask in asks]
    parts = []
    if query.rollups:
        names_param = query.params.add(names, "Array(String)")
        parts.append(_rolled_breakdown(query, f"property IN {names_param}", with_property=True))
    if query.raw:
        parts += _raw_breakdowns(query, [ask[0] for ask in asks])
    by_visits = query.params.add([ask[0].name for ask in asks if ask[1] == "visits"], "Array(String)")
    longest = query.params.add(max(offset + limit for _, _, offset, limit in asks), "UInt64")
    pages = _entry_pages(asks)
    entry = query.params.add(ENTRY_PAGE, "String")
    top_pages = (
        f"groupArrayIf(label, property = {query.params.add('event:page', 'String')}"
        f" AND rank <= {query.params.add(pages, 'UInt64')}) OVER ()"
        if pages
        else "[]"
    )
    return (
        f"SELECT property, label, {_SUMMED_NAMES}, rank"
        f" FROM (SELECT *, property = {entry} AND has({top_pages}, label) AS entered FROM ("
        f"SELECT property, label, {_SUMMED}, row_number() OVER (PARTITION BY property"
        f" ORDER BY if(has({by_visits}, property), sum_visits, sum_visitors) DESC, label) AS rank"
        f" FROM ({' UNION ALL '.join(parts)}) GROUP BY property, label HAVING sum_visitors > 0))"
        f" WHERE rank <= {longest} OR entered"
    )


def _entry_pages(asks: Sequence[tuple[Property, str, int, int]]) -> int:
    """How many of the page panel's top pages _panels_statement brings the entry rows of (0: none)."""
    names = [ask[0].name for ask in asks]
    if ENTRY_PAGE not in names:
        return 0
    return next((offset + limit for prop, _, offset, limit in asks if prop.name == "event:page"), 0)


def _panels_found(
    rows: Sequence[Sequence[Any]], asks: Sequence[tuple[Property, str, int, int]]
) -> tuple[list[list[BreakdownRow]], dict[str, Totals] | None]:
    """_panels_statement's rows -> each ask's rows, and the page panel's entries (None: not read)."""
    longest = max(offset + limit for _, _, offset, limit in asks)
    pages = _entry_pages(asks)
    ranked: dict[str, list[BreakdownRow]] = defaultdict(list)
    entries: dict[str, Totals] | None = {} if pages else None
    for name, *row, rank in sorted(rows, key=lambda row: (row[0], row[-1])):
        result = _breakdown_row(row)
        if rank <= longest:
            ranked[name].append(result)
        if entries is not None and name == ENTRY_PAGE:
            entries[result.value] = _entry_totals(result.totals.visits, result.totals.bounces, result.totals.duration)
    if entries is not None:  # every page of the panel: those that no visit entered on have none
        entries = {row.value: entries.get(row.value, Totals()) for row in ranked["event:page"][:pages]}
    return [ranked[prop.name][offset : offset + limit] for prop, _, offset, limit in asks], entries


def _day_pair(day: str, column: str) -> str:
    """(local day, a 64-bit id) as one UInt128, exactly: a distinct count of such pairs with no
    tuple to hash (measured on a filtered month at 10M: 21 ms a panel, 25 as a tuple)."""
    return f"bitOr(bitShiftLeft(toUInt128(toUInt16({day})), 64), toUInt128(reinterpretAsUInt64({column})))"


def _visit_value_sums(query: _Query) -> str:
    """A visit breakdown's BREAKDOWN_SUMS over `sessions FINAL` rows, grouped by value (and day):
    visitors unique per local day (module docstring), the rest summed by sign."""
    visitors = _day_pair(f"toDate(started, {query.tz})", "visitor_id")
    sums = ", ".join(f"toInt64({_VISIT_SUMS[name]}) AS {name}" for name in BREAKDOWN_SUMS[1:-1])
    return f"toInt64(uniqExactIf({visitors}, sign > 0)) AS visitors, {sums}, toInt64(0) AS value_cents"


def _visit_breakdowns(query: _Query, props: Sequence[Property]) -> str:
    """breakdown_sql's rows of several visit properties with `property` in front, from one scan
    of the matching visits: a grouping set per property (measured on a filtered month at 10M:
    11 properties in ~85 ms this way, ~230 ms in 11 statements). A row's set is told by the
    bitmask of grouping(): 0 for the set's own column, 1 for the others (the SQL standard's
    meaning, which store.READ_SETTINGS asks for)."""
    columns = ", ".join(prop.column for prop in props)
    masks = [(1 << len(props)) - 1 - (1 << (len(props) - 1 - number)) for number in range(len(props))]
    which = f"indexOf({query.params.add(masks, 'Array(UInt64)')}, grouping({columns}))"
    names = query.params.add([prop.name for prop in props], "Array(String)")
    labels = ", ".join(f"toString({prop.column})" for prop in props)
    dropped = query.params.add([prop.name for prop in props if not prop.keep_empty], "Array(String)")
    sets = ", ".join(f"({prop.column})" for prop in props)
    return (
        f"SELECT {names}[{which}] AS property, [{labels}][{which}] AS label, {_visit_value_sums(query)}"
        f" FROM sessions FINAL WHERE {query.visits_where()} GROUP BY GROUPING SETS ({sets})"
        f" HAVING NOT (has({dropped}, property) AND label = '')"
    )


def _raw_breakdowns(query: _Query, props: Sequence[Property]) -> list[str]:
    """breakdown_sql's rows of several properties with `property` in front, from the raw tables
    (after the rolled-up days, if any): the visit properties from one scan, each event property
    from its own statement."""
    visit = [prop for prop in props if prop.is_visit]
    parts = [_visit_breakdowns(query, visit)] if visit else []
    parts += [
        f"SELECT {query.params.add(prop.name, 'String')} AS property, * FROM ({breakdown_sql(query, prop)})"
        for prop in props
        if not prop.is_visit
    ]
    return parts


def _breakdown_row(row: Sequence[Any]) -> BreakdownRow:
    label, *numbers = row
    result = BreakdownRow(value=label)
    result.totals.add(dict(zip(BREAKDOWN_SUMS, numbers, strict=True)))
    return result


def _prefetch_key(site: Site, period: Period, filters: Sequence[Filter], ask: tuple) -> tuple:
    prop, order, offset, limit = ask
    return ("clickhouse-breakdown", site.pk, period, repr(list(filters)), prop.name, order, offset, limit)


def _entries_key(site: Site, period: Period, filters: Sequence[Filter]) -> tuple:
    return ("clickhouse-entries", site.pk, period, repr(list(filters)))


def _entry_totals(visits: int, bounces: int, duration: int) -> Totals:
    totals = Totals()
    totals.add({"visits": visits, "bounces": bounces, "duration": duration})
    return totals


def breakdown_sql(query: _Query, prop: Property, *, per_day: bool = False) -> str:
    """The raw tables' BREAKDOWN_SUMS per value (`label`) of the property, and per local day
    (`day`) if asked (the rollup job's rows). Visitors (visits of an event property) are
    unique per local day, and a range sums its days."""
    tz = query.tz
    day = "day, " if per_day else ""
    if prop.is_visit:
        where = query.visits_where()
        if not prop.keep_empty:
            where += f" AND {prop.column} != ''"
        started_day = f"toDate(started, {tz}) AS day, " if per_day else ""
        return (
            f"SELECT {started_day}toString({prop.column}) AS label, {_visit_value_sums(query)}"
            f" FROM sessions FINAL WHERE {where} GROUP BY {day}label"
        )
    kind = f"name = {query.pageview}" if prop.name == "event:page" else f"name != {query.pageview}"
    # Unique per local day, then summed. (Measured at 10M events, a 30-day pages panel:
    # ~0.25 s this way, ~1.1 s as one uniqExact of (day, visitor) pairs.)
    return (
        f"SELECT {day}label, {_EVENT_VALUE_SUMS} FROM ("
        f"SELECT {prop.event_column} AS label, toDate(ts, {tz}) AS day, {_event_day_sums(query)}"
        f" FROM events WHERE {query.events_where()} AND {kind} GROUP BY label, day) GROUP BY {day}label"
    )


def _event_day_sums(query: _Query) -> str:
    """An event breakdown's sums per (value, local day) group (breakdown_sql)."""
    return (
        f"uniqExact(visitor_id) AS v, uniqExact(visit_key) AS k, countIf(name = {query.pageview}) AS pv,"
        f" countIf(name != {query.pageview}) AS ev, sum(ifNull(value, 0)) AS cents"
    )


def _rolled_breakdown(query: _Query, prop: Property | str, values: str = "", *, with_property: bool = False) -> str:
    """The rollups' rows of the property (or of those a `property ...` condition picks) in the
    rolled-up days of the period, as breakdown_sql's: whole months from rollup_months (every
    month the job wrote is wholly rolled up), the days around them from rollup_breakdowns."""
    if isinstance(prop, Property):
        prop = f"property = {query.params.add(prop.name, 'String')}"
    start, until = query.period.start, min(query.period.end, query.rolled_until)
    first_month = month_start(start, 0 if start.day == 1 else 1)
    after = month_start(until + dt.timedelta(days=1))  # the first month not wholly in [start, until]
    columns = f"{'property, ' if with_property else ''}value AS label, {', '.join(BREAKDOWN_SUMS)}"
    where = f"site_id = {query.site} AND {prop}{values}"
    parts = []
    days = [(start, until)]
    if first_month < after:
        parts.append(
            f"SELECT {columns} FROM rollup_months FINAL WHERE {where}"
            f" AND month >= {query.params.add(first_month, 'Date')} AND month < {query.params.add(after, 'Date')}"
        )
        days = [(start, first_month - dt.timedelta(days=1)), (after, until)]
    for first, last in days:
        if first <= last:
            parts.append(
                f"SELECT {columns} FROM rollup_breakdowns FINAL WHERE {where}"
                f" AND day >= {query.params.add(first, 'Date')} AND day <= {query.params.add(last, 'Date')}"
            )
    return " UNION ALL ".join(parts)


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
        byte (UTF-8 bytes sort as code points, as Python's str order the other backend uses).
        Answered from the view's memo if prefetch() read it already."""
        ask = (prop, order, offset, limit)
        memo = view_memo()
        key = _prefetch_key(site, period, filters, ask)
        if memo is not None and key in memo:
            return memo[key]
        query = _Query(site, period, filters, rollups=True)
        return [_breakdown_row(row) for row in query.run(_breakdown_statement(query, *ask))]

    def prefetch(
        self,
        site: Site,
        period: Period,
        filters: Sequence[Filter],
        asks: Sequence[tuple[Property, str, int, int]],
        series: Sequence[tuple[Period, bool]] = (),
    ) -> None:
        """The reads a view is about to make, in one statement into the view's memo: breakdowns
        of distinct properties ((prop, order, offset, limit) each; a dashboard page has 13
        panels) and series ((period, hourly) each, every metric: the headline's totals and the
        chart, of the period and of the previous one). Each statement has a fixed cost in the
        engine, and the branches of one run side by side (docs/benchmarks.md)."""
        memo = view_memo()
        if memo is None or len(asks) + len(series) < 2:
            return
        if len({ask[0].name for ask in asks}) != len(asks):
            raise ValueError("prefetch: one ask per property")
        params = _Params()  # one set for every branch
        branches = []
        if asks:
            query = _Query(site, period, filters, rollups=True, params=params)
            branches.append(
                f"SELECT toUInt16(0) AS tag, property, label, toDate(0) AS day, toUInt8(0) AS hour,"
                f" {_SUMMED_NAMES}, rank FROM ({_panels_statement(query, asks)})"
            )
        series = list(dict.fromkeys(series))
        for tag, (series_period, hourly) in enumerate(series, start=1):
            query = _Query(site, series_period, filters, rollups=True, params=params)
            statement = _series_statement(query, ("visitors", "visits"), hourly)  # both parts: every metric
            branches.append(
                f"SELECT toUInt16({tag}), '', '', day, toUInt8(hour), toInt64(part), a, b, c,"
                f" toInt64(0), toInt64(0), toInt64(0), toUInt64(0) FROM ({statement})"
            )
        rows: dict[int, list[tuple]] = defaultdict(list)
        for tag, *row in _client().query(" UNION ALL ".join(branches), parameters=params.values).result_rows:
            rows[tag].append(row)
        if asks:
            found, entries = _panels_found([(p, label, *sums) for p, label, _, _, *sums in rows[0]], asks)
            for ask, panel in zip(asks, found, strict=True):
                memo[_prefetch_key(site, period, filters, ask)] = panel
            if entries is not None:
                memo[_entries_key(site, period, filters)] = entries
        for tag, (series_period, hourly) in enumerate(series, start=1):
            parts = [(part, day, hour, a, b, c) for _, _, day, hour, part, a, b, c, *_ in rows[tag]]
            memo[_series_key(site, series_period, filters, hourly)] = _series_totals(parts, hourly)

    def entries(self, site: Site, period: Period, filters: Sequence[Filter], pages: Sequence[str]) -> dict[str, Totals]:
        """Visits, bounces and duration of the matching visits that entered on each of these pages."""
        found: dict[str, Totals] = defaultdict(Totals)
        if not pages:
            return found
        memo = view_memo()
        known = memo.get(_entries_key(site, period, filters)) if memo is not None else None
        if known is not None and known.keys() >= set(pages):  # read with the page panel (prefetch)
            found.update((page, known[page]) for page in pages)
            return found
        query = _Query(site, period, filters, rollups=True)
        pages_param = query.params.add(list(pages), "Array(String)")
        parts = [
            f"SELECT entry_path AS label, toInt64({_VISIT_SUMS['visits']}) AS visits,"
            f" toInt64({_VISIT_SUMS['bounces']}) AS bounces, toInt64({_VISIT_SUMS['duration']}) AS duration"
            f" FROM sessions WHERE {query.visits_where()} AND entry_path IN {pages_param} GROUP BY entry_path"
        ][: int(query.raw)]
        if query.rollups:
            rolled = _rolled_breakdown(query, PROPERTIES["visit:entry_page"], f" AND value IN {pages_param}")
            parts.append(f"SELECT label, visits, bounces, duration FROM ({rolled})")
        sql = (
            "SELECT label, toInt64(sum(visits)), toInt64(sum(bounces)), toInt64(sum(duration))"
            f" FROM ({' UNION ALL '.join(parts)}) GROUP BY label"
        )
        for page, visits, bounces, duration in query.run(sql):
            found[page] = _entry_totals(visits, bounces, duration)
        return found

    def realtime_visitors(self, site: Site, since: dt.datetime, until: dt.datetime) -> int:
        params = _Params()
        moment = UTC_MOMENT
        sql = (
            f"SELECT uniqExact(visitor_id) FROM events WHERE site_id = {params.add(site.pk, 'UInt64')}"
            f" AND ts >= {params.add(since, moment)} AND ts <= {params.add(until, moment)}"
        )
        return int(_client().query(sql, parameters=params.values).result_rows[0][0])

    def has_data(self, site: Site) -> bool:
        params = _Params()
        sql = f"SELECT 1 FROM events WHERE site_id = {params.add(site.pk, 'UInt64')} LIMIT 1"
        return bool(_client().query(sql, parameters=params.values).result_rows)

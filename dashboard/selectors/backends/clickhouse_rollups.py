"""The ClickHouse rollups (analytics/migrations_clickhouse/0002_rollups.py): complete local days
of a site, summed once into `rollup_totals` and `rollup_breakdowns`, so that an unfiltered view
reads a few rows per day and value instead of the period's raw events and visits.

`roll_site` (run by `manage.py rollup_clickhouse`, every 10 minutes on the commands function)
writes, for each day from the site's first event (or from the day before its last rolled-up one)
to its last complete local day, the numbers the raw tables give for that day: the same SQL as
the reads (clickhouse.breakdown_sql, and the series' sums), grouped by day as well. Then it
records the site's zone and last rolled-up day in `rollup_sites`; readers use rollups only for
days up to it, in that zone (clickhouse._Query.rolled_until), and the raw tables after it.

- **Complete**: a local day is rolled up once it ended more than grace() ago (a visit started
  before midnight may go on for VISIT_TIMEOUT_MINUTES, and the queue may be behind).
- **Chunks**: CHUNK_DAYS days per INSERT ... SELECT, each recorded in `rollup_sites` once
  written: a first run over a long history can stop at a time budget (the commands function
  has 300 s) and the next run continues from there.
- **Late hits**: every run rolls up the last REROLL_DAYS rolled-up days again (the tables are
  ReplacingMergeTree(version): the new rows replace the old ones key by key; readers use
  FINAL), and writes zeros over any key of those days that the new run no longer has (an exit
  page a visit moved away from). A hit that arrives later than that is in the raw tables but
  not in the rollups (docs/architecture.md says so).
- **Months**: the months wholly rolled up are summed again into `rollup_months` after each
  run (those the run touched), so that a long period reads a row per month and value.
- **Zone change**: rollups are per local day of one zone; when the site's zone changes, every
  day is rolled up again in the new one (until then readers see no rolled-up day in the new
  zone and read the raw tables).
"""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

from django.conf import settings

from dashboard.selectors.backends.clickhouse import (
    _VISIT_SUMS,
    BREAKDOWN_SUMS,
    _client,
    _Query,
    _zone_name,
    breakdown_sql,
    rolled_state,
)
from dashboard.selectors.periods import Period, month_start
from dashboard.selectors.properties import PROPERTIES
from sites.models import Site

REROLL_DAYS = 2
TOTALS_COLUMNS = "site_id, day, hour, visitors, new_visitors, visits, bounces, duration, pageviews, events, version"
CHUNK_DAYS = 31  # days per INSERT ... SELECT (bounds the server's memory on a large site)


def grace() -> dt.timedelta:
    return dt.timedelta(minutes=settings.VISIT_TIMEOUT_MINUTES + 30)


def last_complete_day(tz: zoneinfo.ZoneInfo, now: dt.datetime | None = None) -> dt.date:
    """The last local day that ended more than grace() ago."""
    now = now or dt.datetime.now(dt.UTC)
    return (now - grace()).astimezone(tz).date() - dt.timedelta(days=1)


def _first_day(site: Site, tz_name: str) -> dt.date | None:
    rows = (
        _client()
        .query(
            "SELECT toDate(min(ts), {tz:String}), count() > 0 FROM events WHERE site_id = {site:UInt64}",
            parameters={"site": site.pk, "tz": tz_name},
        )
        .result_rows
    )
    return rows[0][0] if rows and rows[0][1] else None


def roll_site(
    site: Site, now: dt.datetime | None = None, deadline: float | None = None
) -> tuple[dt.date, dt.date] | None:
    """Roll up the site's complete days not rolled up yet (and the last REROLL_DAYS again), a
    chunk of days at a time, each chunk recorded as rolled up when written (so a run stopped at
    `deadline`, a time.monotonic() value, or by a crash, is continued by the next one); the
    (first, last) day written, or None if there was nothing to do."""
    tz = site.tz
    tz_name = _zone_name(tz)
    last = last_complete_day(tz, now)
    state = rolled_state(site)
    same_zone = state is not None and state[0] == tz_name
    first = state[1] - dt.timedelta(days=REROLL_DAYS - 1) if same_zone else _first_day(site, tz_name)
    if first is None or first > last:
        return None
    version = time.time_ns() // 1000
    chunk_start, done = first, None
    # In another zone than before, every day of the old one goes (days are the zone's).
    zero_from = first if same_zone else dt.date(1970, 1, 1)
    while chunk_start <= last and (done is None or deadline is None or time.monotonic() < deadline):
        chunk_end = min(last, chunk_start + dt.timedelta(days=CHUNK_DAYS - 1))
        _roll_days(site, Period(start=chunk_start, end=chunk_end, tz=tz), version)
        _zero_stale(site, zero_from, chunk_end, version)
        months = month_start(chunk_start), month_start(chunk_end + dt.timedelta(days=1))
        months_zero_from = months[0] if same_zone or done is not None else dt.date(1970, 1, 1)
        _roll_months(site, months[0], months_zero_from, months[1], version)
        _client().insert(
            "rollup_sites",
            [(site.pk, tz_name, chunk_end, version)],
            column_names=["site_id", "tz", "rolled_until", "version"],
        )
        done, zero_from, chunk_start = chunk_end, chunk_end + dt.timedelta(days=1), chunk_end + dt.timedelta(days=1)
    return first, done


def _roll_days(site: Site, period: Period, version: int) -> None:
    client = _client()
    for prop in PROPERTIES.values():
        query = _Query(site, period, [])  # the raw tables only: rollups=False
        name_p = query.params.add(prop.name, "String")
        version_p = query.params.add(version, "UInt64")
        columns = ", ".join(BREAKDOWN_SUMS)
        client.command(
            f"INSERT INTO rollup_breakdowns (site_id, property, day, value, {columns}, version)"
            f" SELECT {query.site}, {name_p}, day, label, {columns}, {version_p}"
            f" FROM ({breakdown_sql(query, prop, per_day=True)})",
            parameters=query.params.values,
        )
    query = _Query(site, period, [])
    client.command(_totals_sql(query, version), parameters=query.params.values)


def _totals_sql(query: _Query, version: int) -> str:
    """rollup_totals' rows of the query's days: per local (day, hour), the hour's unique
    visitors, the visitors first seen that day in that hour, the visits started in it (sums by
    sign, as the reads), its pageviews and custom events."""
    tz, pageview = query.tz, query.pageview
    events = query.events_where()
    zero = "toInt64(0)"
    branches = (
        f"SELECT toDate(ts, {tz}) AS day, toHour(ts, {tz}) AS hour, toInt64(uniqExact(visitor_id)) AS v,"
        f" {zero} AS nv, {zero} AS vs, {zero} AS bo, {zero} AS du,"
        f" toInt64(countIf(name = {pageview})) AS pv, toInt64(countIf(name != {pageview})) AS ev"
        f" FROM events WHERE {events} GROUP BY day, hour",
        f"SELECT day, hour, {zero}, toInt64(count()), {zero}, {zero}, {zero}, {zero}, {zero} FROM ("
        f"SELECT toDate(ts, {tz}) AS day, min(toHour(ts, {tz})) AS hour FROM events WHERE {events}"
        " GROUP BY day, visitor_id) GROUP BY day, hour",
        f"SELECT toDate(started, {tz}) AS day, toHour(started, {tz}) AS hour, {zero}, {zero},"
        f" toInt64({_VISIT_SUMS['visits']}), toInt64({_VISIT_SUMS['bounces']}), toInt64({_VISIT_SUMS['duration']}),"
        f" {zero}, {zero} FROM sessions WHERE {query.visits_where()} GROUP BY day, hour",
    )
    return (
        f"INSERT INTO rollup_totals ({TOTALS_COLUMNS})"
        f" SELECT {query.site}, day, hour, sum(v), sum(nv), sum(vs), sum(bo), sum(du), sum(pv), sum(ev),"
        f" {query.params.add(version, 'UInt64')} FROM ({' UNION ALL '.join(branches)}) GROUP BY day, hour"
    )


def _zero_stale(site: Site, first: dt.date, last: dt.date, version: int) -> None:
    """Zeros over the keys of the rolled-up days that this run did not write (a value with
    nothing left in a day): FINAL's latest row of such a key is an older run's."""
    params = {"site": site.pk, "first": first, "last": last, "version": version}
    where = "site_id = {site:UInt64} AND day >= {first:Date} AND day <= {last:Date} AND version < {version:UInt64}"
    zeros = ", ".join("0" for _ in BREAKDOWN_SUMS)
    client = _client()
    client.command(
        f"INSERT INTO rollup_breakdowns (site_id, property, day, value, {', '.join(BREAKDOWN_SUMS)}, version)"
        f" SELECT site_id, property, day, value, {zeros}, {{version:UInt64}}"
        f" FROM rollup_breakdowns FINAL WHERE {where}",
        parameters=params,
    )
    client.command(
        f"INSERT INTO rollup_totals ({TOTALS_COLUMNS})"
        " SELECT site_id, day, hour, 0, 0, 0, 0, 0, 0, 0, {version:UInt64}"
        f" FROM rollup_totals FINAL WHERE {where}",
        parameters=params,
    )


def _roll_months(site: Site, first: dt.date, zero_from: dt.date, after: dt.date, version: int) -> None:
    """rollup_months of the months from `first` to before `after` (each wholly rolled up): the
    sums of their days' rollup_breakdowns rows; zeros over the keys left over from `zero_from`."""
    if first >= after:
        return
    columns = ", ".join(BREAKDOWN_SUMS)
    sums = ", ".join(f"sum({name})" for name in BREAKDOWN_SUMS)
    params = {"site": site.pk, "first": first, "zero_from": zero_from, "after": after, "version": version}
    client = _client()
    client.command(
        f"INSERT INTO rollup_months (site_id, property, month, value, {columns}, version)"
        f" SELECT site_id, property, toStartOfMonth(day) AS month, value, {sums}, {{version:UInt64}}"
        " FROM rollup_breakdowns FINAL WHERE site_id = {site:UInt64} AND day >= {first:Date} AND day < {after:Date}"
        " GROUP BY site_id, property, month, value",
        parameters=params,
    )
    zeros = ", ".join("0" for _ in BREAKDOWN_SUMS)
    client.command(
        f"INSERT INTO rollup_months (site_id, property, month, value, {columns}, version)"
        f" SELECT site_id, property, month, value, {zeros}, {{version:UInt64}} FROM rollup_months FINAL"
        " WHERE site_id = {site:UInt64} AND month >= {zero_from:Date} AND month < {after:Date}"
        " AND version < {version:UInt64}",
        parameters=params,
    )


def roll_all(now: dt.datetime | None = None, budget: float | None = None) -> dict[int, tuple[dt.date, dt.date] | None]:
    """roll_site for every site, within `budget` seconds if given (a site's run stops after the
    chunk that passes it; the next run goes on); {site id: days written or None}."""
    deadline = time.monotonic() + budget if budget is not None else None
    written = {}
    for site in Site.objects.order_by("pk"):
        if deadline is not None and time.monotonic() >= deadline:
            break
        written[site.pk] = roll_site(site, now, deadline)
    return written

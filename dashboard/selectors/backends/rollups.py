"""The Django database's rollups, kept by ingest (collector/rollups.py): unfiltered queries
(see backends/database.py). A day's unique visitors are HourlyTotal.new_visitors summed, an
hour's its `visitors`; `value` sums DailyBreakdown.value_sum. A Period.cutoff drops the hours
after it; breakdowns read whole days, whole months from MonthlyBreakdown (_rollup_parts).
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from django.db import connection
from django.db.models import QuerySet, Sum

import dashboard.selectors.periods as periods  # the module, not the package: tests set its clock
from collector.ingest import hash64
from collector.models import DailyBreakdown, Dimension, HourlyTotal, MonthlyBreakdown
from dashboard.selectors.arithmetic import Totals
from dashboard.selectors.backends.base import BreakdownRow
from dashboard.selectors.periods import Period, month_start
from dashboard.selectors.properties import Property
from sites.models import Site


def totals(site: Site, period: Period) -> Totals:
    result = Totals()
    result.add(_hourly_totals(site, period).aggregate(**_hourly_sums()))
    return result


def hourly(site: Site, period: Period) -> dict[tuple[dt.date, int], Totals]:
    found: dict[tuple[dt.date, int], Totals] = defaultdict(Totals)
    rows = (
        _hourly_totals(site, period)
        .values("day", "hour", "visitors", "visits", "pageviews", "bounces", "duration", "events")
        .order_by()
    )
    for row in rows:
        found[(row.pop("day"), row.pop("hour"))].add(row)
    return found


def daily(site: Site, period: Period) -> dict[dt.date, Totals]:
    found: dict[dt.date, Totals] = defaultdict(Totals)
    for row in _hourly_totals(site, period).values("day").annotate(**_hourly_sums()).order_by():
        found[row.pop("day")].add(row)
    return found


def entries(site: Site, period: Period, pages: Sequence[str]) -> dict[str, Totals]:
    """Visits, bounces and duration of the visits that entered on each of these pages."""
    found: dict[str, Totals] = defaultdict(Totals)
    hashes = {hash64(page): page for page in pages}  # the rollup's own key function
    for value_hash, row in _rollup_rows(site, period, Dimension.ENTRY_PAGE, list(hashes)).items():
        sums = row.totals
        found[hashes[value_hash]].add({"visits": sums.visits, "bounces": sums.bounces, "duration": sums.duration})
    return found


def has_data(site: Site) -> bool:
    return HourlyTotal.objects.filter(site=site).exists()


def _hourly_sums() -> dict[str, Sum]:
    """HourlyTotal columns summed into Totals' fields (a day's visitors = its new visitors)."""
    return {
        "visitors": Sum("new_visitors"),
        "visits": Sum("visits"),
        "pageviews": Sum("pageviews"),
        "bounces": Sum("bounces"),
        "duration": Sum("duration"),
        "events": Sum("events"),
    }


def _hourly_totals(site: Site, period: Period) -> QuerySet:
    """The period's HourlyTotal rows; with a cutoff, none after its local day and hour."""
    rows = HourlyTotal.objects.filter(site=site, day__gte=period.start, day__lte=period.end)
    if period.cutoff is not None:
        day, hour = period.cutoff
        rows = rows.filter(day__lte=day).exclude(day=day, hour__gt=hour)
    return rows


def breakdown(site: Site, period: Period, prop: Property, order: str, offset: int, limit: int) -> list[BreakdownRow]:
    """The top rows of the rollups, by `order` (visitors; visits for exit pages, whose rows keep
    no visitors) then label (binary), the period's whole months read from MonthlyBreakdown and
    its other days from DailyBreakdown (_rollup_parts).

    Cheap queries instead of one grouped sort over every row with its `value` (up to 2000
    characters): (1) the `order` sum per value_hash, from the covering indexes only, top
    offset+limit+1 by it then value_hash; if the last two tie, the page's share of the values
    with that sum, by label (_rollup_ties); (2) every sum and the
    label of those hashes only, by point lookups (_rollup_rows); then the final order (-order,
    label) in Python."""
    want = offset + limit
    top = _rollup_top(site, period, prop.dim, order, want + 1)
    if len(top) > want and top[want - 1][1] == top[want][1]:
        boundary = top[want - 1][1]
        top = [row for row in top if row[1] > boundary]
        top += _rollup_ties(site, period, prop.dim, order, boundary, want - len(top))
    found = _rollup_rows(site, period, prop.dim, [value_hash for value_hash, _ in top])
    # `if in found`: a value whose rows went between the two reads (a site's data reset) is gone.
    result = [found[value_hash] for value_hash, _ in top if value_hash in found]
    result.sort(key=lambda item: (-getattr(item.totals, order), item.value))
    return result[offset : offset + limit]


# Totals' field -> the rollup column summed into it.
_ROLLUP_SUMS = {
    "visitors": "visitors",
    "visits": "visits",
    "pageviews": "pageviews",
    "bounces": "bounces",
    "duration": "duration",
    "events": "events",
    "value_cents": "value_sum",
}


# Model -> (its unique key: point lookups by hash, its covering index: range reads), see
# collector/models.py.
_ROLLUP_INDEXES = {
    DailyBreakdown: ("daily_site_dim_day_value", "daily_breakdown_cover"),
    MonthlyBreakdown: ("monthly_site_dim_month_value", "monthly_breakdown_cover"),
}


def _rollup_parts(period: Period) -> tuple[tuple[dt.date, dt.date] | None, list[tuple[dt.date, dt.date]]]:
    """The period's dates as (first, last) whole month to read from MonthlyBreakdown (month
    starts; None if no whole month) and the (start, end) day ranges left over for DailyBreakdown.

    A month is whole if the period holds all its days, or all of them up to the site's today
    (or later): nothing is stored after now, so the monthly row of the current month is its
    month-to-date. Breakdowns read whole days, never a Period.cutoff."""
    today = periods.local_now(period.tz).date()  # through the module: tests set the clock there
    first = month_start(period.start)
    if first < period.start:
        first = month_start(period.start, 1)
    last = first
    while True:
        following = month_start(last, 1)
        month_end = following - dt.timedelta(days=1)
        if month_end > period.end and not (last <= today <= month_end and period.end >= today):
            break
        last = following
    if last == first:
        return None, [(period.start, period.end)]
    days = []
    if period.start < first:
        days.append((period.start, first - dt.timedelta(days=1)))
    if last <= period.end:
        days.append((last, period.end))
    return (first, month_start(last, -1)), days


def _rollup_selects(
    site: Site, period: Period, dim: str, columns: str, hashes: Sequence[int] | None = None
) -> tuple[list[str], list[Any]]:
    """SELECTs (and their params) of `columns` from the period's MonthlyBreakdown and
    DailyBreakdown rows of one dimension, to UNION ALL. Without hashes, a range of months / days
    (the covering indexes); with hashes, point lookups: every (month or day, hash) pair of the
    unique keys, not a scan of the range.

    On MySQL/MariaDB each SELECT names its index (FORCE INDEX, _ROLLUP_INDEXES): the plan must
    not depend on InnoDB's sampled statistics. Measured on the 1M bench database after it was
    regenerated (2026-12-03): the statistics, sampled from 20 pages, put ~1,300 distinct
    (site, dim) prefixes in the covering index (there are 26), so MariaDB 10.11 read the point
    lookups as `ref` on that prefix, every row of the site's dimension: 100-470 ms a statement
    instead of 1-10 ms, and the unfiltered 30-day view went from ~90 ms to ~1 s."""
    qn = connection.ops.quote_name
    hint = connection.vendor == "mysql"
    months, days = _rollup_parts(period)
    parts: list[tuple[type, str, list[dt.date]]] = []
    if months:
        first, last = months
        parts.append((MonthlyBreakdown, "month", [first, last]))
        if hashes is not None:
            count = (last.year - first.year) * 12 + last.month - first.month + 1
            parts[-1] = (MonthlyBreakdown, "month", [month_start(first, i) for i in range(count)])
    for start, end in days:
        dates = [start, end]
        if hashes is not None:
            dates = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
        parts.append((DailyBreakdown, "day", dates))
    selects, params = [], []
    for model, column, dates in parts:
        where = f"{qn('site_id')} = %s AND {qn('dim')} = %s"
        if hashes is None:
            where += f" AND {qn(column)} >= %s AND {qn(column)} <= %s"
        else:
            where += f" AND {qn(column)} IN ({', '.join(['%s'] * len(dates))})"
            where += f" AND {qn('value_hash')} IN ({', '.join(['%s'] * len(hashes))})"
        table = qn(model._meta.db_table)
        if hint:
            table += f" FORCE INDEX ({qn(_ROLLUP_INDEXES[model][hashes is None])})"
        selects.append(f"SELECT {columns} FROM {table} WHERE {where}")
        params += [site.pk, dim, *(date.isoformat() for date in dates), *(hashes or ())]
    return selects, params


def _rollup_top(site: Site, period: Period, dim: str, order: str, limit: int) -> list[tuple[int, int]]:
    """[(value_hash, sum of `order`), ...] of the dimension's values with a positive sum, by that
    sum desc then value_hash, at most `limit`: one grouped read of (value_hash, one column) from
    the covering indexes."""
    qn = connection.ops.quote_name
    selects, params = _rollup_selects(site, period, dim, f"{qn('value_hash')}, {qn(_ROLLUP_SUMS[order])} AS {qn('n')}")
    sql = (
        f"SELECT {qn('value_hash')}, SUM({qn('n')}) FROM ({' UNION ALL '.join(selects)}) {qn('parts')}"
        f" GROUP BY {qn('value_hash')} HAVING SUM({qn('n')}) > 0"
        f" ORDER BY SUM({qn('n')}) DESC, {qn('value_hash')} LIMIT {int(limit)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(value_hash, int(total)) for value_hash, total in cursor.fetchall()]


def _rollup_ties(site: Site, period: Period, dim: str, order: str, total: int, needed: int) -> list[tuple[int, int]]:
    """The first `needed` values (by label, byte order) whose `order` sum is `total`: the page's
    share of a tie at its boundary. Reads the labels of the dimension's rows in the period (a
    long tail of one-visitor values can be large), but in one bounded query."""
    qn = connection.ops.quote_name
    collation = {"mysql": "utf8mb4_bin", "sqlite": "BINARY", "postgresql": '"C"'}.get(connection.vendor)
    label = f"MIN({qn('value')})" + (f" COLLATE {collation}" if collation else "")
    columns = f"{qn('value_hash')}, {qn('value')}, {qn(_ROLLUP_SUMS[order])} AS {qn('n')}"
    selects, params = _rollup_selects(site, period, dim, columns)
    sql = (
        f"SELECT {qn('value_hash')} FROM ({' UNION ALL '.join(selects)}) {qn('parts')}"
        f" GROUP BY {qn('value_hash')} HAVING SUM({qn('n')}) = %s"
        f" ORDER BY {label}, {qn('value_hash')} LIMIT {int(needed)}"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, [*params, int(total)])
        return [(value_hash, int(total)) for (value_hash,) in cursor.fetchall()]


def _rollup_rows(site: Site, period: Period, dim: str, hashes: Sequence[int]) -> dict[int, BreakdownRow]:
    """value_hash -> BreakdownRow (label and totals of the period) of these hashes, summed in Python from
    their monthly and daily rows: point lookups on the unique keys, a few rows each, forced on MySQL
    (_rollup_selects): reading `value` too, which the covering index lacks, once kept MariaDB
    10.11 off `ref` on that index's (site, dim) prefix (a scan of the site's whole dimension),
    but not with the statistics of a regenerated table."""
    found: dict[int, BreakdownRow] = {}
    if not hashes:
        return found
    qn = connection.ops.quote_name
    names = list(_ROLLUP_SUMS)
    columns = ", ".join([qn("value_hash"), qn("value"), *(qn(_ROLLUP_SUMS[name]) for name in names)])
    for start in range(0, len(hashes), 500):
        selects, params = _rollup_selects(site, period, dim, columns, hashes[start : start + 500])
        with connection.cursor() as cursor:
            cursor.execute(" UNION ALL ".join(selects), params)
            for value_hash, value, *numbers in cursor.fetchall():
                row = found.get(value_hash)
                if row is None:
                    row = found[value_hash] = BreakdownRow(value=value)
                row.totals.add(dict(zip(names, numbers, strict=True)))
    return found

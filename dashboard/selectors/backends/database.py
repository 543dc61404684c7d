"""The Django database as a stats backend: rollups when they can answer, raw rows otherwise.

- **Unfiltered** queries read the rollups only: HourlyTotal (site totals per local day and
  hour), DailyBreakdown (per local day, dimension and value) and MonthlyBreakdown (the same
  per local month: a breakdown reads the period's whole months there and only its other days
  from DailyBreakdown; see rollups._rollup_parts). Their cost depends on the
  length of the period and the number of distinct values, never on the number of stored
  events. The one exception is the exit-page breakdown with metrics beyond `visits`: the
  rollup keeps only visits (exits) per exit page and day (no unique visitors, bounces or
  durations), so asked for exits alone (the dashboard's panel) it reads the rollup, sorted by
  exits; asked for anything else (a Stats API breakdown of visit:exit_page with visitors, say)
  it reads Visit rows (site, started).
- **Filtered** queries read raw rows of the period (UTC bounds of the site-local dates, see
  backends/raw.py): event numbers from Event rows, which carry their visit's attributes, so a
  visit filter is a condition on the event row (no lookup of its visit; the exit page alone is
  looked up, it is not known when the event is written); visit numbers (visits, bounces,
  durations, visit-property breakdowns) from the Visit rows started in the period, an event
  filter being one `visit_key IN (matching events)` semi-join. Reads go through hinted indexes
  (MariaDB would read (site, ts) by its site part alone), and a statement the page repeats
  (headline and chart: the same daily buckets) is read once per view (base.one_view).
- The realtime count reads raw events (the last minutes are in no rollup yet).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import dashboard.selectors.backends.raw as raw  # the modules, not the package (which imports this one)
import dashboard.selectors.backends.rollups as rollups
from collector.models import Dimension
from dashboard.selectors.arithmetic import Totals
from dashboard.selectors.backends.base import BreakdownRow
from dashboard.selectors.filters import Filter
from dashboard.selectors.periods import Period
from dashboard.selectors.properties import Property
from sites.models import Site


class DatabaseBackend:
    """Stats from the Django database's collector tables (see the module docstring)."""

    def totals(self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]) -> Totals:
        if not filters:
            return rollups.totals(site, period)
        return raw.totals(site, period, metrics, list(filters))

    def hourly(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> dict[tuple[dt.date, int], Totals]:
        if not filters:
            return rollups.hourly(site, period)
        return raw.hourly(site, period, metrics, list(filters))

    def daily(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> dict[dt.date, Totals]:
        if not filters:
            return rollups.daily(site, period)
        return raw.daily(site, period, metrics, list(filters))

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
        # Exit pages: the rollup answers exits (visits) alone; anything more reads Visit rows.
        if not filters and (prop.dim != Dimension.EXIT_PAGE or tuple(metrics) == ("visits",)):
            return rollups.breakdown(site, period, prop, order, offset, limit)
        rows = raw.breakdown(site, period, prop, list(filters))
        rows.sort(key=lambda row: (-getattr(row.totals, order), row.value))
        return rows[offset : offset + limit]

    def entries(self, site: Site, period: Period, filters: Sequence[Filter], pages: Sequence[str]) -> dict[str, Totals]:
        if not filters:
            return rollups.entries(site, period, pages)
        return raw.entries(site, period, list(filters), pages)

    def realtime_visitors(self, site: Site, since: dt.datetime, until: dt.datetime) -> int:
        return raw.realtime_visitors(site, since, until)

    def has_data(self, site: Site) -> bool:
        return rollups.has_data(site)

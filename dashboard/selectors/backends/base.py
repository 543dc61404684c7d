"""What a stats backend must answer: the seam between the counting rules (selectors.queries)
and the store that holds the numbers.

The first backend is the Django database (backends.database: rollups, raw events and visits);
a second one (ClickHouse, chosen by ANALYTICS_URL) implements the same methods beside it, and
backends.get_backend picks one. A backend answers in Totals (additive sums; the metrics derive
from them in selectors.arithmetic) and counts as the collector does: visitors are unique per
local day (per hour in an hourly series) and a range sums its days; visits, bounces and
durations count at the local time the visit started, pageviews and custom events at their own;
engagement reports are no event. `filters` are parsed Filters, all of which must match (empty:
unfiltered); a period's cutoff (Period.cutoff) ends it early, except in breakdowns, which the
callers ask for whole days.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Protocol

from dashboard.selectors.arithmetic import Totals
from dashboard.selectors.filters import Filter
from dashboard.selectors.periods import Period
from dashboard.selectors.properties import Property
from sites.models import Site


@dataclass
class BreakdownRow:
    """One value of a property (as stored: '' for none) and its sums."""

    value: str
    totals: Totals = field(default_factory=Totals)


class StatsBackend(Protocol):
    def totals(self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]) -> Totals:
        """The period's sums. `metrics` (checked names) may let a backend skip what is not asked for."""
        ...

    def hourly(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> Mapping[tuple[dt.date, int], Totals]:
        """Sums per local (day, hour) of the period (Period.hours()); an hour left out had nothing."""
        ...

    def daily(
        self, site: Site, period: Period, metrics: Sequence[str], filters: Sequence[Filter]
    ) -> Mapping[dt.date, Totals]:
        """Sums per local day of the period; a day left out had nothing."""
        ...

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
        """Rows `offset` to `offset + limit` of the property's values with a positive `order` sum
        (visitors; visits for exit pages asked for exits alone), by that sum (most first) then
        value (by code point). Empty values are kept, except for properties that do not
        (Property.keep_empty: referrer, UTM)."""
        ...

    def entries(
        self, site: Site, period: Period, filters: Sequence[Filter], pages: Sequence[str]
    ) -> Mapping[str, Totals]:
        """Visits, bounces and duration of the (matching) visits that entered on each of these pages."""
        ...

    def realtime_visitors(self, site: Site, since: dt.datetime, until: dt.datetime) -> int:
        """Distinct visitors with any hit, engagement reports included, from `since` to `until`."""
        ...

    def has_data(self, site: Site) -> bool:
        """Has the site ever recorded a hit?"""
        ...


_VIEW: ContextVar[dict[Any, Any] | None] = ContextVar("stats_view", default=None)


@contextlib.contextmanager
def one_view() -> Iterator[None]:
    """Calls made inside are one view of the data (a dashboard page, its export): a backend may
    answer a read it already made in the view from what it read (view_memo), instead of asking
    the store again. A filtered dashboard page asks for the period's totals and for its daily
    series, the same rows, and so for the previous period. Nothing outlives the block."""
    token = _VIEW.set({})
    try:
        yield
    finally:
        _VIEW.reset(token)


def view_memo() -> dict[Any, Any] | None:
    """The current view's memo (read key -> result), or None outside one_view()."""
    return _VIEW.get()

"""Stats reads for the Stats API, the dashboard, its export and the email report. Reads only:
nothing here writes a row. Callers use this package's names (`selectors.breakdown(...)`); the
modules split it by concern:

- periods: `period` + `date` -> Period (an inclusive range of a site's local dates),
  comparisons with the previous period.
- properties: the metric and property catalogue (METRICS, PROPERTIES) and metric checks.
- filters: the filter syntax (`visit:source==Google;event:page==/`) and its caps.
- arithmetic: Totals (additive sums) and how every metric derives from them.
- queries: aggregate, aggregate_compared, timeseries, breakdown, realtime_visitors, has_data:
  the counting rules, over a backend.
- backends: what a backend answers (base.StatsBackend), which one does (get_backend:
  ANALYTICS_URL unset = the Django database), and the Django database's (database: rollups +
  raw events and visits).
"""

from __future__ import annotations

from dashboard.selectors.arithmetic import Totals, change, divide_round, ratio
from dashboard.selectors.backends.base import one_view
from dashboard.selectors.filters import MAX_FILTER_VALUES, MAX_FILTERS, MAX_VALUE_CHARS, Filter, parse_filters
from dashboard.selectors.properties import (
    DEFAULT_METRICS,
    DIRECT,
    METRICS,
    NOT_SET,
    PROPERTIES,
    VALUE,
    Property,
    check_metrics,
    check_property,
)
from dashboard.selectors.queries import (
    REALTIME_WINDOW,
    aggregate,
    aggregate_compared,
    breakdown,
    has_data,
    prefetch,
    realtime_visitors,
    timeseries,
)

__all__ = [
    "DEFAULT_METRICS",
    "DIRECT",
    "MAX_FILTERS",
    "MAX_FILTER_VALUES",
    "MAX_VALUE_CHARS",
    "METRICS",
    "NOT_SET",
    "PROPERTIES",
    "REALTIME_WINDOW",
    "VALUE",
    "Filter",
    "Property",
    "Totals",
    "aggregate",
    "aggregate_compared",
    "breakdown",
    "change",
    "check_metrics",
    "check_property",
    "divide_round",
    "has_data",
    "one_view",
    "parse_filters",
    "prefetch",
    "ratio",
    "realtime_visitors",
    "timeseries",
]

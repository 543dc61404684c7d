"""Everything one dashboard view shows, as plain data: build_report(site, period, filters).

The dashboard page, the shared dashboard, the CSV export and the email report
(dashboard/reports.py: the headline and two panels, no chart) all call build_report, so they can
never disagree on a number. It only reads, through dashboard.selectors: unfiltered, the rollup
tables only (HourlyTotal, DailyBreakdown; the exit-pages panel asks for exits alone, which the
rollup keeps); filtered, raw events and visits.

Comparisons: the headline changes compare a period still in progress by its elapsed part only
(up to the end of the current local hour) with the same part of the previous period (see
periods.compared_periods). The chart draws the whole current period (future buckets empty) and
the whole previous period as its faint line: the line shows how the previous period went on,
and the part drawn so far lines up bucket by bucket with the same part of the previous one.

Nothing here knows about requests, URLs or templates: the caller parses the query string into a
Period and filters, and turns a Report into HTML, CSV or an email.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dashboard import selectors
from dashboard.selectors import Filter, Property, divide_round
from dashboard.selectors.periods import Period, compared_periods, month_start
from sites.models import Site

PANEL_LIMIT = 9  # rows a panel shows on the page
EXPORT_LIMIT = 1000  # rows a panel holds in the CSV export

# The headline metrics, in the order shown.
HEADLINE = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
METRIC_LABELS = {
    "visitors": "Unique visitors",
    "visits": "Total visits",
    "pageviews": "Total pageviews",
    "views_per_visit": "Views per visit",
    "bounce_rate": "Bounce rate",
    "visit_duration": "Visit duration",
    "events": "Events",
}
# Lower is better for these: a fall is shown as good news.
LOWER_IS_BETTER = frozenset({"bounce_rate"})

VISIT_COLUMNS = ("visitors", "visits", "pageviews", "bounce_rate", "visit_duration")
PERCENT = "percentage"
CONVERSION = "conversion_rate"
VALUE = selectors.VALUE  # the custom events' values, in cents
COLUMN_LABELS = {
    "visitors": "Visitors",
    "visits": "Visits",
    "pageviews": "Pageviews",
    "bounce_rate": "Bounce rate",
    "visit_duration": "Visit duration",
    "events": "Events",
    PERCENT: "%",
    CONVERSION: "CR",
    VALUE: "Value",
}


@dataclass(frozen=True)
class PanelSpec:
    """One breakdown panel: which property, which columns (the page shows `shown` of them)."""

    key: str
    title: str
    prop: str
    heading: str  # the value column's heading
    columns: tuple[str, ...]
    shown: tuple[str, ...]
    labels: tuple[tuple[str, str], ...] = ()  # column heading overrides, e.g. visits -> Entrances

    @property
    def property(self) -> Property:
        return selectors.PROPERTIES[self.prop]

    def column_label(self, column: str) -> str:
        return dict(self.labels).get(column, COLUMN_LABELS[column])


PANELS: tuple[PanelSpec, ...] = (
    PanelSpec("sources", "Top sources", "visit:source", "Source", VISIT_COLUMNS, ("visitors",)),
    PanelSpec("referrers", "Referrers", "visit:referrer", "Referrer", VISIT_COLUMNS, ("visitors",)),
    PanelSpec(
        "pages", "Top pages", "event:page", "Page", ("visitors", "pageviews", "bounce_rate", "visit_duration"),
        ("visitors", "pageviews"),
    ),
    PanelSpec(
        "entry_pages", "Entry pages", "visit:entry_page", "Entry page", VISIT_COLUMNS, ("visitors", "visits"),
        (("visits", "Entrances"),),
    ),
    # Exits only: the rollup keeps exits (visits ending on the page) per page and day, nothing else.
    PanelSpec(
        "exit_pages", "Exit pages", "visit:exit_page", "Exit page", ("visits",), ("visits",), (("visits", "Exits"),)
    ),
    PanelSpec("utm_sources", "UTM sources", "visit:utm_source", "UTM source", VISIT_COLUMNS, ("visitors",)),
    PanelSpec("utm_mediums", "UTM mediums", "visit:utm_medium", "UTM medium", VISIT_COLUMNS, ("visitors",)),
    PanelSpec("utm_campaigns", "UTM campaigns", "visit:utm_campaign", "UTM campaign", VISIT_COLUMNS, ("visitors",)),
    PanelSpec("countries", "Countries", "visit:country", "Country", (*VISIT_COLUMNS, PERCENT), ("visitors", PERCENT)),
    PanelSpec("browsers", "Browsers", "visit:browser", "Browser", (*VISIT_COLUMNS, PERCENT), ("visitors", PERCENT)),
    PanelSpec(
        "operating_systems", "Operating systems", "visit:os", "Operating system", (*VISIT_COLUMNS, PERCENT),
        ("visitors", PERCENT),
    ),
    PanelSpec("devices", "Devices", "visit:device", "Device", (*VISIT_COLUMNS, PERCENT), ("visitors", PERCENT)),
    PanelSpec(
        "events", "Custom events", "event:name", "Event", ("visitors", "events", CONVERSION, VALUE),
        ("visitors", "events", CONVERSION, VALUE),
        (("visitors", "Uniques"),),
    ),
)  # fmt: skip
PANELS_BY_KEY = {spec.key: spec for spec in PANELS}


@dataclass
class Metric:
    """A headline number: value and its change against the previous period (None: not comparable)."""

    key: str
    label: str
    value: int | float
    change: int | None = None

    @property
    def lower_is_better(self) -> bool:
        return self.key in LOWER_IS_BETTER


@dataclass
class Row:
    """One row of a panel. `label` as shown; `value` as a filter takes it (the same text)."""

    label: str
    numbers: dict[str, int | float]
    bar: int = 0  # visitors (exits) as a percentage of the panel's top row, for the bar behind the label


@dataclass
class Panel:
    spec: PanelSpec
    rows: list[Row]
    more: bool = False  # there are more rows than the limit

    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def title(self) -> str:
        return self.spec.title


@dataclass
class Report:
    """What a dashboard view shows. `series` has one dict per chart bucket
    ({"date": "2026-11-20", "visitors": 4, ...}); `previous_series` is aligned with it
    (same index = same position in the previous period; None where it has no bucket)."""

    site: Site
    period: Period
    interval: str
    filters: list[Filter]
    compare: bool
    metrics: list[Metric]
    series: list[dict[str, Any]]
    previous_period: Period | None = None
    previous_series: list[dict[str, Any] | None] = field(default_factory=list)
    panels: list[Panel] = field(default_factory=list)

    def metric(self, key: str) -> Metric:
        return next(m for m in self.metrics if m.key == key)

    def panel(self, key: str) -> Panel:
        return next(p for p in self.panels if p.key == key)

    @property
    def is_empty(self) -> bool:
        """Nothing at all in this period (with these filters)."""
        return not any(m.value for m in self.metrics if m.key in ("visitors", "visits", "pageviews"))


def build_report(
    site: Site,
    period: Period,
    filters: str | Sequence[Filter] | None = None,
    *,
    compare: bool = True,
    interval: str | None = None,
    limit: int = PANEL_LIMIT,
    panels: Sequence[str] | None = None,
    chart: bool = True,
    now: dt.datetime | None = None,
) -> Report:
    """Headline metrics (with changes when `compare`), the chart's series (and the previous
    period's, aligned), and every panel's top `limit` rows, for one site, period and filters.

    `filters` is the selectors' syntax (`visit:source==Google;event:page==/`) or parsed Filters;
    `interval` defaults to the period's (hour for a day, date up to ~3 months, month beyond);
    `panels` limits the panels built (keys of PANELS; default all); `chart=False` leaves the
    series empty (the email has no chart); `now` is the time a period in progress is compared up
    to (default: the site's current time). Raises ValueError on a bad filter or interval.
    Unfiltered, it reads only the rollup tables.
    """
    filters = selectors.parse_filters(filters) if filters is None or isinstance(filters, str) else list(filters)
    interval = period.check_interval(interval)
    with selectors.one_view():  # one view of the data: a read the page repeats is made once
        return _build_report(site, period, filters, compare, interval, limit, panels, chart, now)


def _build_report(
    site: Site,
    period: Period,
    filters: list[Filter],
    compare: bool,
    interval: str,
    limit: int,
    panels: Sequence[str] | None,
    chart: bool,
    now: dt.datetime | None,
) -> Report:
    specs = [spec for spec in PANELS if panels is None or spec.key in panels]
    # Every read below, announced (ClickHouse makes them one statement): the headline's daily
    # series of the period (and of the previous one), the chart's, the panels.
    headline_periods = compared_periods(period, now) if compare else (period,)
    asks = [(part, "date") for part in headline_periods]
    if chart:
        asks.append((period, interval))
        if compare:
            asks.append((chart_previous_period(period, interval), interval))
    breakdowns = [(s.property, _panel_metrics(s), limit + 1) for s in specs]
    selectors.prefetch(site, period, filters, breakdowns=breakdowns, series=asks)

    if compare:
        compared = selectors.aggregate_compared(site, period, HEADLINE, filters, now=now)
        metrics = [Metric(k, METRIC_LABELS[k], v["value"], v["change"]) for k, v in compared.items()]
    else:
        values = selectors.aggregate(site, period, HEADLINE, filters)
        metrics = [Metric(k, METRIC_LABELS[k], v) for k, v in values.items()]

    series = selectors.timeseries(site, period, HEADLINE, filters, interval) if chart else []
    report = Report(
        site=site, period=period, interval=interval, filters=filters, compare=compare, metrics=metrics, series=series
    )
    if compare and chart:
        report.previous_period = chart_previous_period(period, interval)
        previous = selectors.timeseries(site, report.previous_period, HEADLINE, filters, interval)
        report.previous_series = [previous[i] if i < len(previous) else None for i in range(len(series))]

    total_visitors = int(report.metric("visitors").value)
    for spec in specs:
        report.panels.append(_panel(site, period, filters, spec, limit, total_visitors))
    return report


def chart_previous_period(period: Period, interval: str) -> Period:
    """The period drawn as the chart's faint line: the previous period of equal length, except
    that a run of whole calendar months compares with the same number of months before it
    (so month buckets line up: 6 months against the 6 before, not 183 days). Always whole, also
    for a period in progress (see the module docstring)."""
    months = _whole_months(period)
    if interval == "month" and months:
        start = month_start(period.start, -months)
        return Period(start=start, end=period.start - dt.timedelta(days=1), tz=period.tz)
    return period.whole.previous()


def _whole_months(period: Period) -> int:
    """How many calendar months the period covers exactly, or 0 if it does not start on a 1st and end on a last day."""
    if period.start.day != 1 or (period.end + dt.timedelta(days=1)).day != 1:
        return 0
    end = period.end + dt.timedelta(days=1)
    return (end.year - period.start.year) * 12 + end.month - period.start.month


def _panel(
    site: Site, period: Period, filters: list[Filter], spec: PanelSpec, limit: int, total_visitors: int
) -> Panel:
    prop = spec.property
    metrics = _panel_metrics(spec)
    found = selectors.breakdown(site, period, prop, metrics, filters, limit=limit + 1)
    more = len(found) > limit
    found = found[:limit]
    sized_by = "visitors" if "visitors" in metrics else metrics[0]  # exit pages: by exits
    top = max((r[sized_by] for r in found), default=0)
    rows = []
    for found_row in found:
        label = found_row.pop(prop.short)
        numbers: dict[str, int | float] = {c: found_row[c] for c in metrics}
        if PERCENT in spec.columns:
            numbers[PERCENT] = divide_round(100 * found_row["visitors"], total_visitors)
        if CONVERSION in spec.columns:
            numbers[CONVERSION] = _percent_1(found_row["visitors"], total_visitors)
        rows.append(Row(label=label, numbers=numbers, bar=divide_round(100 * found_row[sized_by], top)))
    return Panel(spec=spec, rows=rows, more=more)


def _panel_metrics(spec: PanelSpec) -> list[str]:
    return [c for c in spec.columns if c in selectors.METRICS or c in spec.property.internal_metrics]


def _percent_1(part: int, whole: int) -> float:
    """part / whole in percent with one decimal (half up); 0.0 with nothing to divide by."""
    if whole <= 0:
        return 0.0
    return divide_round(1000 * part, whole) / 10

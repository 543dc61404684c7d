"""Stats reads for the Stats API and the dashboard. Reads only: nothing here writes a row.

Two paths answer every query:

- **Unfiltered** queries read the rollups only: HourlyTotal (site totals per local day and
  hour), DailyBreakdown (per local day, dimension and value) and MonthlyBreakdown (the same
  per local month: a breakdown reads the period's whole months there and only its other days
  from DailyBreakdown; see _rollup_breakdown). Their cost depends on the
  length of the period and the number of distinct values, never on the number of stored
  events. The one exception is the exit-page breakdown with metrics beyond `visits`: the
  rollup keeps only visits (exits) per exit page and day (no unique visitors, bounces or
  durations), so asked for exits alone (the dashboard's panel) it reads the rollup, sorted by
  exits; asked for anything else (a Stats API breakdown of visit:exit_page with visitors, say)
  it reads Visit rows (site, started).
- **Filtered** queries read raw Event rows of the period (site, ts index; UTC bounds of the
  site-local dates), joined to Visit by (site, visit_key) for visit-level filters, because
  only the first hit of a visit carries its referrer: visit attributes live on Visit.

Both paths count the same way as the collector (see collector/ingest.py):

- Unique visitors over a range are the **sum of daily unique visitors**. Visitor ids come
  from a salt that changes every day, so the same person on two days has two unrelated ids:
  a distinct count over several days would only look more precise. Per hour (hourly
  timeseries) it is the unique visitors of that hour.
- Visits, bounces and visit durations count on the local day and hour the visit started;
  pageviews and custom events at their own time.
- `events` counts custom events (not pageviews, not engagement reports).
  *Departure from Plausible*, whose `events` also counts pageviews.
- `value` (event:name breakdowns, internal to the dashboard) sums the custom events' values in
  cents: DailyBreakdown.value_sum unfiltered, Event.value filtered.
- bounce_rate = round(100 * bounces / visits), visit_duration = round(duration / visits)
  seconds (halves round up), views_per_visit = round(pageviews / visits, 2); 0 with no visits.

Comparisons (aggregate_compared) are with the previous period of the same number of days. A
period still in progress (it holds the site's current local time) compares only its elapsed
part, up to the end of the current local hour, with the same part of the previous period: today
until 09:59 against yesterday until 09:59 (periods.compared_periods). Both paths honour such a
cutoff (Period.cutoff): the rollups drop the hours after it, the raw path ends its UTC bounds
there. Timeseries honour it too; breakdowns always read whole days (the breakdown rollups are per day / month).

Filters (`property==value;property!=value`, `|` for OR inside a value, `\\|` for a literal
bar) select events; with a filter, visit metrics are those of the visits started in the
period that match the visit filters and have a matching event in the period.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
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
from django.utils import timezone

from collector.ingest import hash64
from collector.models import DailyBreakdown, Dimension, Event, HourlyTotal, MonthlyBreakdown, Visit
from collector.payload import ENGAGEMENT
from dashboard import periods
from dashboard.models import Site
from dashboard.periods import InvalidParameter, Period, compared_periods, local_midnight, month_start, quoted

PAGEVIEW = "pageview"
METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events")
DEFAULT_METRICS = ("visitors",)
REALTIME_WINDOW = dt.timedelta(minutes=5)
# Empty values shown to people: Plausible's label for no source, and one for anything else unknown.
DIRECT = "Direct / None"
NOT_SET = "(not set)"
# Which metrics the rollups can answer per event-level property (visit-level ones answer all).
EVENT_PAGE_METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
EVENT_NAME_METRICS = ("visitors", "visits", "events")
VISIT_METRICS = ("visits", "bounce_rate", "visit_duration", "views_per_visit")
# The custom events' value (cents, summed): event:name breakdowns only, and internal: the
# dashboard's events panel asks for it, the Stats API does not offer it (it is not in METRICS).
VALUE = "value"


@dataclass(frozen=True)
class Property:
    """A breakdown / filter property: its API name, short name, rollup dimension and raw column."""

    name: str
    short: str
    dim: str
    column: str  # on Event for event:*, on Visit for visit:*
    keep_empty: bool = True  # False: empty values are not rolled up (referrer, UTM)

    @property
    def is_visit(self) -> bool:
        return self.name.startswith("visit:")

    @property
    def metrics(self) -> tuple[str, ...]:
        if self.name == "event:page":
            return EVENT_PAGE_METRICS
        if self.name == "event:name":
            return EVENT_NAME_METRICS
        return METRICS

    @property
    def internal_metrics(self) -> tuple[str, ...]:
        """Metrics breakdown() answers for this property to the dashboard, beyond the Stats API's."""
        return (VALUE,) if self.name == "event:name" else ()

    @property
    def empty_label(self) -> str:
        return DIRECT if self.dim == Dimension.SOURCE else NOT_SET

    def label(self, value: str) -> str:
        return value or self.empty_label

    def raw(self, label: str) -> str:
        """A value as a client writes it in a filter -> as stored."""
        return "" if self.keep_empty and label == self.empty_label else label


PROPERTIES: dict[str, Property] = {
    p.name: p
    for p in (
        Property("event:page", "page", Dimension.PAGE, "path"),
        Property("event:name", "name", Dimension.EVENT, "name"),
        Property("visit:entry_page", "entry_page", Dimension.ENTRY_PAGE, "entry_path"),
        Property("visit:exit_page", "exit_page", Dimension.EXIT_PAGE, "exit_path"),
        Property("visit:source", "source", Dimension.SOURCE, "referrer_source"),
        Property("visit:referrer", "referrer", Dimension.REFERRER, "referrer", keep_empty=False),
        Property("visit:utm_source", "utm_source", Dimension.UTM_SOURCE, "utm_source", keep_empty=False),
        Property("visit:utm_medium", "utm_medium", Dimension.UTM_MEDIUM, "utm_medium", keep_empty=False),
        Property("visit:utm_campaign", "utm_campaign", Dimension.UTM_CAMPAIGN, "utm_campaign", keep_empty=False),
        Property("visit:device", "device", Dimension.DEVICE, "device"),
        Property("visit:browser", "browser", Dimension.BROWSER, "browser"),
        Property("visit:os", "os", Dimension.OS, "os"),
        Property("visit:country", "country", Dimension.COUNTRY, "country"),
    )
}


# -- parsing ----------------------------------------------------------------------------------
# Bad input raises periods.InvalidParameter, whose message is shown to the client.


def check_metrics(
    metrics: Iterable[str] | str | None, prop: Property | None = None, *, internal: bool = False
) -> tuple[str, ...]:
    """A comma list or sequence of metric names -> a tuple without duplicates, or InvalidParameter.
    `internal` also accepts the property's internal metrics (the dashboard's, not the API's)."""
    if metrics is None or metrics == "":
        metrics = DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = metrics.split(",")
    extra = prop.internal_metrics if internal and prop is not None else ()
    result: list[str] = []
    for metric in (m.strip() for m in metrics):
        if metric in extra:
            pass
        elif metric not in METRICS:
            raise InvalidParameter(f"unknown metric {quoted(metric)}: use any of {', '.join(METRICS)}")
        elif prop is not None and metric not in prop.metrics:
            raise InvalidParameter(f"metric {metric!r} is not available with property {prop.name!r}")
        if metric not in result:
            result.append(metric)
    return tuple(result)


def check_property(name: str | None) -> Property:
    prop = PROPERTIES.get((name or "").strip())
    if prop is None:
        if not name:
            raise InvalidParameter("property is required")
        raise InvalidParameter(f"unknown property {quoted(name)}: use one of {', '.join(PROPERTIES)}")
    return prop


@dataclass(frozen=True)
class Filter:
    prop: Property
    values: tuple[str, ...]  # as stored
    negate: bool = False

    def apply(self, rows: QuerySet) -> QuerySet:
        """The rows matching this filter, values compared exactly (case too, on MySQL as well)."""
        column = self.prop.column
        exact = f"{column}_exact"
        rows = rows.alias(**{exact: _binary(column)})
        if self.negate:
            return rows.exclude(**{f"{exact}__in": self.values})
        # The plain comparison as well lets MySQL use an index holding the column (event names).
        return rows.filter(**{f"{column}__in": self.values, f"{exact}__in": self.values})


# Every filter is a condition, and every alternative two SQL parameters: the caps keep any query
# small (without them 250 filters overflow SQLite's expression tree, and MySQL takes them all).
MAX_FILTERS = 10
MAX_FILTER_VALUES = 100  # alternatives (`a|b|c`) in one filter
MAX_VALUE_CHARS = 2000  # a value's length: as long as the longest URL the collector keeps
_FILTER = re.compile(r"^\s*([a-z_]+:[a-z_]+)\s*(==|!=)(.*)$", re.DOTALL)
_ALTERNATIVES = re.compile(r"(?<!\\)\|")  # a bar not escaped as \|


def parse_filters(text: str | None) -> list[Filter]:
    """`visit:source==Google;event:page==/pricing|/plans` -> [Filter, ...], or InvalidParameter.
    At most MAX_FILTERS filters of at most MAX_FILTER_VALUES values of 1 to MAX_VALUE_CHARS characters."""
    filters: list[Filter] = []
    for part in (text or "").split(";"):
        if not part.strip():
            continue
        if len(filters) == MAX_FILTERS:
            raise InvalidParameter(f"at most {MAX_FILTERS} filters at a time")
        match = _FILTER.match(part)
        shown = quoted(part.strip())
        if match is None:
            raise InvalidParameter(f"invalid filter {shown}: expected property==value or property!=value")
        name, operator, raw = match.groups()
        prop = PROPERTIES.get(name)
        if prop is None:
            raise InvalidParameter(f"unknown filter property {quoted(name)}: use one of {', '.join(PROPERTIES)}")
        values = _ALTERNATIVES.split(raw, maxsplit=MAX_FILTER_VALUES)
        if len(values) > MAX_FILTER_VALUES:
            raise InvalidParameter(f"invalid filter {shown}: at most {MAX_FILTER_VALUES} values separated by |")
        values = [v.replace("\\|", "|").strip() for v in values]
        if not all(values) or any(len(v) > MAX_VALUE_CHARS for v in values):
            raise InvalidParameter(f"invalid filter {shown}: every value must be 1 to {MAX_VALUE_CHARS} characters")
        filters.append(Filter(prop, tuple(prop.raw(v) for v in values), negate=operator == "!="))
    return filters


def _filters(filters: str | Sequence[Filter] | None) -> list[Filter]:
    if filters is None or isinstance(filters, str):
        return parse_filters(filters)
    return list(filters)


# -- numbers ----------------------------------------------------------------------------------


@dataclass
class Totals:
    """Additive sums; every reported metric derives from them."""

    visitors: int = 0
    visits: int = 0
    pageviews: int = 0
    bounces: int = 0
    duration: int = 0
    events: int = 0
    value_cents: int = 0  # the custom events' values (the VALUE metric)

    def add(self, other: Totals | dict[str, Any]) -> None:
        values = other if isinstance(other, dict) else vars(other)
        for name in ("visitors", "visits", "pageviews", "bounces", "duration", "events", "value_cents"):
            # MySQL hands sums back as Decimal, and a sum over no rows is None.
            setattr(self, name, getattr(self, name) + int(values.get(name) or 0))

    def metric(self, name: str) -> int | float:
        if name == "views_per_visit":
            return ratio(self.pageviews, self.visits)
        if name == "bounce_rate":
            return divide_round(100 * self.bounces, self.visits)
        if name == "visit_duration":
            return divide_round(self.duration, self.visits)
        if name == VALUE:
            return self.value_cents
        return getattr(self, name)

    def metrics(self, names: Iterable[str]) -> dict[str, int | float]:
        return {name: self.metric(name) for name in names}


def divide_round(numerator: int, denominator: int) -> int:
    """numerator / denominator rounded half up (exact integers, no float error); 0 if nothing to divide by."""
    if denominator <= 0:
        return 0
    return (2 * numerator + denominator) // (2 * denominator)


def ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator with two decimals (half up); 0.0 if nothing to divide by."""
    if denominator <= 0:
        return 0.0
    return float((Decimal(numerator) / Decimal(denominator)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP))


def change(metric: str, previous: int | float, current: int | float) -> int | None:
    """The `change` of a compared metric: percent change rounded half away from zero (Plausible);
    percentage points for bounce_rate; None when the previous value is 0."""
    if not previous:
        return None
    if metric == "bounce_rate":
        return int(current) - int(previous)
    value = (Fraction(str(current)) - Fraction(str(previous))) / Fraction(str(previous)) * 100
    rounded = int(abs(value) + Fraction(1, 2))
    return rounded if value >= 0 else -rounded


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
    """Pageviews and custom events of the period matching every filter."""
    start, end = period.utc_bounds()
    events = Event.objects.filter(site=site, ts__gte=start, ts__lt=end).exclude(name=ENGAGEMENT)
    for item in _event_filters(filters):
        events = item.apply(events)
    visit_filters = _visit_filters(filters)
    if visit_filters:
        visits = Visit.objects.filter(site_id=OuterRef("site_id"), visit_key=OuterRef("visit_key"))
        for item in visit_filters:
            visits = item.apply(visits)
        events = events.filter(Exists(visits))
    return events.order_by()


def _matching_visits(site: Site, period: Period, filters: list[Filter]) -> QuerySet:
    """Visits started in the period matching the visit filters, with a matching event if any event filter."""
    start, end = period.utc_bounds()
    visits = Visit.objects.filter(site=site, started__gte=start, started__lt=end)
    for item in _visit_filters(filters):
        visits = item.apply(visits)
    if _event_filters(filters):
        events = _matching_events(site, period, _event_filters(filters))
        visits = visits.filter(visit_key__in=events.values("visit_key"))
    return visits.order_by()


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
        for row in rows:
            buckets[row.pop("bucket")].add(row)
    if _needs_visits(metrics):
        rows = (
            _matching_visits(site, period, filters)
            .annotate(bucket=_bucket("started", boundaries))
            .values("bucket")
            .annotate(**{k: v for k, v in _VISIT_AGGREGATES.items() if k in ("visits", "bounces", "duration")})
        )
        for row in rows:
            buckets[row.pop("bucket")].add(row)
    return buckets


def _day_boundaries(period: Period) -> list[dt.datetime]:
    days = [*period.dates(), period.end + dt.timedelta(days=1)]
    return [local_midnight(day, period.tz) for day in days]


def _hour_starts(period: Period) -> list[tuple[dt.date, int]]:
    return [(day, hour) for day in period.dates() for hour in range(24)]


def _hour_boundaries(period: Period) -> list[dt.datetime]:
    """Start of each local wall-clock hour of the period (a skipped hour is an empty bucket, a
    repeated one a two-hour bucket, as in HourlyTotal), then the end of the period."""
    starts = [
        dt.datetime(day.year, day.month, day.day, hour, tzinfo=period.tz).astimezone(dt.UTC)
        for day, hour in _hour_starts(period)
    ]
    return [*starts, local_midnight(period.end + dt.timedelta(days=1), period.tz)]


# -- aggregate --------------------------------------------------------------------------------


def aggregate(
    site: Site, period: Period, metrics: Iterable[str] | str | None = None, filters: Any = None
) -> dict[str, int | float]:
    """Totals of the period: {"visitors": 4, "bounce_rate": 40, "views_per_visit": 1.4, ...}
    in the order the metrics were asked for. Raises ValueError on an unknown metric or filter."""
    metrics = check_metrics(metrics)
    filters = _filters(filters)
    return _aggregate_totals(site, period, metrics, filters).metrics(metrics)


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


def _aggregate_totals(site: Site, period: Period, metrics: Sequence[str], filters: list[Filter]) -> Totals:
    totals = Totals()
    if not filters:
        row = _hourly_totals(site, period).aggregate(**_hourly_sums())
        totals.add(row)
        return totals
    for bucket in _raw_buckets(site, period, filters, _day_boundaries(period), metrics):
        totals.add(bucket)
    return totals


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
    filters = _filters(filters)
    current_period, previous_period = compared_periods(period, now)
    current = _aggregate_totals(site, current_period, metrics, filters)
    previous = _aggregate_totals(site, previous_period, metrics, filters)
    return {
        name: {"value": current.metric(name), "change": change(name, previous.metric(name), current.metric(name))}
        for name in metrics
    }


# -- timeseries -------------------------------------------------------------------------------


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
    filters = _filters(filters)
    interval = period.check_interval(interval)

    if interval == "hour":
        keys: list[Any] = _hour_starts(period)
        if filters:
            fine = dict(zip(keys, _raw_buckets(site, period, filters, _hour_boundaries(period), metrics), strict=True))
        else:
            fine = defaultdict(Totals)
            rows = (
                _hourly_totals(site, period)
                .values("day", "hour", "visitors", "visits", "pageviews", "bounces", "duration", "events")
                .order_by()
            )
            for row in rows:
                fine[(row.pop("day"), row.pop("hour"))].add(row)
        return [
            {"date": f"{day.isoformat()} {hour:02d}:00:00", **fine[(day, hour)].metrics(metrics)} for day, hour in keys
        ]

    days = period.dates()
    if filters:
        daily = dict(zip(days, _raw_buckets(site, period, filters, _day_boundaries(period), metrics), strict=True))
    else:
        daily = defaultdict(Totals)
        rows = _hourly_totals(site, period).values("day").annotate(**_hourly_sums()).order_by()
        for row in rows:
            daily[row.pop("day")].add(row)
    if interval == "date":
        return [{"date": day.isoformat(), **daily[day].metrics(metrics)} for day in days]
    months: dict[dt.date, Totals] = {}
    for day in days:
        months.setdefault(day.replace(day=1), Totals()).add(daily[day])
    return [{"date": month.isoformat(), **totals.metrics(metrics)} for month, totals in months.items()]


# -- breakdown --------------------------------------------------------------------------------


@dataclass
class _Row:
    value: str
    totals: Totals = field(default_factory=Totals)
    entry: Totals | None = None  # event:page: the visits that entered on the page


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
    prop = property if isinstance(property, Property) else check_property(property)
    metrics = check_metrics(metrics, prop, internal=True)
    filters = _filters(filters)
    if limit < 1 or page < 1:
        raise ValueError("limit and page must be positive")
    offset = (page - 1) * limit
    period = period.whole  # DailyBreakdown is per day: a breakdown always reads whole days
    # Exit pages asked for exits (visits) only: the rollup has them, sorted by them.
    exits_only = prop.dim == Dimension.EXIT_PAGE and metrics == ("visits",)
    order = "visits" if exits_only else "visitors"

    if not filters and (prop.dim != Dimension.EXIT_PAGE or exits_only):
        rows = _rollup_breakdown(site, period, prop, offset, limit, order)
    else:
        rows = _raw_breakdown(site, period, prop, filters)
        rows.sort(key=lambda row: (-getattr(row.totals, order), row.value))
        rows = rows[offset : offset + limit]
    if prop.name == "event:page" and {"bounce_rate", "visit_duration"} & set(metrics):
        _add_entries(site, period, filters, rows)

    result = []
    for row in rows:
        numbers = row.totals.metrics(metrics)
        if row.entry is not None:
            for name in ("bounce_rate", "visit_duration"):
                if name in numbers:
                    numbers[name] = row.entry.metric(name)
        result.append({prop.short: prop.label(row.value), **numbers})
    return result


def _rollup_breakdown(
    site: Site, period: Period, prop: Property, offset: int, limit: int, order: str = "visitors"
) -> list[_Row]:
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
    unique keys, not a scan of the range."""
    qn = connection.ops.quote_name
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
        selects.append(f"SELECT {columns} FROM {qn(model._meta.db_table)} WHERE {where}")
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


def _rollup_rows(site: Site, period: Period, dim: str, hashes: Sequence[int]) -> dict[int, _Row]:
    """value_hash -> _Row (label and totals of the period) of these hashes, summed in Python from
    their monthly and daily rows: point lookups on the unique keys, a few rows each. (`value` is
    read even where only numbers are needed: without it the covering index would hold every
    column, and MariaDB 10.11 then prefers `ref` on its (site, dim) prefix, a scan of the site's
    whole dimension, to the point lookups.)"""
    found: dict[int, _Row] = {}
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
                    row = found[value_hash] = _Row(value=value)
                row.totals.add(dict(zip(names, numbers, strict=True)))
    return found


def _raw_breakdown(site: Site, period: Period, prop: Property, filters: list[Filter]) -> list[_Row]:
    """Every value's totals from raw rows, grouped per local day first (visitors are daily uniques)."""
    by_value: dict[str, _Row] = {}
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
        by_value.setdefault(value, _Row(value=value)).totals.add(_visit_row(row) if prop.is_visit else row)
    return [row for row in by_value.values() if row.totals.visitors > 0]


def _add_entries(site: Site, period: Period, filters: list[Filter], rows: list[_Row]) -> None:
    """Attach to each page row the totals of the visits that entered on that page."""
    if not rows:
        return
    entries: dict[str, Totals] = defaultdict(Totals)
    if filters:
        found = (
            _matching_visits(site, period, filters)
            .filter(entry_path__in=[row.value for row in rows])
            .annotate(group=_binary("entry_path"))
            .values("group")
            .annotate(**{k: v for k, v in _VISIT_AGGREGATES.items() if k in ("visits", "bounces", "duration")})
        )
        for row in found:
            entries[row.pop("group")].add(row)
    else:
        hashes = {hash64(row.value): row.value for row in rows}  # the rollup's own key function
        for value_hash, found in _rollup_rows(site, period, Dimension.ENTRY_PAGE, list(hashes)).items():
            totals = found.totals
            entries[hashes[value_hash]].add(
                {"visits": totals.visits, "bounces": totals.bounces, "duration": totals.duration}
            )
    for row in rows:
        row.entry = entries[row.value]


# -- realtime ---------------------------------------------------------------------------------


def realtime_visitors(site: Site, now: dt.datetime | None = None) -> int:
    """Distinct visitors with any hit (engagement reports included) in the last 5 minutes."""
    now = now or timezone.now()
    events = Event.objects.filter(site=site, ts__gte=now - REALTIME_WINDOW, ts__lte=now)
    return events.aggregate(n=Count("visitor_id", distinct=True))["n"] or 0

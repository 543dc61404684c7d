"""The metric and property catalogue of the Stats API and the dashboard, and the checks of
metric and property names a client sends. Bad input raises periods.InvalidParameter, whose
message is shown to the client."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from collector.models import Dimension
from dashboard.selectors.periods import InvalidParameter, quoted

METRICS = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration", "events")
DEFAULT_METRICS = ("visitors",)
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
    """A breakdown / filter property: its API name, short name, rollup dimension and raw columns.

    `column` holds the value on the row the property belongs to (Event for event:*, Visit for
    visit:*); `event_column` on an event row, which carries its visit's attributes (see
    collector.models.Event), so any filter but the exit page is a condition on the event alone.
    None for visit:exit_page: the exit page is not known when an event is written, so an
    exit-page filter looks the visits up."""

    name: str
    short: str
    dim: str
    column: str
    event_column: str | None
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
        Property("event:page", "page", Dimension.PAGE, "path", "path"),
        Property("event:name", "name", Dimension.EVENT, "name", "name"),
        Property("visit:entry_page", "entry_page", Dimension.ENTRY_PAGE, "entry_path", "entry_path"),
        Property("visit:exit_page", "exit_page", Dimension.EXIT_PAGE, "exit_path", None),
        Property("visit:source", "source", Dimension.SOURCE, "referrer_source", "visit_source"),
        Property("visit:referrer", "referrer", Dimension.REFERRER, "referrer", "visit_referrer", keep_empty=False),
        Property(
            "visit:utm_source", "utm_source", Dimension.UTM_SOURCE, "utm_source", "visit_utm_source", keep_empty=False
        ),
        Property(
            "visit:utm_medium", "utm_medium", Dimension.UTM_MEDIUM, "utm_medium", "visit_utm_medium", keep_empty=False
        ),
        Property(
            "visit:utm_campaign",
            "utm_campaign",
            Dimension.UTM_CAMPAIGN,
            "utm_campaign",
            "visit_utm_campaign",
            keep_empty=False,
        ),
        Property("visit:device", "device", Dimension.DEVICE, "device", "device"),
        Property("visit:browser", "browser", Dimension.BROWSER, "browser", "browser"),
        Property("visit:os", "os", Dimension.OS, "os", "os"),
        Property("visit:country", "country", Dimension.COUNTRY, "country", "country"),
    )
}


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

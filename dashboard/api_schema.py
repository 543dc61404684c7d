"""The OpenAPI description of the Stats API (drf-spectacular): parameters, response shapes,
errors and the Bearer scheme. dashboard/api.py applies the `*_schema` decorators below; they
change the schema only, never what a view does.

The shapes here are a contract: dashboard/tests/test_api_schema.py validates real answers of
the API against them, so a field the API adds or renames without a line here fails a test.
"""

from __future__ import annotations

from typing import Any

from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import (
    OpenApiExample,
    OpenApiParameter,
    OpenApiResponse,
    extend_schema,
    extend_schema_view,
)
from rest_framework import serializers

from dashboard.selectors import (
    DEFAULT_METRICS,
    MAX_FILTER_VALUES,
    MAX_FILTERS,
    MAX_VALUE_CHARS,
    METRICS,
    PROPERTIES,
)
from dashboard.selectors.periods import DEFAULT_PERIOD, INTERVALS, MAX_RANGE_DAYS, MAX_YEAR, MIN_YEAR, PERIODS

# Keep in step with dashboard/api.py (a test checks the numbers against the views' answers).
DEFAULT_LIMIT, MAX_LIMIT, MAX_PAGE = 100, 1000, 100_000
TAG = "Stats API"
PATH_PREFIX = "/api/v1/stats/"


def only_stats_api(endpoints: list[tuple[Any, ...]], **kwargs: Any) -> list[tuple[Any, ...]]:
    """drf-spectacular preprocessing hook: keep the Stats API's endpoints only.

    The served schema (dashboard/schema_urls.py) already reads the Stats API's urlconf only;
    this hook lets `SPECTACULAR_SETTINGS["PREPROCESSING_HOOKS"]` make `manage.py spectacular`
    (which reads the root urlconf) agree with it should another DRF view appear elsewhere."""
    return [endpoint for endpoint in endpoints if endpoint[0].startswith(PATH_PREFIX)]


# -- authentication ---------------------------------------------------------------------------


class ApiKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """`Authorization: Bearer <api key>` (dashboard.api.ApiKeyAuthentication)."""

    target_class = "dashboard.api.ApiKeyAuthentication"
    name = "bearerAuth"
    priority = 1

    def get_security_definition(self, auto_schema: Any) -> dict[str, Any]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": (
                "An API key (from a site's settings page, or `manage.py createapikey USER`): "
                "`Authorization: Bearer fk_...`. "
                "A key reads the sites its owner can view: owned ones and those shared as a teammate. "
                "A signed-in browser session works too."
            ),
        }


# -- response shapes --------------------------------------------------------------------------

METRIC_HELP = {
    "visitors": "Unique visitors: the sum of daily unique visitors (unique per hour with interval=hour).",
    "visits": "Visits (sessions) started in the period.",
    "pageviews": "Pageviews.",
    "views_per_visit": "Pageviews per visit, two decimals.",
    "bounce_rate": "Percent of visits with at most one pageview and no interactive event (0-100).",
    "visit_duration": "Average visit duration in seconds.",
    "events": "Custom events (pageviews and engagement reports are not counted).",
}
CHANGE_HELP = (
    "Change against the previous period of the same length, in percent rounded half away from "
    "zero (percentage points for bounce_rate); null when the previous value is 0. "
    "Present only with compare=previous_period."
)


class StatsErrorSerializer(serializers.Serializer):
    error = serializers.CharField(help_text="What was wrong, fit to show a person.")


class CountValueSerializer(serializers.Serializer):
    value = serializers.IntegerField()
    change = serializers.IntegerField(allow_null=True, required=False, help_text=CHANGE_HELP)


class RatioValueSerializer(serializers.Serializer):
    value = serializers.FloatField()
    change = serializers.IntegerField(allow_null=True, required=False, help_text=CHANGE_HELP)


def _metric_field(name: str) -> serializers.Field:
    """A metric's number in a timeseries or breakdown row: present when it was asked for."""
    if name == "views_per_visit":
        return serializers.FloatField(required=False, help_text=METRIC_HELP[name])
    return serializers.IntegerField(required=False, help_text=METRIC_HELP[name])


def _aggregate_field(name: str) -> serializers.Field:
    value = RatioValueSerializer if name == "views_per_visit" else CountValueSerializer
    return value(required=False, help_text=METRIC_HELP[name])


class AggregateResultsSerializer(serializers.Serializer):
    """One entry per requested metric, in the order asked for."""

    visitors = _aggregate_field("visitors")
    visits = _aggregate_field("visits")
    pageviews = _aggregate_field("pageviews")
    views_per_visit = _aggregate_field("views_per_visit")
    bounce_rate = _aggregate_field("bounce_rate")
    visit_duration = _aggregate_field("visit_duration")
    events = _aggregate_field("events")


class AggregateResponseSerializer(serializers.Serializer):
    results = AggregateResultsSerializer()


class TimeseriesRowSerializer(serializers.Serializer):
    """One bucket; every bucket of the period is present (zeros where nothing happened)."""

    date = serializers.CharField(
        help_text="Start of the bucket in the site's time zone: `YYYY-MM-DD HH:00:00` (interval hour), "
        "`YYYY-MM-DD` (date) or `YYYY-MM-01` (month)."
    )
    visitors = _metric_field("visitors")
    visits = _metric_field("visits")
    pageviews = _metric_field("pageviews")
    views_per_visit = _metric_field("views_per_visit")
    bounce_rate = _metric_field("bounce_rate")
    visit_duration = _metric_field("visit_duration")
    events = _metric_field("events")


class TimeseriesResponseSerializer(serializers.Serializer):
    results = TimeseriesRowSerializer(many=True)


class BreakdownRowSerializer(serializers.Serializer):
    """One value of the property, keyed by the property's short name, then the requested metrics.
    event:page's bounce_rate and visit_duration are those of the visits that entered on the page."""

    page = serializers.CharField(required=False, help_text="Path (property=event:page).")
    name = serializers.CharField(required=False, help_text="Custom event name (property=event:name).")
    entry_page = serializers.CharField(required=False, help_text="Entry path (property=visit:entry_page).")
    exit_page = serializers.CharField(required=False, help_text="Exit path (property=visit:exit_page).")
    source = serializers.CharField(
        required=False, help_text="Source, e.g. Google; 'Direct / None' without one (property=visit:source)."
    )
    referrer = serializers.CharField(required=False, help_text="Referrer host and path (property=visit:referrer).")
    utm_source = serializers.CharField(required=False, help_text="property=visit:utm_source.")
    utm_medium = serializers.CharField(required=False, help_text="property=visit:utm_medium.")
    utm_campaign = serializers.CharField(required=False, help_text="property=visit:utm_campaign.")
    device = serializers.CharField(
        required=False, help_text="Mobile, Tablet, Laptop or Desktop; '(not set)' if unknown (property=visit:device)."
    )
    browser = serializers.CharField(required=False, help_text="'(not set)' if unknown (property=visit:browser).")
    os = serializers.CharField(required=False, help_text="'(not set)' if unknown (property=visit:os).")
    country = serializers.CharField(
        required=False, help_text="ISO 3166-1 alpha-2 code; '(not set)' if unknown (property=visit:country)."
    )
    visitors = _metric_field("visitors")
    visits = _metric_field("visits")
    pageviews = _metric_field("pageviews")
    views_per_visit = _metric_field("views_per_visit")
    bounce_rate = _metric_field("bounce_rate")
    visit_duration = _metric_field("visit_duration")
    events = _metric_field("events")


class BreakdownResponseSerializer(serializers.Serializer):
    results = BreakdownRowSerializer(many=True)


# -- parameters -------------------------------------------------------------------------------

SITE_ID = OpenApiParameter(
    "site_id",
    str,
    required=True,
    description="The site's domain (as in Plausible) or its public id.",
    examples=[OpenApiExample("Domain", value="example.com"), OpenApiExample("Public id", value="K7QX4M2P")],
)
PERIOD = OpenApiParameter(
    "period",
    str,
    enum=PERIODS,
    default=DEFAULT_PERIOD,
    description=(
        "Range of days in the site's time zone: `day` (the day `date`), `7d` / `30d` (ending with "
        "`date`), `month` (the calendar month holding `date`), `6mo` / `12mo` (calendar months "
        "ending with the month of `date`), `custom` (`date=YYYY-MM-DD,YYYY-MM-DD`, both inclusive)."
    ),
)
DATE = OpenApiParameter(
    "date",
    str,
    description=(
        "`YYYY-MM-DD`, the day the period ends on or holds (default: today in the site's time "
        f"zone); with period=custom the range `YYYY-MM-DD,YYYY-MM-DD`, at most {MAX_RANGE_DAYS} days "
        f"(about four years). Years {MIN_YEAR} to {MAX_YEAR}; ASCII digits only."
    ),
    examples=[
        OpenApiExample("A day", value="2026-11-20"),
        OpenApiExample("A custom range", value="2026-11-01,2026-11-30"),
    ],
)


def metrics_parameter(allowed: tuple[str, ...] = METRICS, note: str = "") -> OpenApiParameter:
    return OpenApiParameter(
        "metrics",
        str,
        many=True,
        style="form",
        explode=False,
        enum=allowed,
        default=list(DEFAULT_METRICS),
        description="Comma-separated metrics, e.g. `visitors,pageviews,bounce_rate`." + note,
    )


FILTERS = OpenApiParameter(
    "filters",
    str,
    description=(
        "`property==value` or `property!=value`, several joined by `;` (all must match); `|` "
        "separates alternatives inside a value (`\\|` for a literal bar). Properties: "
        + ", ".join(f"`{name}`" for name in PROPERTIES)
        + f". At most {MAX_FILTERS} filters, {MAX_FILTER_VALUES} alternatives in one filter, and values of "
        f"1 to {MAX_VALUE_CHARS} characters; more is a 400. "
        "Filtered queries read raw events and are slower than unfiltered ones."
    ),
    examples=[
        OpenApiExample("One source", value="visit:source==Google"),
        OpenApiExample("Two pages from the US", value="event:page==/pricing|/plans;visit:country==US"),
    ],
)
COMPARE = OpenApiParameter(
    "compare",
    str,
    enum=["previous_period"],
    description="Add `change` to each metric: against the period of the same length just before.",
)
INTERVAL = OpenApiParameter(
    "interval",
    str,
    enum=INTERVALS,
    description=(
        "Bucket size. Default: `hour` for a one-day period, `date` up to 93 days, `month` beyond. "
        "`hour` is refused for periods over 31 days."
    ),
)
PROPERTY = OpenApiParameter(
    "property",
    str,
    required=True,
    enum=list(PROPERTIES),
    description="What to break the numbers down by. Rows are keyed by its short name (`event:page` -> `page`).",
)
LIMIT = OpenApiParameter(
    "limit",
    {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT},
    default=DEFAULT_LIMIT,
    description="Rows per page.",
)
PAGE = OpenApiParameter(
    "page",
    {"type": "integer", "minimum": 1, "maximum": MAX_PAGE},
    default=1,
    description="1-based page number.",
)


# -- responses --------------------------------------------------------------------------------


def _error(description: str, name: str, example: str) -> OpenApiResponse:
    return OpenApiResponse(
        StatsErrorSerializer,
        description=description,
        examples=[OpenApiExample(name, value={"error": example})],
    )


ERRORS: dict[int, OpenApiResponse] = {
    400: _error(
        "A missing or invalid parameter, or a parameter given more than once.",
        "Unknown metric",
        "unknown metric 'sessions': use any of " + ", ".join(METRICS),
    ),
    401: _error("No credentials, or an unknown or revoked API key.", "Unknown key", "invalid API key"),
    404: _error(
        "No such site, or a site the key's owner may not view (the two look the same on purpose).",
        "Unknown site",
        "site 'example.org' not found",
    ),
    429: _error(
        "Over the rate limit (`API_RATE` per user: all of a user's keys and their session share it); "
        "retry after `Retry-After` seconds.",
        "Rate limited",
        "rate limited, retry later",
    ),
}
RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    int,
    location=OpenApiParameter.HEADER,
    response=[429],
    description="Seconds to wait before retrying.",
)
AUTH_NOTE = (
    '\n\nAuthenticate with `Authorization: Bearer <api key>`. Errors are `{"error": "..."}` '
    "with status 400 (bad parameter), 401 (no or bad key), 404 (unknown site) or 429 (rate limited: "
    "one quota per user, whichever key or session they use)."
)


def _operation(
    operation_id: str, summary: str, description: str, parameters: list[OpenApiParameter], ok: OpenApiResponse
) -> Any:
    return extend_schema_view(
        get=extend_schema(
            operation_id=operation_id,
            summary=summary,
            description=description + AUTH_NOTE,
            tags=[TAG],
            parameters=[*parameters, RETRY_AFTER],
            responses={200: ok, **ERRORS},
        )
    )


realtime_visitors_schema = _operation(
    "stats_realtime_visitors",
    "Current visitors",
    "Unique visitors with any hit in the last 5 minutes, as a bare JSON integer.\n\n"
    "```\ncurl -H \"Authorization: Bearer $KEY\" 'https://HOST/api/v1/stats/realtime/visitors?site_id=example.com'\n"
    "```",
    [SITE_ID],
    OpenApiResponse(
        OpenApiTypes.INT,
        description="Visitors in the last 5 minutes.",
        examples=[OpenApiExample("Three visitors", value=3)],
    ),
)

aggregate_schema = _operation(
    "stats_aggregate",
    "Totals of a period",
    "The period's totals for each requested metric, optionally compared with the previous "
    "period of the same length (`change`). Without filters the numbers come from the rollups.\n\n"
    '```\ncurl -H "Authorization: Bearer $KEY" \\\n'
    "  'https://HOST/api/v1/stats/aggregate?site_id=example.com&period=7d"
    "&metrics=visitors,pageviews,bounce_rate&compare=previous_period'\n```",
    [SITE_ID, PERIOD, DATE, metrics_parameter(), FILTERS, COMPARE],
    OpenApiResponse(
        AggregateResponseSerializer,
        description="`results` holds one entry per requested metric.",
        examples=[
            OpenApiExample(
                "Totals",
                value={"results": {"visitors": {"value": 4}, "views_per_visit": {"value": 1.4}}},
            ),
            OpenApiExample(
                "Compared with the previous period",
                value={
                    "results": {
                        "visitors": {"value": 4, "change": 100},
                        "bounce_rate": {"value": 40, "change": -10},
                        "events": {"value": 2, "change": None},
                    }
                },
            ),
        ],
    ),
)

timeseries_schema = _operation(
    "stats_timeseries",
    "Numbers over time",
    "One row per hour, day or month of the period, every bucket present (zeros where nothing "
    "happened), in the site's time zone.\n\n"
    '```\ncurl -H "Authorization: Bearer $KEY" \\\n'
    "  'https://HOST/api/v1/stats/timeseries?site_id=example.com&period=30d&interval=date&metrics=visitors'\n```",
    [SITE_ID, PERIOD, DATE, metrics_parameter(), FILTERS, INTERVAL],
    OpenApiResponse(
        TimeseriesResponseSerializer,
        description="`results`: the buckets in time order.",
        examples=[
            OpenApiExample(
                "By date",
                value={
                    "results": [
                        {"date": "2026-11-19", "visitors": 2, "pageviews": 3},
                        {"date": "2026-11-20", "visitors": 4, "pageviews": 7},
                    ]
                },
            ),
            OpenApiExample(
                "By hour",
                value={"results": [{"date": "2026-11-20 09:00:00", "visitors": 1, "pageviews": 2}]},
            ),
        ],
    ),
)

breakdown_schema = _operation(
    "stats_breakdown",
    "Numbers per page, source, country, ...",
    "The period's numbers per value of a property, most visitors first (ties by value), one "
    "page of `limit` rows at a time. `event:name` answers visitors, visits and events only; "
    "`event:page` all but events.\n\n"
    '```\ncurl -H "Authorization: Bearer $KEY" \\\n'
    "  'https://HOST/api/v1/stats/breakdown?site_id=example.com&period=30d&property=visit:source"
    "&metrics=visitors,bounce_rate&limit=10'\n```",
    [
        SITE_ID,
        PERIOD,
        DATE,
        PROPERTY,
        metrics_parameter(note=" With event:name: visitors, visits, events only; with event:page: all but events."),
        FILTERS,
        LIMIT,
        PAGE,
    ],
    OpenApiResponse(
        BreakdownResponseSerializer,
        description="`results`: one row per value, keyed by the property's short name.",
        examples=[
            OpenApiExample(
                "Pages",
                value={
                    "results": [
                        {"page": "/", "visitors": 4, "pageviews": 4, "bounce_rate": 25},
                        {"page": "/pricing", "visitors": 1, "pageviews": 1, "bounce_rate": 0},
                    ]
                },
            ),
            OpenApiExample(
                "Sources",
                value={"results": [{"source": "Google", "visitors": 2}, {"source": "Direct / None", "visitors": 1}]},
            ),
        ],
    ),
)

"""The Stats API (Plausible Stats API v1 shapes) under /api/v1/stats/.

Each view parses its query parameters, calls one selector and shapes the answer. Errors are
always `{"error": "..."}`: 400 bad parameters, 401 missing / unknown / revoked key, 404 unknown
site or a site the caller may not read (the two are indistinguishable on purpose), 429 over
the rate limit (with Retry-After). No parameter makes a 5xx: a value is checked before any
query runs (periods.InvalidParameter, whose message is shown), a parameter an endpoint reads
may be given once only, and filters are capped (selectors.MAX_FILTERS and friends) so that no
query string builds an unbounded SQL statement.

Authentication: `Authorization: Bearer <key>` (see dashboard.api_keys), or a signed-in session.
Rate limit: settings.API_RATE per user (default 600/h), shared by all of that user's keys and
their signed-in session, so that minting more keys buys no more requests. Fails open when the
cache is down (read-only answers, unlike a password check). Shared links are limited apart, per
address and link (dashboard/views/stats/share.py).
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.exceptions import SuspiciousOperation
from django.http import Http404, HttpResponse
from rest_framework.authentication import BaseAuthentication, SessionAuthentication
from rest_framework.exceptions import APIException, AuthenticationFailed, ValidationError
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.permissions import IsAuthenticated
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from dashboard import access, api_schema, selectors
from dashboard.api_keys import apikey_find, apikey_touch
from dashboard.models import ApiKey
from dashboard.selectors.periods import InvalidParameter, Period, parse_period, quoted
from security.guards import Limited, check_limit, too_many
from sites.models import Site

log = logging.getLogger(__name__)

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
MAX_PAGE = 100_000  # keeps the SQL offset a sane number
# What a key can be made of (dashboard.api_keys: fk_ + URL-safe base64); anything else is no key,
# and is never hashed (a lone surrogate cannot even be encoded).
_KEY_CHARS = re.compile(r"[A-Za-z0-9_-]{1,200}")
_DIGITS = re.compile(r"[0-9]+")  # ASCII only: str.isdigit() also takes '²' and '٣'


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer <key>`. No header: not this scheme (the session may still sign in)."""

    keyword = "bearer"

    def authenticate(self, request: Request) -> tuple[Any, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "").strip()
        if not header:
            return None
        scheme, _, token = header.partition(" ")
        if scheme.lower() != self.keyword:
            return None
        token = token.strip()
        if not token or " " in token:
            raise AuthenticationFailed("invalid Authorization header: expected 'Bearer <api key>'")
        if not _KEY_CHARS.fullmatch(token):
            raise AuthenticationFailed("invalid API key")
        key = apikey_find(token)
        if key is None or not key.user.is_active:
            raise AuthenticationFailed("invalid API key")
        if key.revoked_at is not None:
            raise AuthenticationFailed("this API key has been revoked")
        apikey_touch(key=key)
        return key.user, key

    def authenticate_header(self, request: Request) -> str:
        # Makes DRF answer 401 (not 403) when no credentials came.
        return 'Bearer realm="stats"'


class RateLimited(APIException):
    status_code = 429

    def __init__(self, limited: Limited) -> None:
        super().__init__("rate limited, retry later")
        self.limited = limited


class _JSONOnly(BaseContentNegotiation):
    """Always JSON, whatever the Accept header says (no 406 for a browser or a bare curl)."""

    def select_renderer(self, request: Request, renderers: list[Any], format_suffix: str | None = None) -> Any:
        return renderers[0], renderers[0].media_type

    def select_parser(self, request: Request, parsers: list[Any]) -> Any:
        return parsers[0] if parsers else None


def error_response(exc: Exception, context: dict[str, Any]) -> HttpResponse | None:
    """Every handled error as {"error": "..."}; None lets DRF re-raise (a 500 for a real bug)."""
    if isinstance(exc, RateLimited):
        return too_many(exc.limited)
    if isinstance(exc, Http404):
        return Response({"error": str(exc) or "not found"}, status=404)
    if isinstance(exc, SuspiciousOperation):  # e.g. more query parameters than Django parses
        return Response({"error": "invalid request: too many or malformed query parameters"}, status=400)
    if not isinstance(exc, APIException):
        return None
    detail = exc.detail
    if isinstance(detail, list):
        detail = detail[0] if detail else ""
    elif isinstance(detail, dict):
        detail = next(iter(detail.values()), "")
    response = Response({"error": str(detail)}, status=exc.status_code)
    if getattr(exc, "auth_header", None):
        response["WWW-Authenticate"] = exc.auth_header
    return response


class BadRequest(ValidationError):
    pass


@dataclass
class Query:
    site: Site
    params: dict[str, str]

    def get(self, name: str, default: str = "") -> str:
        return self.params.get(name, default).strip()

    def period(self) -> Period:
        return parse_period(self.get("period") or None, self.get("date") or None, self.site.tz)

    def limit_and_page(self) -> tuple[int, int]:
        limit = _positive(self.get("limit") or str(DEFAULT_LIMIT), "limit", MAX_LIMIT)
        page = _positive(self.get("page") or "1", "page", MAX_PAGE)
        return limit, page


def _positive(text: str, name: str, maximum: int) -> int:
    """ASCII digits -> 1..maximum, or InvalidParameter (never Python's own words about int())."""
    if not _DIGITS.fullmatch(text) or not text.strip("0"):
        raise InvalidParameter(f"{name} must be a positive integer")
    # Compared as text first: int() refuses strings of more than 4,300 digits.
    if len(text.lstrip("0")) > len(str(maximum)) or int(text) > maximum:
        raise InvalidParameter(f"{name} must be at most {maximum}")
    return int(text)


class StatsView(APIView):
    authentication_classes = (ApiKeyAuthentication, SessionAuthentication)
    permission_classes = (IsAuthenticated,)
    renderer_classes = (JSONRenderer,)
    content_negotiation_class = _JSONOnly
    throttle_classes = ()
    http_method_names = ["get", "head"]
    # The query parameters the endpoint reads; others are ignored (as Plausible does).
    parameters: tuple[str, ...] = ("site_id",)

    def get_exception_handler(self) -> Any:
        return error_response

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication and permission
        # One quota per person: every key of theirs and their session count together.
        limited = check_limit(request, "stats-api-user", str(request.user.pk), settings.API_RATE, fail_open=True)
        if limited:
            raise RateLimited(limited)

    def get(self, request: Request) -> Response:
        repeated = [name for name in self.parameters if len(request.query_params.getlist(name)) > 1]
        if repeated:
            raise BadRequest(f"{repeated[0]} must be given once")
        site_id = request.query_params.get("site_id", "").strip()
        if not site_id:
            raise BadRequest("site_id is required")
        site = access.site_by_id(site_id)
        if site is None or not access.user_can_view(request.user, site):
            raise Http404(f"site {quoted(site_id)} not found")
        params = {name: request.query_params[name] for name in self.parameters if name in request.query_params}
        query = Query(site=site, params=params)
        try:
            answer = self.parse(query)
        except InvalidParameter as exc:
            raise BadRequest(str(exc))
        except ValueError:
            # A check that failed in a way nobody planned: a bug. Its words stay in the log.
            log.exception("stats api: a parameter check failed unexpectedly")
            raise BadRequest("invalid parameters")
        return Response(answer())

    def parse(self, query: Query) -> Any:
        """Validate the parameters (InvalidParameter -> 400); return a function running the query."""
        raise NotImplementedError


@api_schema.realtime_visitors_schema
class RealtimeVisitors(StatsView):
    """GET realtime/visitors?site_id= -> 3 (visitors in the last 5 minutes)."""

    parameters = ("site_id",)

    def parse(self, query: Query) -> Any:
        return lambda: selectors.realtime_visitors(query.site)


@api_schema.aggregate_schema
class Aggregate(StatsView):
    """GET aggregate?site_id=&period=&date=&metrics=&filters=&compare=previous_period
    -> {"results": {"visitors": {"value": 4, "change": 100}, ...}} ("change" only when compared)."""

    parameters = ("site_id", "period", "date", "metrics", "filters", "compare")

    def parse(self, query: Query) -> Any:
        period = query.period()
        metrics = selectors.check_metrics(query.get("metrics"))
        filters = selectors.parse_filters(query.get("filters"))
        compare = query.get("compare")
        if compare not in ("", "previous_period"):
            raise InvalidParameter(f"unknown compare {quoted(compare)}: only previous_period is supported")
        if compare:
            return lambda: {"results": selectors.aggregate_compared(query.site, period, metrics, filters)}

        def run() -> dict[str, Any]:
            values = selectors.aggregate(query.site, period, metrics, filters)
            return {"results": {name: {"value": value} for name, value in values.items()}}

        return run


@api_schema.timeseries_schema
class Timeseries(StatsView):
    """GET timeseries?site_id=&period=&date=&metrics=&filters=&interval=hour|date|month
    -> {"results": [{"date": "2026-11-20", "visitors": 4}, ...]}, every bucket present."""

    parameters = ("site_id", "period", "date", "metrics", "filters", "interval")

    def parse(self, query: Query) -> Any:
        period = query.period()
        metrics = selectors.check_metrics(query.get("metrics"))
        filters = selectors.parse_filters(query.get("filters"))
        interval = period.check_interval(query.get("interval") or None)
        return lambda: {"results": selectors.timeseries(query.site, period, metrics, filters, interval)}


@api_schema.breakdown_schema
class Breakdown(StatsView):
    """GET breakdown?site_id=&period=&date=&property=&metrics=&filters=&limit=&page=
    -> {"results": [{"page": "/", "visitors": 4}, ...]}, by visitors then value."""

    parameters = ("site_id", "period", "date", "property", "metrics", "filters", "limit", "page")

    def parse(self, query: Query) -> Any:
        period = query.period()
        prop = selectors.check_property(query.get("property"))
        metrics = selectors.check_metrics(query.get("metrics"), prop)
        filters = selectors.parse_filters(query.get("filters"))
        limit, page = query.limit_and_page()
        return lambda: {"results": selectors.breakdown(query.site, period, prop, metrics, filters, limit, page)}

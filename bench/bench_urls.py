"""The app's URLs plus /bench/bare: a view that does nothing, to measure what the stack costs.

Used by the collector benchmark with ROOT_URLCONF=bench.bench_urls. The bare view goes through the
same middleware as /api/event, so collector/bare is the share of the request spent in our view.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.urls import include, path
from django.views.decorators.csrf import csrf_exempt


@csrf_exempt
def bare(request: HttpRequest) -> HttpResponse:
    return HttpResponse(status=204)


urlpatterns = [
    path("bench/bare", bare, name="bench-bare"),
    path("", include("fathom.urls")),
]

"""The Stats API's OpenAPI schema (/api/schema/) and its Swagger UI (/api/docs/), mounted at /api/.

Both are public, as Plausible's API docs are: the schema describes the API and holds no data
(every operation still needs a key). No authentication runs, so no session or CSRF work either.
The Swagger UI's script and styles come from drf-spectacular-sidecar through our static files
(WhiteNoise), never from a CDN, and its start-up script from /api/docs/?script (no inline script).
"""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.permissions import AllowAny

# Only the Stats API goes into the schema, whatever other DRF views the project grows.
STATS_API_URLCONF = [path("api/v1/stats/", include("dashboard.api_urls"))]


class SchemaView(SpectacularAPIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    urlconf = STATS_API_URLCONF


class DocsView(SpectacularSwaggerSplitView):
    """The split view serves Swagger UI's start-up script from its own URL (?script): the page
    then runs no inline script, as the Content-Security-Policy requires (and no inline style:
    our template moves drf-spectacular's few rules to a static file)."""

    authentication_classes = ()
    permission_classes = (AllowAny,)
    url_name = "api-schema"
    title = "Fathom Stats API"
    template_name = "dashboard/api/swagger_ui.html"


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
]

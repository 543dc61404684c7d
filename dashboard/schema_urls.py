"""The Stats API's OpenAPI schema (/api/schema/) and its Swagger UI (/api/docs/), mounted at /api/.

Both are public, as Plausible's API docs are: the schema describes the API and holds no data
(every operation still needs a key). No authentication runs, so no session or CSRF work either.
The Swagger UI's script and styles come from drf-spectacular-sidecar through our static files
(WhiteNoise), never from a CDN.
"""

from __future__ import annotations

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView
from rest_framework.permissions import AllowAny

# Only the Stats API goes into the schema, whatever other DRF views the project grows.
STATS_API_URLCONF = [path("api/v1/stats/", include("dashboard.api_urls"))]


class SchemaView(SpectacularAPIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    urlconf = STATS_API_URLCONF


class DocsView(SpectacularSwaggerView):
    authentication_classes = ()
    permission_classes = (AllowAny,)
    url_name = "api-schema"
    title = "Fathom Stats API"


urlpatterns = [
    path("schema/", SchemaView.as_view(), name="api-schema"),
    path("docs/", DocsView.as_view(), name="api-docs"),
]

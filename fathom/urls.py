from __future__ import annotations

from django.contrib import admin
from django.urls import include, path

from fathom import health

urlpatterns = [
    path("", include("collector.urls")),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("security/", include("security.urls")),
    path("api/v1/stats/", include("dashboard.api_urls")),
    path("api/", include("dashboard.schema_urls")),
    path("accounts/", include("dashboard.account_urls")),
    path("", include("dashboard.site_urls")),
    path("", include("dashboard.stats_urls")),
]

handler400 = "fathom.errors.bad_request"
handler403 = "fathom.errors.permission_denied"
handler404 = "fathom.errors.page_not_found"
handler500 = "fathom.errors.server_error"

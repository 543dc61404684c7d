"""The site dashboard, shared dashboards, realtime counters and CSV exports (dashboard/views/stats.py)."""

from __future__ import annotations

from django.urls import path

from dashboard.views import stats

urlpatterns = [
    path("sites/<str:public_id>/", stats.site_dashboard, name="site_dashboard"),
    path("sites/<str:public_id>/export.zip", stats.site_export, name="site_export"),
    path("sites/<str:public_id>/realtime", stats.site_realtime, name="site_realtime"),
    path("share/<str:token>/", stats.share_dashboard, name="share_dashboard"),
    path("share/<str:token>/export.zip", stats.share_export, name="share_export"),
    path("share/<str:token>/realtime", stats.share_realtime, name="share_realtime"),
]

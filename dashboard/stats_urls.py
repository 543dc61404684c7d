"""The site dashboard, shared dashboards, realtime counters and CSV exports (dashboard/views/stats/)."""

from __future__ import annotations

from django.urls import path

from dashboard.views.stats import page, share

urlpatterns = [
    path("sites/<str:public_id>/", page.site_dashboard, name="site_dashboard"),
    path("sites/<str:public_id>/export.zip", page.site_export, name="site_export"),
    path("sites/<str:public_id>/realtime", page.site_realtime, name="site_realtime"),
    path("share/<str:token>/", share.share_dashboard, name="share_dashboard"),
    path("share/<str:token>/export.zip", share.share_export, name="share_export"),
    path("share/<str:token>/realtime", share.share_realtime, name="share_realtime"),
]

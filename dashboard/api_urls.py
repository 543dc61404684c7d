"""Stats API routes, mounted at /api/v1/stats/ (no trailing slashes, as Plausible's)."""

from __future__ import annotations

from django.urls import path

from dashboard import api

urlpatterns = [
    path("realtime/visitors", api.RealtimeVisitors.as_view(), name="stats-api-realtime-visitors"),
    path("aggregate", api.Aggregate.as_view(), name="stats-api-aggregate"),
    path("timeseries", api.Timeseries.as_view(), name="stats-api-timeseries"),
    path("breakdown", api.Breakdown.as_view(), name="stats-api-breakdown"),
]

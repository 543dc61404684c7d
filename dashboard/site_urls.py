from __future__ import annotations

from django.urls import path

from dashboard.views import sites

urlpatterns = [
    path("", sites.site_list, name="home"),
]

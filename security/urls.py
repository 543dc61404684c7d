from __future__ import annotations

from django.urls import path

from security import views

app_name = "security"

urlpatterns = [
    path("", views.index, name="index"),
    path("ban/", views.ban, name="ban"),
    path("flagged/", views.flagged_action, name="flagged_action"),
    path("unban/", views.unban, name="unban"),
]

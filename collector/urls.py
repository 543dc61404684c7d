from __future__ import annotations

from django.urls import path

from collector import views

urlpatterns = [
    path("script.js", views.script, name="script"),
    path("api/event", views.event, name="event"),
]

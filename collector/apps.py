from __future__ import annotations

from django.apps import AppConfig


class CollectorConfig(AppConfig):
    name = "collector"
    default_auto_field = "django.db.models.BigAutoField"

from __future__ import annotations

from django.apps import AppConfig


class SitesConfig(AppConfig):
    """The Site model and its cache: what both the write side (collector) and the read side
    (dashboard) need. Imports neither of them."""

    name = "sites"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Receivers connect when their module is imported, and a models-importing module can only
        # be imported once the app registry is ready: here, not at the top.
        from sites import signals  # noqa: F401  (site cache invalidation)

from __future__ import annotations

from typing import Any

from django.apps import AppConfig
from django.db.models.signals import post_migrate


def apply_clickhouse_migrations(sender: AppConfig, verbosity: int = 1, **kwargs: Any) -> None:
    """After `manage.py migrate` (and the test database setup, which runs it): apply the pending
    ClickHouse migrations. Nothing happens on the SQL backend."""
    # Inside the receiver: the runner imports the migration modules, which need the apps loaded.
    from analytics import migrator, store

    if store.kind() != "clickhouse":
        return
    for name in migrator.apply():
        if verbosity >= 1:
            print(f"  Applying ClickHouse migration {name}... OK")


class AnalyticsConfig(AppConfig):
    name = "analytics"

    def ready(self) -> None:
        post_migrate.connect(apply_clickhouse_migrations, sender=self, dispatch_uid="analytics.clickhouse_migrations")

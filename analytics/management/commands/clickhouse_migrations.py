"""List the ClickHouse migrations like `showmigrations` ([X] applied, [ ] pending); `--apply`
applies the pending ones; `--sql` prints the statements (for the configured ANALYTICS_CLUSTER,
or the one given with --cluster) without connecting."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from analytics import migrator, store


class Command(BaseCommand):
    help = "List (or --apply) the ClickHouse analytics migrations; --sql prints their statements."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--apply", action="store_true", help="apply the pending migrations")
        parser.add_argument("--sql", action="store_true", help="print the statements, connect to nothing")
        parser.add_argument("--cluster", default=None, help="with --sql: render for this cluster name")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["sql"]:
            cluster = store.cluster() if options["cluster"] is None else options["cluster"]
            for name, module in migrator.available():
                self.stdout.write(f"-- {name}")
                for sql in migrator.statements(module, cluster):
                    self.stdout.write(sql + ";\n")
            return
        if store.kind() != store.CLICKHOUSE:
            raise CommandError("ANALYTICS_URL does not name a ClickHouse store: no ClickHouse migrations to list")
        if options["apply"]:
            for name in migrator.apply():
                self.stdout.write(f"Applied {name}")
        done = migrator.applied()
        self.stdout.write("analytics (ClickHouse)")
        for name, _ in migrator.available():
            mark = "X" if name in done else " "
            self.stdout.write(f" [{mark}] {name}")

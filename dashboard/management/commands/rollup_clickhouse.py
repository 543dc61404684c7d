"""Roll up the complete days of every site into the ClickHouse rollups (scheduled every 10
minutes on the commands function; docs/architecture.md, "Analytics store (ClickHouse): rollups").
With the Django database as the analytics store there is nothing to do: ingest keeps its rollups."""

from __future__ import annotations

from django.core.management.base import BaseCommand

from dashboard.selectors.backends import clickhouse_rollups


class Command(BaseCommand):
    help = "Roll up complete local days into the ClickHouse rollups (unfiltered dashboard views read them)."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--budget",
            type=float,
            default=240.0,
            help="seconds to work (default 240: the commands function stops at 300); the next run goes on",
        )

    def handle(self, *args, **options) -> None:
        from analytics import store  # at call time: the store is chosen by settings

        if store.kind() != "clickhouse":
            self.stdout.write("The analytics store is the Django database (ANALYTICS_URL unset): nothing to roll up.")
            return
        for site_id, days in clickhouse_rollups.roll_all(budget=options["budget"]).items():
            if days is None:
                self.stdout.write(f"site {site_id}: up to date")
            else:
                self.stdout.write(f"site {site_id}: rolled up {days[0]} to {days[1]}")

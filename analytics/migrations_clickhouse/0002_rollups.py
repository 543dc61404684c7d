"""Daily rollups of complete local days, written by `manage.py rollup_clickhouse` (the
commands function runs it every 10 minutes) and read by the stats backend for unfiltered views
(dashboard/selectors/backends/clickhouse_rollups.py; docs/architecture.md, "Analytics store
(ClickHouse): rollups").

- `rollup_totals`: per site, local day and local hour: unique visitors of the hour, visitors
  first seen that day in that hour (summed over a day's hours: its unique visitors, also up to
  a cutoff hour), visits/bounces/duration by the hour the visit started, pageviews and custom
  events by their own hour.
- `rollup_breakdowns`: per site, property (`visit:source`, `event:page`, ...), local day and
  value: the numbers every breakdown panel reads, each the same sum the raw tables give for
  that day (visitors unique per day).
- `rollup_months`: rollup_breakdowns summed per local month, for the months whose every day
  is rolled up (a 12-month breakdown reads 12 rows per value instead of 365).
- `rollup_sites`: per site, the zone its days were cut in and the last day rolled up.

All four are ReplacingMergeTree(version): a day rolled up again (late hits) replaces its rows
key by key; readers use FINAL. Sharded by site on a cluster (a site's rows meet on one shard,
so FINAL sees every version of a key)."""

from __future__ import annotations

from analytics.schema import CreateTable

SUMS = (
    ("visits", "Int64"),
    ("bounces", "Int64"),
    ("duration", "Int64"),
    ("pageviews", "Int64"),
    ("events", "Int64"),
)

OPERATIONS = [
    CreateTable(
        name="rollup_totals",
        columns=(
            ("site_id", "UInt64"),
            ("day", "Date"),
            ("hour", "UInt8"),
            ("visitors", "Int64"),
            ("new_visitors", "Int64"),
            *SUMS,
            ("version", "UInt64"),
        ),
        engine="ReplacingMergeTree",
        engine_args=("version",),
        order_by="(site_id, day, hour)",
        sharding_key="cityHash64(site_id)",
    ),
    *(
        CreateTable(
            name=name,
            columns=(
                ("site_id", "UInt64"),
                ("property", "LowCardinality(String)"),
                (period, "Date"),
                ("value", "String"),
                ("visitors", "Int64"),
                *SUMS,
                ("value_cents", "Int64"),
                ("version", "UInt64"),
            ),
            engine="ReplacingMergeTree",
            engine_args=("version",),
            partition_by=partition_by,
            order_by=f"(site_id, property, {period}, value)",
            sharding_key="cityHash64(site_id)",
        )
        # the days (partitioned by month), and the same sums per month
        for name, period, partition_by in (
            ("rollup_breakdowns", "day", "toYYYYMM(day)"),
            ("rollup_months", "month", ""),
        )
    ),
    CreateTable(
        name="rollup_sites",
        columns=(
            ("site_id", "UInt64"),
            ("tz", "String"),
            ("rolled_until", "Date"),
            ("version", "UInt64"),
        ),
        engine="ReplacingMergeTree",
        engine_args=("version",),
        order_by="site_id",
        sharding_key="cityHash64(site_id)",
    ),
]

"""The events and sessions tables (docs/architecture.md, "Analytics store (ClickHouse)").

Both are sharded by the visitor on a cluster: a visit's cancel and state rows must meet on one
shard to collapse, and its events land beside them."""

from __future__ import annotations

from analytics.schema import CreateTable

LC = "LowCardinality(String)"
TS = "DateTime64(3, 'UTC')"

OPERATIONS = [
    CreateTable(
        name="events",
        columns=(
            ("site_id", "UInt64"),
            ("hit_id", "String"),
            ("ts", TS),
            ("visitor_id", "Int64"),
            ("visit_key", "Int64"),
            ("name", LC),
            ("path", "String"),
            ("hostname", "String"),
            # the hit's own referrer and UTM values (as collector_event)
            ("referrer", "String"),
            ("referrer_source", "String"),
            ("utm_source", "String"),
            ("utm_medium", "String"),
            ("utm_campaign", "String"),
            ("utm_content", "String"),
            ("utm_term", "String"),
            # the visit's attributes, copied onto each of its events: any filter is one scan
            ("entry_path", "String"),
            ("visit_source", "String"),
            ("visit_referrer", "String"),
            ("visit_utm_source", "String"),
            ("visit_utm_medium", "String"),
            ("visit_utm_campaign", "String"),
            ("browser", LC),
            ("os", LC),
            ("device", LC),
            ("country", LC),
            ("value", "Nullable(Int64)"),  # cents
            ("prop_keys", "Array(String)"),
            ("prop_values", "Array(String)"),
            ("scroll_depth", "Nullable(Int16)"),
            ("engaged_ms", "Nullable(Int32)"),
        ),
        engine="MergeTree",
        partition_by="toYYYYMM(ts)",
        order_by="(site_id, toDate(ts), name, visitor_id, ts)",
        sharding_key="cityHash64(visitor_id)",
    ),
    CreateTable(
        name="sessions",
        columns=(
            ("site_id", "UInt64"),
            ("visit_key", "Int64"),
            ("visitor_id", "Int64"),
            ("sign", "Int8"),
            ("version", "UInt32"),
            ("started", TS),
            ("last_seen", TS),
            ("pageviews", "UInt32"),
            ("events", "UInt32"),
            ("interactive", "UInt8"),
            ("engaged_ms", "UInt64"),
            ("entry_path", "String"),
            ("exit_path", "String"),
            ("referrer", "String"),
            ("referrer_source", "String"),
            ("utm_source", "String"),
            ("utm_medium", "String"),
            ("utm_campaign", "String"),
            ("browser", LC),
            ("os", LC),
            ("device", LC),
            ("country", LC),
        ),
        engine="VersionedCollapsingMergeTree",
        engine_args=("sign", "version"),
        partition_by="toYYYYMM(started)",
        order_by="(site_id, toDate(started), visitor_id, visit_key)",
        sharding_key="cityHash64(visitor_id)",
    ),
]

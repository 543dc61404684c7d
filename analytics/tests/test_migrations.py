"""ClickHouse migrations: applied for real on chdb (one node); the cluster DDL, which no cluster
here can run, checked as text and parsed by the engine."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.core.management import call_command
from django.test import override_settings

from analytics import migrator, store
from analytics.schema import AddColumn, CreateTable, RunSQL, render

CONTRACT_EVENTS = (
    "site_id UInt64, hit_id String, ts DateTime64(3, 'UTC'), visitor_id Int64, visit_key Int64,"
    " name LowCardinality(String), path String, hostname String, referrer String, referrer_source String,"
    " utm_source String, utm_medium String, utm_campaign String, utm_content String, utm_term String,"
    " entry_path String, visit_source String, visit_referrer String, visit_utm_source String,"
    " visit_utm_medium String, visit_utm_campaign String, browser LowCardinality(String),"
    " os LowCardinality(String), device LowCardinality(String), country LowCardinality(String),"
    " value Nullable(Int64), prop_keys Array(String), prop_values Array(String),"
    " scroll_depth Nullable(Int16), engaged_ms Nullable(Int32)"
)
CONTRACT_SESSIONS = (
    "site_id UInt64, visit_key Int64, visitor_id Int64, sign Int8, version UInt32,"
    " started DateTime64(3, 'UTC'), last_seen DateTime64(3, 'UTC'), pageviews UInt32, events UInt32,"
    " interactive UInt8, engaged_ms UInt64, entry_path String, exit_path String, referrer String,"
    " referrer_source String, utm_source String, utm_medium String, utm_campaign String,"
    " browser LowCardinality(String), os LowCardinality(String), device LowCardinality(String),"
    " country LowCardinality(String)"
)


def columns_of(client: Any, table: str) -> str:
    rows = client.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = %(t)s ORDER BY position",
        parameters={"t": table},
    ).result_rows
    return ", ".join(f"{name} {type_}" for name, type_ in rows)


def test_the_tables_are_those_of_the_contract(clickhouse_store: Any) -> None:
    assert columns_of(clickhouse_store, "events") == CONTRACT_EVENTS
    assert columns_of(clickhouse_store, "sessions") == CONTRACT_SESSIONS
    engines = dict(
        clickhouse_store.query(
            "SELECT name, engine_full FROM system.tables WHERE database = currentDatabase()"
        ).result_rows
    )
    assert engines["events"].startswith("MergeTree PARTITION BY toYYYYMM(ts) ORDER BY (site_id, toDate(ts), name")
    assert engines["sessions"].startswith("VersionedCollapsingMergeTree(sign, version) PARTITION BY toYYYYMM(started)")
    assert "non_replicated_deduplication_window = 1000" in engines["events"]


def test_migrate_applies_them_once_and_lists_them(clickhouse_store: Any, db: Any) -> None:
    clickhouse_store.command(f"TRUNCATE TABLE {migrator.MIGRATIONS_TABLE}")
    clickhouse_store.command("DROP TABLE sessions")
    clickhouse_store.command("DROP TABLE rollup_months")
    out = io.StringIO()
    call_command("clickhouse_migrations", stdout=out)
    assert out.getvalue().splitlines() == ["analytics (ClickHouse)", " [ ] 0001_initial", " [ ] 0002_rollups"]

    call_command("migrate", verbosity=0)  # the post_migrate hook: what every deploy step runs
    assert columns_of(clickhouse_store, "sessions") == CONTRACT_SESSIONS
    assert columns_of(clickhouse_store, "rollup_months").startswith("site_id UInt64, property LowCardinality(String)")
    out = io.StringIO()
    call_command("clickhouse_migrations", "--apply", stdout=out)  # nothing left to apply
    assert out.getvalue().splitlines() == ["analytics (ClickHouse)", " [X] 0001_initial", " [X] 0002_rollups"]
    names = clickhouse_store.query(f"SELECT name FROM {migrator.MIGRATIONS_TABLE} ORDER BY name").result_rows
    assert names == [("0001_initial",), ("0002_rollups",)]


def test_migrate_touches_no_clickhouse_on_the_sql_backend(db: Any, settings: Any, monkeypatch: Any) -> None:
    settings.ANALYTICS_URL = ""
    monkeypatch.setattr(store, "client", lambda: pytest.fail("the SQL backend connected to ClickHouse"))
    call_command("migrate", verbosity=0)


def test_the_site_tables_are_those_the_migrations_create() -> None:
    assert set(store.SITE_TABLES) == set(migrator.tables())


def test_single_node_ddl() -> None:
    name, module = migrator.available()[0]
    sql = migrator.statements(module)
    assert name == "0001_initial"
    assert len(sql) == 2
    assert sql[0].startswith("CREATE TABLE IF NOT EXISTS `events` (\n    `site_id` UInt64,")
    assert "ON CLUSTER" not in "".join(sql)
    assert "ENGINE = VersionedCollapsingMergeTree(sign, version)" in sql[1]


def test_cluster_ddl() -> None:
    _, module = migrator.available()[0]
    events_local, events, sessions_local, sessions = migrator.statements(module, "fathom")
    assert events_local.startswith("CREATE TABLE IF NOT EXISTS `events_local` ON CLUSTER `fathom` (\n")
    assert (
        "ENGINE = ReplicatedMergeTree('/clickhouse/tables/{shard}/{database}/events_local', '{replica}')\n"
        "PARTITION BY toYYYYMM(ts)\nORDER BY (site_id, toDate(ts), name, visitor_id, ts)\n"
        "SETTINGS replicated_deduplication_window = 1000"
    ) in events_local
    assert events == (
        "CREATE TABLE IF NOT EXISTS `events` ON CLUSTER `fathom` AS `events_local`\n"
        "ENGINE = Distributed(`fathom`, currentDatabase(), `events_local`, cityHash64(visitor_id))"
    )
    assert (
        "ENGINE = ReplicatedVersionedCollapsingMergeTree("
        "'/clickhouse/tables/{shard}/{database}/sessions_local', '{replica}', sign, version)"
    ) in sessions_local
    assert sessions.endswith("Distributed(`fathom`, currentDatabase(), `sessions_local`, cityHash64(visitor_id))")


def test_cluster_ddl_parses(clickhouse_store: Any) -> None:
    """No cluster here to run it on: the engine's own parser checks every statement."""
    for _, module in migrator.available():
        for sql in [*migrator.statements(module, "fathom"), *render(migrator.LEDGER, "fathom")]:
            formatted = clickhouse_store.query("SELECT formatQuerySingleLine(%(q)s)", parameters={"q": sql})
            assert "ON CLUSTER fathom" in formatted.result_rows[0][0]


def test_other_operations_render_for_both_layouts() -> None:
    add = AddColumn("events", "channel", "LowCardinality(String)", after="visit_source")
    assert render(add) == [
        "ALTER TABLE `events` ADD COLUMN IF NOT EXISTS `channel` LowCardinality(String) AFTER `visit_source`"
    ]
    assert render(add, "c") == [
        "ALTER TABLE `events_local` ON CLUSTER `c` ADD COLUMN IF NOT EXISTS `channel` LowCardinality(String)"
        " AFTER `visit_source`",
        "ALTER TABLE `events` ON CLUSTER `c` ADD COLUMN IF NOT EXISTS `channel` LowCardinality(String)"
        " AFTER `visit_source`",
    ]
    raw = RunSQL(("ALTER TABLE sessions{local}{on_cluster} MODIFY TTL toDate(started) + INTERVAL 5 YEAR",))
    assert render(raw) == ["ALTER TABLE sessions MODIFY TTL toDate(started) + INTERVAL 5 YEAR"]
    assert render(raw, "c") == [
        "ALTER TABLE sessions_local ON CLUSTER `c` MODIFY TTL toDate(started) + INTERVAL 5 YEAR"
    ]
    table = CreateTable("t", (("a", "UInt8"),), engine="MergeTree", order_by="a")
    assert render(table)[0].endswith(
        "ENGINE = MergeTree()\nORDER BY a\nSETTINGS non_replicated_deduplication_window = 1000"
    )


def test_sql_option_prints_the_cluster_ddl_without_connecting(settings: Any) -> None:
    settings.ANALYTICS_URL = ""
    out = io.StringIO()
    with override_settings(ANALYTICS_CLUSTER="fathom"):
        call_command("clickhouse_migrations", "--sql", stdout=out)
    assert "CREATE TABLE IF NOT EXISTS `sessions` ON CLUSTER `fathom` AS `sessions_local`" in out.getvalue()

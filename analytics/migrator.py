"""Apply the versioned ClickHouse migrations (analytics/migrations_clickhouse/) and list them.

Applied ones are recorded in the ClickHouse table `analytics_migrations` (name, applied at).
`manage.py migrate` applies the pending ones (post_migrate hook, so every deploy step and the
test database setup do it too); `manage.py clickhouse_migrations` lists them, `--apply` applies.
Two processes migrating at once are harmless: every statement is IF NOT EXISTS, and a name
recorded twice is still one applied migration.
"""

from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType

from analytics import migrations_clickhouse, store
from analytics.schema import CreateTable, render, table_names

MIGRATIONS_TABLE = "analytics_migrations"
LEDGER = CreateTable(
    name=MIGRATIONS_TABLE,
    columns=(("name", "String"), ("applied", "DateTime64(3, 'UTC') DEFAULT now64(3)")),
    engine="MergeTree",
    order_by="name",
    sharding_key="cityHash64(name)",
)


def available() -> list[tuple[str, ModuleType]]:
    """Every migration module, in order of its name (NNNN_...)."""
    names = sorted(
        info.name
        for info in pkgutil.iter_modules(migrations_clickhouse.__path__)
        if info.name[:4].isdigit() and not info.ispkg
    )
    return [(name, importlib.import_module(f"{migrations_clickhouse.__name__}.{name}")) for name in names]


def statements(module: ModuleType, cluster: str = "") -> list[str]:
    """The SQL of one migration, for one node (cluster "") or the named cluster."""
    return [sql for op in module.OPERATIONS for sql in render(op, cluster)]


def _ensure_ledger() -> None:
    client = store.client()
    for sql in render(LEDGER, store.cluster()):
        client.command(sql)


def applied() -> set[str]:
    _ensure_ledger()
    return {row[0] for row in store.client().query(f"SELECT DISTINCT name FROM {MIGRATIONS_TABLE}").result_rows}


def apply() -> list[str]:
    """Apply the pending migrations in order; return their names."""
    done = applied()
    client = store.client()
    cluster = store.cluster()
    settings = {"distributed_foreground_insert": 1} if cluster else None
    newly = []
    for name, module in available():
        if name in done:
            continue
        for sql in statements(module, cluster):
            client.command(sql)
        client.insert(MIGRATIONS_TABLE, [(name,)], column_names=["name"], settings=settings)
        newly.append(name)
    return newly


def tables() -> list[str]:
    """The tables the migrations create (plain names; on a cluster, the Distributed ones)."""
    return [name for _, module in available() for name in table_names(module.OPERATIONS)]

"""ClickHouse migration operations, described once and rendered for one node or for a cluster.

A migration lists operations (CreateTable, AddColumn, RunSQL). `render(op, cluster)` turns one
into SQL statements:

- one node (cluster ""): `CREATE TABLE IF NOT EXISTS events (...) ENGINE = MergeTree ...`;
- a cluster (settings.ANALYTICS_CLUSTER = "name"): every statement runs `ON CLUSTER name`; the
  data lives in `events_local`, a Replicated*MergeTree per shard (replicas share the ZooKeeper /
  Keeper path `/clickhouse/tables/{shard}/{database}/events_local`, the `{shard}` and `{replica}`
  macros come from each server's config), and `events` is a Distributed table over them, sharded
  by the operation's sharding key. Queries and inserts use the plain names in both layouts.

Every statement is idempotent (IF NOT EXISTS), so a migration interrupted half way is applied
again from its start.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOCAL_SUFFIX = "_local"
# Insert deduplication window (blocks remembered per table) for `insert_deduplication_token`:
# a redelivered batch whose INSERT already went through is dropped by the server.
DEDUP_WINDOW = 1000
REPLICA = "'{replica}'"  # the server's {replica} macro


@dataclass(frozen=True)
class CreateTable:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, ClickHouse type)
    engine: str  # "MergeTree" or "VersionedCollapsingMergeTree"
    order_by: str
    engine_args: tuple[str, ...] = ()  # e.g. ("sign", "version")
    partition_by: str = ""
    sharding_key: str = "rand()"
    settings: dict[str, str | int] = field(default_factory=dict)


@dataclass(frozen=True)
class AddColumn:
    table: str
    column: str
    type: str
    after: str = ""


@dataclass(frozen=True)
class RunSQL:
    """Raw statements. `{on_cluster}` becomes ` ON CLUSTER name` (or nothing) and `{local}` the
    suffix of the tables that hold the data ("_local" on a cluster, "" on one node)."""

    statements: tuple[str, ...]


def _q(name: str) -> str:
    return f"`{name}`"


def _on(cluster: str) -> str:
    return f" ON CLUSTER {_q(cluster)}" if cluster else ""


def render(op: CreateTable | AddColumn | RunSQL, cluster: str = "") -> list[str]:
    """The SQL statements of one operation, for one node (cluster "") or the named cluster."""
    if isinstance(op, CreateTable):
        return _create(op, cluster)
    if isinstance(op, AddColumn):
        after = f" AFTER {_q(op.after)}" if op.after else ""
        column = f"ADD COLUMN IF NOT EXISTS {_q(op.column)} {op.type}{after}"
        if not cluster:
            return [f"ALTER TABLE {_q(op.table)} {column}"]
        return [
            f"ALTER TABLE {_q(op.table + LOCAL_SUFFIX)}{_on(cluster)} {column}",
            f"ALTER TABLE {_q(op.table)}{_on(cluster)} {column}",
        ]
    if isinstance(op, RunSQL):
        local = LOCAL_SUFFIX if cluster else ""
        return [sql.format(on_cluster=_on(cluster), local=local) for sql in op.statements]
    raise TypeError(f"unknown migration operation {type(op).__name__}")


def _create(op: CreateTable, cluster: str) -> list[str]:
    columns = ",\n    ".join(f"{_q(name)} {type_}" for name, type_ in op.columns)
    if cluster:
        local = op.name + LOCAL_SUFFIX
        path = f"'/clickhouse/tables/{{shard}}/{{database}}/{local}'"
        engine = f"Replicated{op.engine}({', '.join((path, REPLICA, *op.engine_args))})"
        dedup = {"replicated_deduplication_window": DEDUP_WINDOW}
    else:
        local = op.name
        engine = f"{op.engine}({', '.join(op.engine_args)})"
        dedup = {"non_replicated_deduplication_window": DEDUP_WINDOW}
    settings = {**dedup, **op.settings}
    tail = "".join(
        (
            f"\nPARTITION BY {op.partition_by}" if op.partition_by else "",
            f"\nORDER BY {op.order_by}",
            "\nSETTINGS " + ", ".join(f"{key} = {value}" for key, value in settings.items()),
        )
    )
    statements = [f"CREATE TABLE IF NOT EXISTS {_q(local)}{_on(cluster)} (\n    {columns}\n)\nENGINE = {engine}{tail}"]
    if cluster:
        statements.append(
            f"CREATE TABLE IF NOT EXISTS {_q(op.name)}{_on(cluster)} AS {_q(local)}\n"
            f"ENGINE = Distributed({_q(cluster)}, currentDatabase(), {_q(local)}, {op.sharding_key})"
        )
    return statements


def table_names(operations: list) -> list[str]:
    """The tables the operations create (plain names)."""
    return [op.name for op in operations if isinstance(op, CreateTable)]

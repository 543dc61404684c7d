"""The ClickHouse side of bench/ingest_bench.py (--analytics-url): the time and CPU of each
statement of ingest_batch, and the same-run baseline, a bare column-oriented INSERT of the same
rows into a table created AS events (docs/benchmarks.md, section 2b)."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

from bench.ingest_data import new_hit_id

CLICKHOUSE_TARGETS = {1000: 20_000, 10000: 50_000}  # issue 11
BASELINE_TABLE = "bench_events_baseline"
BASELINE_TYPES: list[str] = []  # its column types, in EVENT_COLUMNS order


class ClickHouseTimer:
    """Wraps the store client's query and insert: time inside clickhouse-connect (and the engine)
    per statement kind."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.seconds: Counter[str] = Counter()
        self.cpu: Counter[str] = Counter()  # process CPU (every thread) during the call
        self.thread_cpu: Counter[str] = Counter()  # this thread's CPU: what the call itself costs
        self.calls: Counter[str] = Counter()
        self._query, self._insert = client.query, client.insert

    def _timed(self, kind: str, call: Any, *args: Any, **kwargs: Any) -> Any:
        cpu, own, start = time.process_time(), time.thread_time(), time.perf_counter()
        try:
            return call(*args, **kwargs)
        finally:
            self.seconds[kind] += time.perf_counter() - start
            self.cpu[kind] += time.process_time() - cpu
            self.thread_cpu[kind] += time.thread_time() - own
            self.calls[kind] += 1

    def __enter__(self) -> ClickHouseTimer:
        self.client.query = lambda *a, **k: self._timed("SELECT", self._query, *a, **k)
        self.client.insert = lambda table, *a, **k: self._timed(f"INSERT {table}", self._insert, table, *a, **k)
        return self

    def __exit__(self, *exc: Any) -> None:
        del self.client.query, self.client.insert


def clickhouse_baseline_columns(hits: list[dict[str, Any]]) -> list[list[Any]]:
    """The hits as `events` columns (fresh hit ids, each hit its own visit), built untimed."""
    from collector.ingest_clickhouse import EVENT_COLUMNS

    rows = []
    for hit in hits:
        utm = hit.get("utm") or ["", "", "", "", ""]
        props = hit.get("props") or {}
        src, ref = hit.get("src", ""), hit.get("ref", "")
        rows.append(
            (
                hit["site"],
                new_hit_id(hit["ts"]),
                hit["ts"],
                hit["vid"],
                hit["vid"],
                hit["n"],
                hit["p"],
                hit.get("host", ""),
                ref,
                src,
                *utm,
                hit["p"],
                src,
                ref,
                *utm[:3],
                hit.get("b", ""),
                hit.get("os", ""),
                hit.get("dev", ""),
                hit.get("cc", ""),
                hit.get("v"),
                list(props),
                list(props.values()),
                hit.get("sd"),
                hit.get("e"),
            )
        )
    columns = [list(column) for column in zip(*rows, strict=True)]
    assert len(columns) == len(EVENT_COLUMNS)
    return columns


def clickhouse_baseline_insert(columns: list[list[Any]]) -> tuple[float, float]:
    """One bare column-oriented INSERT of prepared columns: (seconds, process CPU seconds)."""
    from analytics import store
    from collector.ingest_clickhouse import EVENT_COLUMNS

    client = store.client()
    if not BASELINE_TYPES:  # once, untimed: the bare INSERT then needs no DESCRIBE TABLE
        described = {row[0]: row[1] for row in client.query(f"DESCRIBE TABLE {BASELINE_TABLE}").result_rows}
        BASELINE_TYPES.extend(described[column] for column in EVENT_COLUMNS)
    cpu, start = time.process_time(), time.perf_counter()
    client.insert(
        BASELINE_TABLE, columns, column_names=EVENT_COLUMNS, column_type_names=BASELINE_TYPES, column_oriented=True
    )
    return time.perf_counter() - start, time.process_time() - cpu


def prepare() -> None:
    """The migrated tables emptied, and the baseline's table created AS events, empty."""
    from analytics import migrator, store

    migrator.apply()
    for table in migrator.tables():
        store.client().command(f"TRUNCATE TABLE {table}")
    store.client().command(f"CREATE TABLE IF NOT EXISTS {BASELINE_TABLE} AS events")
    store.client().command(f"TRUNCATE TABLE {BASELINE_TABLE}")


def print_result(r: dict[str, Any]) -> None:
    """One batch size's ClickHouse figures, with the same-run baseline and the load."""
    print(
        f"  batch {r['batch_size']:>6}: ingest into ClickHouse {r['ingest_events_per_s']:8.0f} events/s "
        f"({r['hits']} hits in {r['batches']} batches, {r['written']} written, {r['batch_ms_p50']:.1f} ms/batch "
        f"p50, max {r['batch_ms_max']:.1f}; this process's CPU {r['ingest_cpu_share']:.0%}; Django database "
        f"{r['sql_share']:.0%} of the time, {r['statements_per_batch']:.2f} statements per batch)",
        flush=True,
    )
    print(
        f"      without this size's first batch: {r['ingest_events_per_s_after_first']:8.0f} events/s (the run's "
        f"first batch pays the process's one-time costs: clickhouse-connect imports pandas, when installed, "
        f"on its first INSERT)",
        flush=True,
    )
    inside = ", ".join(
        f"{kind} {ms:.1f} ms, CPU {r['clickhouse_cpu_ms_per_batch'][kind]:.1f} ms "
        f"({r['clickhouse_calls_per_batch'][kind]:.2f}x)"
        for kind, ms in sorted(r["clickhouse_ms_per_batch"].items())
    )
    rest_ms = r["ingest_seconds"] * 1000 / r["batches"] - sum(r["clickhouse_ms_per_batch"].values())
    rest_cpu = r["ingest_cpu_ms_per_batch"] - sum(r["clickhouse_cpu_ms_per_batch"].values())
    print(
        f"      per batch, wall and process CPU: through clickhouse-connect {inside}; "
        f"the rest (Python) {rest_ms:.1f} ms, CPU {rest_cpu:.1f} ms",
        flush=True,
    )
    print(
        f"      same-run baseline, a bare column-oriented INSERT of the same rows: "
        f"{r['baseline_events_per_s']:8.0f} events/s; ingest/baseline = {1 / r['overhead_vs_baseline']:.2f}; "
        f"load average {r['load_average'][0]:.2f} -> {r['load_average_after'][0]:.2f} "
        f"({os.cpu_count()} CPUs)",
        flush=True,
    )
    print(
        f"      process CPU (every thread, chdb's merges included) per 1,000 events: ingest "
        f"{r['ingest_cpu_ms_per_1000']:.1f} ms, baseline {r['baseline_cpu_ms_per_1000']:.1f} ms",
        flush=True,
    )
    in_calls = sum(r["clickhouse_thread_cpu_ms_per_batch"].values())
    print(
        f"      the calling thread's CPU per batch (what load does not inflate much): ingest_batch "
        f"{r['ingest_thread_cpu_ms_per_batch']:.1f} ms, of which in clickhouse-connect calls {in_calls:.1f} ms "
        f"(SELECT {r['clickhouse_thread_cpu_ms_per_batch'].get('SELECT', 0):.1f}), Python "
        f"{r['ingest_thread_cpu_ms_per_batch'] - in_calls:.1f} ms",
        flush=True,
    )
    target = CLICKHOUSE_TARGETS.get(r["batch_size"])
    if target:
        verdict = "OK" if r["ingest_events_per_s"] >= target else "BELOW TARGET"
        print(f"      target >= {target} events/s at batch {r['batch_size']:,}: {verdict}", flush=True)

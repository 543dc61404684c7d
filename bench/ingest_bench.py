"""Ingest throughput: events/s that collector.ingest.ingest_batch writes into MariaDB.

In-process (one Python process, so one core; MariaDB runs on the other), Django configured
against a MariaDB bench database. The hits are what collector/views.py::_build_messages builds,
with realistic key diversity: ~2,000 pages (Zipf-like), 30 referrer sources plus direct traffic,
some UTM-tagged visits, 5 browsers, 4 OS, 3 devices, 40 countries, custom events (one with a
value), engagement reports, visitors making 1-8 pageviews each, over one day, sent in time order.

For each batch size the same hits are also written, with fresh hit ids and without visits or
rollups, by two baselines: a plain Event.objects.bulk_create (what the brief asks for) and a raw
multi-row INSERT of tuples (the least a worker must do to store events). The gap between ingest and
the raw INSERT is what the visit and rollup logic costs. Every
SQL statement of ingest_batch is counted (connection.execute_wrapper) and classified by table.

    .venv/bin/python bench/ingest_bench.py                      # own database, dropped at the end
    .venv/bin/python bench/ingest_bench.py --batch-sizes 1000 --events 1000:30000
    .venv/bin/python bench/ingest_bench.py --profile 1000       # pyinstrument (pip install pyinstrument)
    .venv/bin/python bench/ingest_bench.py --quick              # few hits: tries the script
    .venv/bin/python bench/ingest_bench.py --sqlite --quick     # a SQLite file instead of MariaDB
    .venv/bin/python bench/ingest_bench.py --analytics-url chdb:///tmp/bench-chdb --batch-sizes 1000,10000

With --analytics-url the events and visits go to ClickHouse (collector/ingest_clickhouse.py; the
Django database then holds the site and salts only, and its statements are still counted). The
MariaDB baselines are replaced by a ClickHouse one, measured in the same run, batch by batch
right after each ingest_batch (the machine is shared: only a same-run ratio compares across
runs): the same rows (fresh hit ids, each hit its own visit) already in columns, one bare
column-oriented clickhouse-connect INSERT with the column types given into a scratch table
created AS events (`bench_events_baseline`: same engine, key and settings). The ingest's time
inside ClickHouse is split by statement (the lookup SELECT, each INSERT) and the load average is
printed with the figures.

The hits are made in bench/ingest_data.py, the ClickHouse timer, baseline and report in
bench/ingest_bench_ch.py.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import statistics
import sys
import tempfile
import time
import types
from collections import Counter
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import ingest_bench_ch, ingest_data
from bench.common import INGEST_DAYS_AGO, BenchDatabase, log
from bench.ingest_data import generate_hits, new_hit_id
from collector.payload import ENGAGEMENT

DEFAULT_EVENTS = {1: 2_000, 100: 20_000, 1000: 30_000, 10000: 50_000}
QUICK_EVENTS = "1:300,100:3000,1000:10000,10000:20000"  # as run_all.py --quick
TARGET_EVENTS_PER_S = 10_000  # at batch size 1,000
CLICKHOUSE = False  # --analytics-url given


# -- measurement ---------------------------------------------------------------------------------

_TABLE = re.compile(r"[`\"]((?:collector|dashboard)_\w+)[`\"]")  # MariaDB's or SQLite's quotes


def classify(sql: str) -> str:
    verb = sql.lstrip().split(None, 1)[0].upper()
    match = _TABLE.search(sql)
    if match is None:
        return "connection setup"
    table = match.group(1)
    if verb == "INSERT" and ("ON DUPLICATE KEY UPDATE" in sql or "DO UPDATE" in sql):
        verb = "UPSERT"
    elif verb == "SELECT" and sql.rstrip().endswith("FOR UPDATE"):
        verb = "SELECT FOR UPDATE"
    return f"{verb} {table}"


class SqlCounter:
    """execute_wrapper: counts statements (and rows of multi-row INSERTs) and time spent in SQL."""

    def __init__(self) -> None:
        self.statements: Counter[str] = Counter()
        self.rows: Counter[str] = Counter()
        self.seconds = 0.0

    def __call__(self, execute: Any, sql: str, params: Any, many: bool, context: Any) -> Any:
        key = classify(sql)
        self.statements[key] += 1
        if key.startswith(("INSERT", "UPSERT")):  # multi-row VALUES (...), (...)
            self.rows[key] += sql.count("), (") + 1
        start = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.seconds += time.perf_counter() - start


def baseline_events(hits: list[dict[str, Any]]) -> list[Any]:
    """The same rows as plain Event objects (fresh hit ids, no visit logic)."""
    from collector.models import Event

    rows = []
    for hit in hits:
        utm = hit.get("utm") or ["", "", "", "", ""]
        rows.append(
            Event(
                site_id=hit["site"],
                hit_id=new_hit_id(hit["ts"]),
                ts=dt.datetime.fromtimestamp(hit["ts"] / 1000, tz=dt.UTC),
                visitor_id=hit["vid"],
                visit_key=hit["vid"],
                name=hit["n"],
                path=hit["p"],
                hostname=hit.get("host", ""),
                referrer=hit.get("ref", ""),
                referrer_source=hit.get("src", ""),
                utm_source=utm[0],
                utm_medium=utm[1],
                utm_campaign=utm[2],
                utm_content=utm[3],
                utm_term=utm[4],
                browser=hit.get("b", ""),
                os=hit.get("os", ""),
                device=hit.get("dev", ""),
                country=hit.get("cc", ""),
                entry_path=hit["p"],
                visit_source=hit.get("src", ""),
                visit_referrer=hit.get("ref", ""),
                visit_utm_source=utm[0],
                visit_utm_medium=utm[1],
                visit_utm_campaign=utm[2],
                value=hit.get("v"),
                props=hit.get("props"),
                scroll_depth=hit.get("sd"),
                engaged_ms=hit.get("e"),
            )
        )
    return rows


def lone_visit(hit: dict[str, Any]) -> Any:
    """What event_row reads of a visit, for a hit taken as a visit of its own (the baselines)."""
    utm = hit.get("utm") or ["", "", "", "", ""]
    return types.SimpleNamespace(
        visitor_id=hit["vid"],
        visit_key=hit["vid"],
        browser=hit.get("b", ""),
        os=hit.get("os", ""),
        device=hit.get("dev", ""),
        country=hit.get("cc", ""),
        entry_path=hit["p"],
        referrer_source=hit.get("src", ""),
        referrer=hit.get("ref", ""),
        utm_source=utm[0],
        utm_medium=utm[1],
        utm_campaign=utm[2],
    )


def raw_insert_events(hits: list[dict[str, Any]], chunk: int = 1000) -> None:
    """The second baseline: the same rows (fresh hit ids) as plain tuples in one multi-row INSERT
    per chunk, in one transaction: the least a worker must do to store the events."""
    from django.db import connection, transaction

    from collector.ingest import event_row

    # The worker's own row (visit key = visitor id, each hit its own visit: no visits here), with
    # a fresh hit id.
    rows = [
        event_row(
            {**hit, "id": new_hit_id(hit["ts"])},
            ts=dt.datetime.fromtimestamp(hit["ts"] / 1000, tz=dt.UTC),
            visit=lone_visit(hit),
        )
        for hit in hits
    ]
    from collector.ingest import EVENT_COLUMNS

    placeholder = "(" + ", ".join(["%s"] * len(EVENT_COLUMNS)) + ")"
    columns = ", ".join(f"`{c}`" for c in EVENT_COLUMNS)
    with transaction.atomic(), connection.cursor() as cursor:
        for start in range(0, len(rows), chunk):
            part = rows[start : start + chunk]
            sql = f"INSERT INTO `collector_event` ({columns}) VALUES {', '.join([placeholder] * len(part))}"
            cursor.execute(sql, [value for row in part for value in row])


def bench_batch_size(
    site_id: int, batch_size: int, n_events: int, day: dt.date, seed: int, profiler: Any = None
) -> dict[str, Any]:
    from django.db import connection, transaction

    from collector.ingest import ingest_batch
    from collector.models import Event

    hits = generate_hits(site_id, n_events, day, seed)
    batches = [hits[i : i + batch_size] for i in range(0, len(hits), batch_size)]
    written = duplicates = dropped = 0
    ingest_s = baseline_s = raw_s = 0.0
    ingest_cpu = baseline_cpu = ingest_thread_cpu = 0.0
    per_batch_ms: list[float] = []
    counter = SqlCounter()
    hours = {dt.datetime.fromtimestamp(h["ts"] / 1000, tz=dt.UTC).hour for h in hits}
    timer = None
    if CLICKHOUSE:
        from analytics import store

        timer = ingest_bench_ch.ClickHouseTimer(store.client())
    load_before = os.getloadavg()
    for batch in batches:
        baseline_columns = ingest_bench_ch.clickhouse_baseline_columns(batch) if CLICKHOUSE else None
        if profiler is not None:
            profiler.start()
        cpu0, own0, t0 = time.process_time(), time.thread_time(), time.perf_counter()
        with connection.execute_wrapper(counter):
            if timer is not None:
                with timer:
                    result = ingest_batch(batch)
            else:
                result = ingest_batch(batch)
        elapsed = time.perf_counter() - t0
        if profiler is not None:
            profiler.stop()
        ingest_cpu += time.process_time() - cpu0
        ingest_thread_cpu += time.thread_time() - own0
        ingest_s += elapsed
        per_batch_ms.append(elapsed * 1000)
        written += result.written
        duplicates += result.duplicates
        dropped += result.dropped

        if CLICKHOUSE:
            seconds, cpu = ingest_bench_ch.clickhouse_baseline_insert(baseline_columns)
            baseline_s += seconds
            baseline_cpu += cpu
            continue
        t0 = time.perf_counter()
        rows = baseline_events(batch)
        with transaction.atomic():
            Event.objects.bulk_create(rows, batch_size=1000)
        baseline_s += time.perf_counter() - t0

        t0 = time.perf_counter()
        raw_insert_events(batch)
        raw_s += time.perf_counter() - t0

    n_batches = len(batches)
    per_batch = {key: value / n_batches for key, value in sorted(counter.statements.items())}
    rows_per_batch = {key: value / n_batches for key, value in sorted(counter.rows.items())}
    names = Counter(hit["n"] if hit["n"] in ("pageview", ENGAGEMENT) else "custom" for hit in hits)
    result = {
        "batch_size": batch_size,
        "hit_ids": ingest_data.HIT_IDS,
        "hits": len(hits),
        "batches": n_batches,
        "written": written,
        "duplicates": duplicates,
        "dropped": dropped,
        "hit_mix": dict(names),
        "hours_hit": len(hours),
        "ingest_seconds": ingest_s,
        "ingest_events_per_s": len(hits) / ingest_s,
        # the same without the first batch, which pays the process's one-time costs (imports)
        "ingest_events_per_s_after_first": (len(hits) - len(batches[0])) / (ingest_s - per_batch_ms[0] / 1000)
        if n_batches > 1
        else 0.0,
        "ingest_cpu_share": ingest_cpu / ingest_s,
        "ingest_cpu_ms_per_1000": ingest_cpu * 1000 / len(hits) * 1000,
        "baseline_cpu_ms_per_1000": baseline_cpu * 1000 / len(hits) * 1000,
        "sql_seconds": counter.seconds,
        "sql_share": counter.seconds / ingest_s,
        "batch_ms_p50": statistics.median(per_batch_ms),
        "batch_ms_max": max(per_batch_ms),
        "store": "clickhouse" if CLICKHOUSE else "django database",
        "baseline_seconds": baseline_s,
        "baseline_events_per_s": len(hits) / baseline_s if baseline_s else 0.0,
        "raw_insert_seconds": raw_s,
        "raw_insert_events_per_s": len(hits) / raw_s if raw_s else 0.0,
        "statements_per_batch": sum(counter.statements.values()) / n_batches,
        "statements_by_kind": per_batch,
        "rows_by_kind": rows_per_batch,
        "load_average": [round(x, 2) for x in load_before],
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "clickhouse_ms_per_batch": {k: v * 1000 / n_batches for k, v in timer.seconds.items()} if timer else {},
        "clickhouse_calls_per_batch": {k: v / n_batches for k, v in timer.calls.items()} if timer else {},
        "clickhouse_cpu_ms_per_batch": {k: v * 1000 / n_batches for k, v in timer.cpu.items()} if timer else {},
        "ingest_cpu_ms_per_batch": ingest_cpu * 1000 / n_batches,
        "ingest_thread_cpu_ms_per_batch": ingest_thread_cpu * 1000 / n_batches,
        "clickhouse_thread_cpu_ms_per_batch": {k: v * 1000 / n_batches for k, v in timer.thread_cpu.items()}
        if timer
        else {},
    }
    result["overhead_vs_baseline"] = result["baseline_events_per_s"] / result["ingest_events_per_s"]
    result["overhead_vs_raw_insert"] = result["raw_insert_events_per_s"] / result["ingest_events_per_s"]
    print_result(result)
    return result


def speed(ratio: float) -> str:
    """baseline/ingest events/s as words."""
    return f"ingest {ratio:.1f}x slower" if ratio >= 1 else f"ingest {1 / ratio:.1f}x faster"


def print_result(r: dict[str, Any]) -> None:
    if CLICKHOUSE:
        ingest_bench_ch.print_result(r)
        return
    print(
        f"  batch {r['batch_size']:>6}: ingest {r['ingest_events_per_s']:8.0f} events/s "
        f"({r['hits']} hits in {r['batches']} batches, {r['batch_ms_p50']:.1f} ms/batch p50, "
        f"SQL {r['sql_share']:.0%} of the time, this process's CPU {r['ingest_cpu_share']:.0%})  |  "
        f"baselines: ORM bulk_create {r['baseline_events_per_s']:6.0f} events/s ({speed(r['overhead_vs_baseline'])}), "
        f"raw INSERT {r['raw_insert_events_per_s']:6.0f} events/s ({speed(r['overhead_vs_raw_insert'])})",
        flush=True,
    )
    kinds = ", ".join(
        f"{kind} {count:.2f}" + (f" ({r['rows_by_kind'][kind]:.0f} rows)" if kind in r["rows_by_kind"] else "")
        for kind, count in r["statements_by_kind"].items()
        if count >= 0.01
    )
    print(f"      SQL per batch: {r['statements_per_batch']:.2f} statements: {kinds}", flush=True)
    if r["batch_size"] == 1000:
        verdict = "OK" if r["ingest_events_per_s"] >= TARGET_EVENTS_PER_S else "BELOW TARGET"
        print(f"      target >= {TARGET_EVENTS_PER_S} events/s at batch 1,000: {verdict}", flush=True)


def configure_django(db: BenchDatabase) -> None:
    os.environ.update(db.env())
    import django

    django.setup()


def run(
    db: BenchDatabase, sizes: dict[int, int], day_offset: int = 0, profile: int | None = None
) -> list[dict[str, Any]]:
    configure_django(db)
    from django.db import connection

    if CLICKHOUSE:
        ingest_bench_ch.prepare()

    results = []
    today = dt.datetime.now(dt.UTC).date()
    log(f"ingest bench: batch sizes {', '.join(f'{b} ({n} hits)' for b, n in sizes.items())}")
    for index, (batch_size, n_events) in enumerate(sizes.items()):
        day = today - dt.timedelta(days=INGEST_DAYS_AGO - ((day_offset + index) % INGEST_DAYS_AGO))
        seed = 1000 * (day_offset + 1) + batch_size
        if profile == batch_size:
            results.append(profile_batch_size(db.site_id, batch_size, n_events, day, seed))
        else:
            results.append(bench_batch_size(db.site_id, batch_size, n_events, day, seed))
    connection.close()
    return results


def profile_batch_size(site_id: int, batch_size: int, n_events: int, day: dt.date, seed: int) -> dict[str, Any]:
    """The same run with pyinstrument sampling ingest_batch only (its overhead lowers the figures)."""
    from pyinstrument import Profiler

    profiler = Profiler(interval=0.001)
    result = bench_batch_size(site_id, batch_size, n_events, day, seed, profiler)
    out = Path(tempfile.gettempdir()) / f"bench-ingest-profile-{batch_size}"
    out.with_suffix(".txt").write_text(profiler.output_text(unicode=False, color=False))
    out.with_suffix(".html").write_text(profiler.output_html())
    print(f"      pyinstrument profile of ingest_batch: {out}.txt and {out}.html", flush=True)
    return result


def parse_sizes(batch_sizes: str, events: str | None) -> dict[int, int]:
    counts = dict(DEFAULT_EVENTS)
    if events:
        for item in events.split(","):
            size, n = item.split(":")
            counts[int(size)] = int(n)
    return {int(size): counts.get(int(size), max(20_000, 5 * int(size))) for size in batch_sizes.split(",")}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-sizes", default="1,100,1000,10000")
    parser.add_argument("--events", help="hits per batch size, e.g. 100:20000,1000:30000")
    parser.add_argument("--database", help="use this existing bench_* database instead of creating one")
    parser.add_argument("--day-offset", type=int, default=0, help="shift the day the hits fall on")
    parser.add_argument(
        "--hit-ids",
        choices=["uuid4", "time"],
        default="time",
        help="time-ordered hit ids as the collector makes them (default), or random uuid4 ones",
    )
    parser.add_argument("--profile", type=int, help="profile this batch size with pyinstrument")
    parser.add_argument("--sqlite", action="store_true", help="a SQLite file in the temp directory, not MariaDB")
    parser.add_argument("--quick", action="store_true", help=f"fewer hits ({QUICK_EVENTS}): tries the script")
    parser.add_argument("--json", help="write the results to this file")
    parser.add_argument("--analytics-url", help="write events and visits to this ClickHouse (chdb:///path)")
    args = parser.parse_args(argv)
    global CLICKHOUSE
    if args.analytics_url:
        os.environ["ANALYTICS_URL"] = args.analytics_url
        CLICKHOUSE = True
    sizes = parse_sizes(args.batch_sizes, args.events or (QUICK_EVENTS if args.quick else None))
    ingest_data.HIT_IDS = args.hit_ids
    own = args.database is None
    db = BenchDatabase(args.database or "bench_ingest", engine="sqlite" if args.sqlite else "mariadb")
    try:
        db.create() if own else db.attach()
        results = run(db, sizes, args.day_offset, args.profile)
    finally:
        if own:
            db.drop()
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())

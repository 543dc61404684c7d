"""Run every benchmark in one go and print a summary (see docs/benchmarks.md).

1. collector: POST /api/event against the bare view /bench/bare, gunicorn with 1 then 2 workers;
2. ingest: ingest_batch at batch sizes 1 / 100 / 1,000 / 10,000 against a plain bulk_create;
3. scaling: the tables filled to 1M then 10M events (bench/fill.py), then ingest at batch 1,000
   and the collector (2 workers) again, compared with the same figures on the empty database;
4. dashboard queries: bench/dashboard_queries.py on its own kept databases bench_dash_1m /
   bench_dash_10m (generated once, reused), up to --max-events; --no-dashboard skips it.

Everything runs against a MariaDB database bench_fathom (created, migrated, dropped at the end) and
Redis db 13 (flushed at the end).

    .venv/bin/python bench/run_all.py                       # everything, ~15-20 min
    .venv/bin/python bench/run_all.py --max-events 1000000  # skip the 10M step
    .venv/bin/python bench/run_all.py --max-events 0        # no scaling step
    .venv/bin/python bench/run_all.py --quick               # short runs, to try the scripts
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.collector_bench import DEFAULT_CLIENTS, bench_collector, pick_loadgen
from bench.common import PYTHON, ROOT, BenchDatabase, flush_redis, log, machine, wait_for_quiet
from bench.fill import fill_to

SCALING_STEPS = (1_000_000, 10_000_000)


def loadavg() -> float:
    return os.getloadavg()[0]


def run_ingest(
    db: BenchDatabase, batch_sizes: str, events: str, day_offset: int, hit_ids: str = "time"
) -> list[dict[str, Any]]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    try:
        cmd = [
            str(PYTHON),
            str(ROOT / "bench" / "ingest_bench.py"),
            "--database",
            db.name,
            "--batch-sizes",
            batch_sizes,
            "--events",
            events,
            "--day-offset",
            str(day_offset),
            "--hit-ids",
            hit_ids,
            "--json",
            str(out),
        ]
        subprocess.run(cmd, cwd=ROOT, check=True, timeout=3600)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def run_dashboard(args: argparse.Namespace) -> str:
    """Part 4: bench/dashboard_queries.py (its own databases, kept and reused); its summary text."""
    sizes = [size for size, events in (("1m", 1_000_000), ("10m", 10_000_000)) if events <= args.max_events]
    cmd = [str(PYTHON), str(ROOT / "bench" / "dashboard_queries.py"), "--reuse", "--reps", "10", "--budget", "20"]
    if args.quick or not sizes:
        cmd += ["--sizes", "100k", "--reps", "3", "--budget", "5"]
    else:
        cmd += ["--sizes", ",".join(sizes)]
    log("== 4. dashboard queries: " + " ".join(cmd[2:]) + " ==")
    wait_for_quiet(args.quiet_wait)
    try:
        out = subprocess.run(cmd, cwd=ROOT, check=True, timeout=3 * 3600, capture_output=True, text=True).stdout
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        log(f"dashboard queries failed: {exc}")
        return f"dashboard queries failed: {exc}"
    return out[out.find("## Dashboard queries") :]


def _stop(signum: int, frame: object) -> None:
    raise SystemExit(f"stopped by signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--max-events",
        type=int,
        default=10_000_000,
        help="largest stored-data step: 10000000 (default) runs 1M and 10M, 1000000 only 1M, 0 none",
    )
    parser.add_argument("--workers", default="1,2", help="gunicorn workers for the collector bench")
    parser.add_argument("--scaling-workers", type=int, default=2, help="gunicorn workers in the scaling steps")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per endpoint and worker count")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument("--clients", type=int, default=DEFAULT_CLIENTS, help="see collector_bench.py --clients")
    parser.add_argument("--batch-sizes", default="1,100,1000,10000")
    parser.add_argument("--events", default="1:2000,100:20000,1000:30000,10000:50000", help="hits per batch size")
    parser.add_argument(
        "--hit-ids",
        choices=["uuid4", "time"],
        default="time",
        help="hit ids of the ingest bench: time-ordered as the collector makes them (default) or random uuid4",
    )
    parser.add_argument("--quick", action="store_true", help="3 s runs, fewer hits, 1M step at most")
    parser.add_argument("--quiet-wait", type=float, default=60, help="max seconds to wait for a low load average")
    parser.add_argument("--keep-db", action="store_true", help="do not drop bench_fathom at the end")
    parser.add_argument("--json", help="write all results to this file")
    parser.add_argument("--no-dashboard", action="store_true", help="skip the dashboard query bench (part 4)")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
        args.events = "1:300,100:3000,1000:10000,10000:20000"
        args.max_events = min(args.max_events, 1_000_000)

    # A stop (SIGTERM, or SIGINT also when started in the background) still drops the database.
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    started = time.monotonic()
    loadgen = pick_loadgen(args.loadgen)
    facts = machine()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": facts,
        "loadgen": loadgen,
        "load_before": loadavg(),
    }
    log(f"machine: {facts}")
    log(f"load generator: {loadgen}; load average {report['load_before']:.2f}")
    db = BenchDatabase("bench_fathom")
    try:
        db.create()
        workers = [int(x) for x in args.workers.split(",")]

        report["loads"] = {"collector": wait_for_quiet(args.quiet_wait).load}
        db.migrate()
        log("== 1. collector: /api/event vs /bench/bare ==")
        report["collector"] = bench_collector(db, workers, args.duration, args.warmup, 2, loadgen, args.clients)

        report["loads"]["ingest"] = wait_for_quiet(args.quiet_wait).load
        db.migrate()
        log("== 2. ingest_batch vs plain bulk_create ==")
        report["ingest"] = run_ingest(db, args.batch_sizes, args.events, 0, args.hit_ids)
        ingest_1000_events = next(
            (item.split(":")[1] for item in args.events.split(",") if item.startswith("1000:")), "30000"
        )

        report["scaling"] = []
        steps = [n for n in SCALING_STEPS if n <= args.max_events]
        for index, target in enumerate(steps, start=1):
            log(f"== 3.{index}. stored data: {target:,} events ==")
            fill = fill_to(db, target)
            report["loads"][f"stored {target:,}"] = wait_for_quiet(args.quiet_wait).load
            db.migrate()
            events_before = db.count("collector_event")
            ingest = run_ingest(db, "1000", f"1000:{ingest_1000_events}", index, args.hit_ids)
            collector = bench_collector(
                db, [args.scaling_workers], args.duration, args.warmup, 2, loadgen, args.clients
            )
            report["scaling"].append(
                {
                    "target": target,
                    "events_stored": events_before,
                    "fill": fill,
                    "ingest": ingest[0],
                    "collector": collector[0],
                }
            )
        report["load_after"] = loadavg()
    finally:
        flush_redis()
        if not args.keep_db:
            db.drop()
    if not args.no_dashboard:
        report["dashboard"] = run_dashboard(args)
    report["seconds"] = time.monotonic() - started
    print()
    print(summary(report, args.scaling_workers))
    if report.get("dashboard"):
        print()
        print(report["dashboard"])
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    return 0


def summary(report: dict[str, Any], scaling_workers: int) -> str:
    m = report["machine"]
    lines = [
        f"## Results {report['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}), Python {m['python']}, MariaDB {m['mariadb']}; "
        f"load generator {report['loadgen']} on the same cores; load average before {report['load_before']:.2f}, "
        f"after {report.get('load_after', float('nan')):.2f}; total {report['seconds'] / 60:.1f} min.",
        "",
        "1-min load average when each part started (other work on the machine skews the figures): "
        + ", ".join(f"{k} {v:.2f}" for k, v in report.get("loads", {}).items()),
        "",
        "### Collector (POST, sync gunicorn workers, 2 connections per worker)",
        "",
        "| workers | endpoint | req/s | p50 ms | p99 ms | requests | non-expected | collector/bare |",
        "|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["collector"]:
        for name in ("bare", "collector"):
            x = r[name]
            ratio = f"{r['ratio']:.2f}" if name == "collector" else ""
            lines.append(
                f"| {r['workers']} | {x['path']} | {x['rps']:.0f} | {x['p50_ms']:.2f} | {x['p99_ms']:.2f} | "
                f"{x['requests']} | {x['unexpected']} | {ratio} |"
            )
    lines += [
        "",
        "### Ingest (ingest_batch, one process) vs the same events written without visits and rollups",
        "",
        "| batch | hits | ingest events/s | ms/batch p50 | SQL stmts/batch | ORM bulk_create events/s "
        "| raw INSERT events/s | raw INSERT / ingest |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in report["ingest"]:
        lines.append(
            f"| {r['batch_size']} | {r['hits']} | {r['ingest_events_per_s']:.0f} | {r['batch_ms_p50']:.1f} | "
            f"{r['statements_per_batch']:.1f} | {r['baseline_events_per_s']:.0f} | "
            f"{r['raw_insert_events_per_s']:.0f} | {r['overhead_vs_raw_insert']:.1f}x |"
        )
    lines += ["", "SQL statements per batch, by kind:", ""]
    for r in report["ingest"]:
        kinds = ", ".join(
            f"{kind} {count:g}" + (f" ({r['rows_by_kind'][kind]:.0f} rows)" if kind in r["rows_by_kind"] else "")
            for kind, count in r["statements_by_kind"].items()
            if count >= 0.5
        )
        lines.append(f"- batch {r['batch_size']}: {kinds}")
    if report["scaling"]:
        base_ingest = next((r for r in report["ingest"] if r["batch_size"] == 1000), None)
        base_collector = next((r for r in report["collector"] if r["workers"] == scaling_workers), None)
        lines += [
            "",
            f"### Stored data (ingest at batch 1,000; collector with {scaling_workers} workers)",
            "",
            "| events stored | fill s | ingest events/s | vs empty | raw INSERT events/s | vs empty "
            "| bare req/s | collector req/s | collector/bare | vs empty | non-202 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        rows = []
        if base_ingest and base_collector:
            rows.append(("~0 (part 1, 2)", None, base_ingest, base_collector))
        rows += [
            (f"{s['events_stored']:,}", s["fill"].get("seconds", 0), s["ingest"], s["collector"])
            for s in report["scaling"]
        ]
        for label, fill_s, ingest, collector in rows:
            # The collector runs no SQL: its req/s move with the machine's load, so the comparison
            # with the empty database uses collector/bare, which the load moves less.
            vs_ingest = ingest["ingest_events_per_s"] / base_ingest["ingest_events_per_s"] if base_ingest else 0
            vs_raw = ingest["raw_insert_events_per_s"] / base_ingest["raw_insert_events_per_s"] if base_ingest else 0
            vs_coll = collector["ratio"] / base_collector["ratio"] if base_collector else 0
            lines.append(
                f"| {label} | {'' if fill_s is None else f'{fill_s:.0f}'} | {ingest['ingest_events_per_s']:.0f} | "
                f"{vs_ingest:.2f} | {ingest['raw_insert_events_per_s']:.0f} | {vs_raw:.2f} | "
                f"{collector['bare']['rps']:.0f} | {collector['collector']['rps']:.0f} | {collector['ratio']:.2f} | "
                f"{vs_coll:.2f} | {collector['collector']['unexpected']} |"
            )
        last = report["scaling"][-1]["fill"].get("tables")
        if last:
            lines += [
                "",
                "Table sizes at the last step: "
                + ", ".join(f"{t} {v['rows']:,} rows / {v['mib']:,} MiB" for t, v in last.items()),
            ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

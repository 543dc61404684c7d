"""Dashboard query benchmark on ClickHouse (chdb, the current engine in-process): what one dashboard
page costs at 10M and 100M stored events, with the small site as the baseline in the same run.

The views are bench/dashboard_queries.py's (bench/dashboard_views.py: every selector call the page
makes, read from dashboard/report_data.py), and the data is the same generated year, row for row
(bench/dashboard_data_ch.py writes dashboard_data.py's rows into `events` and `sessions`). Only the
store differs: ANALYTICS_URL=chdb:///DIR, so the selectors answer through the ClickHouse backend
(dashboard/selectors/backends/clickhouse.py). The sites live in a SQLite file (bench_chd_<size>),
migrated by `manage.py migrate`, which also applies the ClickHouse migrations.

One worker process per size, each with its own chdb directory (<chdb-root>/bench_chd_<size>-chdb):
chdb allows one process per directory. The data is kept: --reuse skips generation when the data
version and the row count match (a marker table `bench_meta` in ClickHouse).

    .venv/bin/python bench/dashboard_queries_ch.py --reuse                    # 10M and 100M
    .venv/bin/python bench/dashboard_queries_ch.py --sizes 10m --reuse
    .venv/bin/python bench/dashboard_queries_ch.py --quick                    # 100k events, tries the script
    .venv/bin/python bench/dashboard_queries_ch.py --threads 2 --sizes 100m   # chdb limited to 2 threads

Targets (issue 11): filtered 30-day view p95 <= 300 ms at 10M, <= 1.5 s at 100M; unfiltered 12-month
view p95 <= 300 ms at 100M.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import subprocess
import sys
import tempfile
import time
import zoneinfo
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, BenchDatabase, log, machine
from bench.dashboard_data import BIG_DOMAIN, DATA_VERSION, SMALL_DOMAIN, SMALL_EVENTS, TZ_NAME, Layout
from bench.dashboard_queries import PERIODS, cell, parse_size, parts_table, ratio
from bench.dashboard_views import FILTERS

TARGETS = {("30d", "filtered", 10_000_000): 300.0, ("30d", "filtered", 100_000_000): 1500.0}
UNFILTERED_12MO_TARGET = 300.0  # ms at 100M


def db_name(events: int) -> str:
    if events % 1_000_000 == 0:
        return f"bench_chd_{events // 1_000_000}m"
    return f"bench_chd_{events // 1000}k"


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()


# -- the worker: one size, one chdb directory ---------------------------------------------------


def ensure_data(events: int, reuse: bool) -> dict[str, Any]:
    from django.core.management import call_command

    from analytics import store
    from sites.models import Site

    call_command("migrate", verbosity=0, interactive=False)  # Django tables + the ClickHouse migrations
    client = store.client()
    client.command("CREATE TABLE IF NOT EXISTS bench_meta (k String, v String) ENGINE = MergeTree ORDER BY k")
    meta = dict(client.query("SELECT k, v FROM bench_meta").result_rows)
    rows_now = int(client.command("SELECT count() FROM events"))
    sites = {}
    for site_id, domain in ((1, BIG_DOMAIN), (2, SMALL_DOMAIN)):
        site, _ = Site.objects.get_or_create(
            id=site_id, defaults={"domain": domain, "name": domain, "timezone": TZ_NAME}
        )
        sites[domain] = site
    if (
        reuse
        and meta.get("version") == str(DATA_VERSION)
        and meta.get("target") == str(events)
        and meta.get("rows") == str(rows_now)
    ):
        log(f"reusing generated data ({rows_now:,} events, end day {meta['end_day']})")
        return {"generated": False, "end_day": meta["end_day"], "rows": rows_now}
    from bench import dashboard_data_ch

    for table in ("events", "sessions", "bench_meta"):
        client.command(f"TRUNCATE TABLE {table}")
    end_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    log(f"generating {events:,} + {SMALL_EVENTS:,} events, 365 days ending {end_day}")
    layout = Layout(end_day, zoneinfo.ZoneInfo(TZ_NAME))
    stats = dashboard_data_ch.generate(
        client,
        layout,
        [(sites[BIG_DOMAIN].id, BIG_DOMAIN, events), (sites[SMALL_DOMAIN].id, SMALL_DOMAIN, SMALL_EVENTS)],
    )
    client.command("OPTIMIZE TABLE events FINAL")  # the parts a long-running server would have merged
    client.command("OPTIMIZE TABLE sessions FINAL")
    rows = int(client.command("SELECT count() FROM events"))
    meta_rows = {"version": DATA_VERSION, "target": events, "rows": rows, "end_day": end_day.isoformat()}
    client.insert("bench_meta", [[k, str(v)] for k, v in meta_rows.items()], column_names=["k", "v"])
    return {"generated": True, "end_day": end_day.isoformat(), "rows": rows, "generation": stats}


def table_sizes() -> dict[str, Any]:
    from analytics import store

    rows = (
        store.client()
        .query(
            "SELECT table, sum(rows), sum(data_compressed_bytes), sum(data_uncompressed_bytes), count() "
            "FROM system.parts WHERE active AND database = currentDatabase() AND table IN ('events', 'sessions') "
            "GROUP BY table ORDER BY table"
        )
        .result_rows
    )
    return {
        t: {"rows": int(r), "compressed_mib": round(c / 2**20, 1), "uncompressed_mib": round(u / 2**20, 1), "parts": p}
        for t, r, c, u, p in rows
    }


def prepare_rollups(rolled: bool, end_day: dt.date) -> dict[str, Any]:
    """No rollups (the raw tables answer every view), or every complete day rolled up, timed."""
    from analytics import store
    from dashboard.selectors.backends import clickhouse_rollups
    from dashboard.selectors.periods import local_midnight
    from sites.models import Site

    client = store.client()
    for table in ("rollup_totals", "rollup_breakdowns", "rollup_sites"):
        client.command(f"TRUNCATE TABLE {table}")
    if not rolled:
        return {"rolled": False}
    tz = Site.objects.get(domain=BIG_DOMAIN).tz
    now = local_midnight(end_day + dt.timedelta(days=1), tz) + clickhouse_rollups.grace() + dt.timedelta(minutes=1)
    started = time.perf_counter()
    days = clickhouse_rollups.roll_all(now)
    seconds = time.perf_counter() - started
    client.command("OPTIMIZE TABLE rollup_breakdowns FINAL")
    rows = int(client.command("SELECT count() FROM rollup_breakdowns"))
    log(f"rolled up {days} in {seconds:.1f} s; rollup_breakdowns {rows:,} rows")
    # A second run right after: what the schedule costs every 10 minutes (the last days again).
    started = time.perf_counter()
    clickhouse_rollups.roll_all(now)
    again = time.perf_counter() - started
    log(f"rolled up again (the last {clickhouse_rollups.REROLL_DAYS} days) in {again:.1f} s")
    return {"rolled": True, "seconds": seconds, "again_seconds": again, "breakdown_rows": rows}


def worker(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from bench.dashboard_views import VIEW_TIMEOUT, check_and_measure
    from dashboard.selectors.backends import get_backend
    from dashboard.selectors.periods import parse_period
    from sites.models import Site

    VIEW_TIMEOUT[0] = args.view_timeout
    out: dict[str, Any] = {"database": args.database, "events_target": args.events, "uptime_before": uptime()}
    out["data"] = ensure_data(args.events, args.reuse)
    out["data"]["tables"] = table_sizes()
    out["rollups"] = prepare_rollups(args.rollup_phase == "rolled", dt.date.fromisoformat(out["data"]["end_day"]))
    if args.rollup_phase == "rolled":
        out["database"] = f"{args.database}+rollups"
    out["backend"] = type(get_backend()).__name__
    import chdb

    out["chdb"] = getattr(chdb, "__version__", "?")
    if args.threads:
        from analytics import store

        # Every query of this process: as if the server had this many cores (one ClickHouse Cloud
        # compute unit is 2 vCPU).
        store.client().set_client_setting("max_threads", str(args.threads))
        out["max_threads"] = args.threads
    end_day = dt.date.fromisoformat(out["data"]["end_day"])
    sites = {"big": Site.objects.get(domain=BIG_DOMAIN), "small": Site.objects.get(domain=SMALL_DOMAIN)}
    tz = sites["big"].tz

    def period_of(name: str) -> Any:
        return parse_period(name, end_day.isoformat(), tz)

    check_and_measure(out, args, sites, period_of, " (unfiltered vs a filter every visit passes)")
    out["uptime_after"] = uptime()
    Path(args.json_out).write_text(json.dumps(out, indent=1, default=str))
    return 0


# -- the parent ---------------------------------------------------------------------------------


def run_worker(name: str, events: int, args: argparse.Namespace, phase: str = "raw") -> dict[str, Any]:
    chdb_dir = Path(args.chdb_root) / f"{name}-chdb"
    bench_db = BenchDatabase(name, engine="sqlite")
    env = bench_db.env(ALLOW_LOCMEM_CACHE="1", ANALYTICS_URL=f"chdb://{chdb_dir}")
    env.pop("REDIS_URL")  # the selectors cache nothing here, and the bench shares no cache
    env.pop("CELERY_BROKER_URL")
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [str(PYTHON), str(Path(__file__).resolve()), "--worker", name, "--events", str(events)]
    cmd += ["--json-out", str(out), "--reps", str(args.reps), "--warmups", str(args.warmups)]
    cmd += ["--budget", str(args.budget), "--view-timeout", str(args.view_timeout), "--threads", str(args.threads)]
    cmd += ["--periods", ",".join(args.periods), "--filters", ",".join(args.filters), "--rollup-phase", phase]
    cmd += [flag for flag, on in (("--reuse", args.reuse), ("--no-check", args.no_check)) if on]
    try:
        subprocess.run(cmd, cwd=ROOT, env=env, check=True, timeout=4 * 3600)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def summary(report: dict[str, Any]) -> str:
    runs = report["runs"]
    m = report["machine"]
    lines = [
        f"## Dashboard queries on ClickHouse (chdb {runs[0]['chdb'] if runs else '?'}) {report['date']}",
        "",
        f"Machine: {m['nproc']} cores ({m['cpu']}); chdb max_threads "
        f"{report['threads'] or 'default (all cores)'}; total {report['seconds'] / 60:.1f} min.",
    ]
    for run in runs:
        lines.append(f"- `uptime` before {run['database']}: {run['uptime_before']}")
        lines.append(f"- `uptime` after {run['database']}:  {run['uptime_after']}")
    lines.append("")
    for run in runs:
        data = run["data"]
        tables = ", ".join(
            f"{t} {v['rows']:,} rows / {v['compressed_mib']:,} MiB compressed ({v['uncompressed_mib']:,} MiB raw)"
            for t, v in data["tables"].items()
        )
        gen = data.get("generation")
        lines.append(
            f"- {run['database']}: {data['rows']:,} events, year ending {data['end_day']}; {tables}; "
            + (f"generated in {gen['seconds']:.0f} s" if gen else "reused")
        )
        roll = run.get("rollups", {})
        if roll.get("rolled"):
            lines.append(
                f"- {run['database']}: every complete day rolled up in {roll['seconds']:.1f} s "
                f"({roll['breakdown_rows']:,} rollup_breakdowns rows); the 10-minute run after it "
                f"(last {2} days again) {roll['again_seconds']:.1f} s"
            )
    lines += [
        "",
        "View = aggregate_compared + 2 timeseries + 13 breakdowns; ms for the whole view (sequential calls).",
        "",
    ]
    sizes = [run["database"] for run in runs]
    header = "| period | filter | small site p50 / p95 | " + " | ".join(f"{s} p50 / p95 (n)" for s in sizes)
    if len(runs) >= 2:
        header += f" | p95 {sizes[-1].split('_')[-1]}/{sizes[0].split('_')[-1]}"
    lines += [header + " |", "|---|---|" + "---:|" * (header.count("|") - 2)]
    index = {(run["database"], v["site"], v["period"], v["filter"]): v for run in runs for v in run["views"]}
    for period in report["periods"]:
        for flt in report["filters"]:
            small = index.get((sizes[-1], "small", period, flt))
            bigs = [index.get((s, "big", period, flt)) for s in sizes]
            cells = [period, FILTERS[flt] or "none", cell(small, count=False), *(cell(b) for b in bigs)]
            if len(runs) >= 2:
                cells.append(ratio(bigs[-1], bigs[0], 2))
            lines.append("| " + " | ".join(cells) + " |")
    lines += parts_table(report, runs[-1], index) if runs else [""]
    for run in runs:
        for label, problems in run.get("consistency", {}).items():
            lines.append(
                f"- {run['database']} consistency {label} (unfiltered vs match-all filter): {problems or 'OK'}"
            )
    targets = []
    for run in runs:
        events = run["data"]["rows"]
        size = run["events_target"]
        for flt in [f for f in report["filters"] if f != "none"]:
            limit = TARGETS.get(("30d", "filtered", size))
            v = index.get((run["database"], "big", "30d", flt))
            if limit and v and v["n"]:
                met = "met" if v["p95"] <= limit else "MISSED"
                targets.append(
                    f"filtered 30d ({FILTERS[flt]}) p95 at {events:,}: {v['p95']:.0f} ms (<= {limit:.0f}): {met}"
                )
        v = index.get((run["database"], "big", "12mo", "none"))
        if size == 100_000_000 and v and v["n"]:
            met = "met" if v["p95"] <= UNFILTERED_12MO_TARGET else "MISSED"
            targets.append(
                f"unfiltered 12mo p95 at {events:,}: {v['p95']:.0f} ms (<= {UNFILTERED_12MO_TARGET:.0f}): {met}"
            )
    lines += ["", "Targets:", *(f"- {t}" for t in targets)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="10m,100m", help="events of the big site, one chdb directory each")
    parser.add_argument("--quick", action="store_true", help="100k events, 2 reps, 2 s per view: tries the script")
    parser.add_argument("--reuse", action="store_true", help="keep generated data whose version and row count match")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument("--budget", type=float, default=30, help="seconds of repetitions per view")
    parser.add_argument("--view-timeout", type=float, default=300)
    parser.add_argument("--threads", type=int, default=0, help="chdb max_threads (0: the engine's default)")
    parser.add_argument("--periods", default=",".join(PERIODS))
    parser.add_argument("--filters", default=",".join(FILTERS), help=f"any of {', '.join(FILTERS)}")
    parser.add_argument("--no-check", action="store_true", help="skip the unfiltered-vs-match-all check")
    parser.add_argument("--chdb-root", default=tempfile.gettempdir(), help="where the chdb directories are")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--rollups", action="store_true", help="each size again with its complete days rolled up")
    parser.add_argument(
        "--rolled-only", action="store_true", help="only the rolled-up pass (views whose raw pass would take minutes)"
    )
    parser.add_argument("--rollup-phase", default="raw", help=argparse.SUPPRESS)
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.budget = "100k", 2, 2.0
    args.periods = [p for p in args.periods.split(",") if p]
    args.filters = [f for f in args.filters.split(",") if f]
    if args.worker:
        args.database = args.worker
        return worker(args)

    started = time.monotonic()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "threads": args.threads,
        "periods": args.periods,
        "filters": args.filters,
        "runs": [],
    }
    for events in [parse_size(s) for s in args.sizes.split(",") if s]:
        name = db_name(events)
        log(f"== {name}: {events:,} events; {uptime()} ==")
        if not args.rolled_only:
            report["runs"].append(run_worker(name, events, args))
        if args.rollups or args.rolled_only:  # the same data and views again, complete days rolled up (same run)
            report["runs"].append(run_worker(name, events, args, "rolled"))
    report["seconds"] = time.monotonic() - started
    print()
    print(summary(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dashboard query benchmark: what one dashboard page costs the database, at 1M and 10M stored events.

A "view" is every selector call a dashboard page makes for one period and filter:
aggregate_compared (visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration),
timeseries of the period and of the previous period (visitors), and the 13 breakdown panels
(limit 10). Views: day / 30d / 12mo x unfiltered / visit:source==Google / event:page==/pricing.

Each size has its own database (bench_dash_1m, bench_dash_10m) holding a generated year of a
big site and of a small one (bench/dashboard_data.py); the small site's figures, measured in
the same database and run, are the baseline: the growth with stored events is big / small and
10M / 1M. The data is kept between runs: --reuse skips generation when the data version and
the row count match. The worker side (data, views, checks) is bench/dashboard_views.py, the
rollups in SQL and the replay check bench/dashboard_rollups.py.

    .venv/bin/python bench/dashboard_queries.py --reuse                 # 1M and 10M (~25 min the first time)
    .venv/bin/python bench/dashboard_queries.py --sizes 1m --reuse      # 1M only
    .venv/bin/python bench/dashboard_queries.py --scale 0.01 --reps 3   # smoke run: 10k and 100k events
    .venv/bin/python bench/dashboard_queries.py --quick                 # 10k events, 2 reps: tries the script
    .venv/bin/python bench/dashboard_queries.py --reuse --json /tmp/dash.json

Targets (issue 4): unfiltered 12mo view p95 < 100 ms at 10M and flat in the event count;
filtered 30d view p95 < 1 s at 10M.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, BenchDatabase, log, machine
from bench.dashboard_rollups import CHECK_DB, replay_check
from bench.dashboard_views import FILTERS, worker

PERIODS = ("day", "30d", "12mo")


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def db_name(events: int) -> str:
    if events % 1_000_000 == 0:
        return f"bench_dash_{events // 1_000_000}m"
    return f"bench_dash_{events // 1000}k"


# -- the parent: run the workers, print the tables ---------------------------------------------


def run_worker(name: str, events: int, args: argparse.Namespace, extra_env: dict[str, str]) -> dict[str, Any]:
    with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
        out = Path(handle.name)
    cmd = [
        str(PYTHON),
        str(Path(__file__).resolve()),
        "--worker",
        name,
        "--events",
        str(events),
        "--json-out",
        str(out),
        "--reps",
        str(args.reps),
        "--warmups",
        str(args.warmups),
        "--budget",
        str(args.budget),
        "--statement-timeout",
        str(args.statement_timeout),
        "--view-timeout",
        str(args.view_timeout),
        "--periods",
        ",".join(args.periods),
        "--filters",
        ",".join(args.filters),
    ]
    cmd += [
        flag
        for flag, on in (("--reuse", args.reuse), ("--no-check", args.no_check), ("--no-explain", args.no_explain))
        if on
    ]
    try:
        subprocess.run(cmd, cwd=ROOT, env=worker_env(name, extra_env), check=True, timeout=4 * 3600)
        return json.loads(out.read_text())
    finally:
        out.unlink(missing_ok=True)


def worker_env(name: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    # No Redis: the selectors cache nothing, and the bench must not share a cache with anyone.
    env = BenchDatabase(name).env(ALLOW_LOCMEM_CACHE="1")
    env.pop("REDIS_URL")
    env.pop("CELERY_BROKER_URL")
    env.update(extra or {})
    return env


def cell(view: dict[str, Any] | None, count: bool = True) -> str:
    if not view:
        return ""
    if not view["n"]:
        return "timed out"
    return f"{view['p50']:.1f} / {view['p95']:.1f}" + (f" ({view['n']})" if count else "")


def ratio(a: dict[str, Any] | None, b: dict[str, Any] | None, digits: int) -> str:
    if not a or not b or not a["n"] or not b["n"]:
        return ""
    return f"{a['p95'] / b['p95']:.{digits}f}"


def parts_table(report: dict[str, Any], last: dict[str, Any], index: dict[tuple, Any]) -> list[str]:
    """The p50 of each part of the big site's views in one run (`index`: (database, site,
    period, filter) -> view), a row per part, a column per period and filter; then a blank line."""
    lines = ["", f"Per part at {last['database']}, big site (p50 ms):", ""]
    parts = next((list(v["parts"]) for v in last["views"] if v["n"]), [])
    combos = [(p, f) for p in report["periods"] for f in report["filters"]]
    lines.append("| part | " + " | ".join(f"{p} {f}" for p, f in combos) + " |")
    lines.append("|---|" + "---:|" * len(combos))
    for part in parts:
        cells = []
        for p, f in combos:
            v = index.get((last["database"], "big", p, f))
            cells.append(f"{v['parts'][part]['p50']:.1f}" if v and v["n"] else "")
        lines.append(f"| {part} | " + " | ".join(cells) + " |")
    return [*lines, ""]


def summary(report: dict[str, Any]) -> str:
    runs = report["runs"]
    lines = [
        f"## Dashboard queries {report['date']}",
        "",
        f"Machine: {report['machine']['nproc']} cores ({report['machine']['cpu']}), "
        f"MariaDB {report['machine']['mariadb']}; "
        f"load average before {report['load_before']:.2f}, after {report['load_after']:.2f}; "
        f"total {report['seconds'] / 60:.1f} min.",
        "",
    ]
    for run in runs:
        data = run["data"]
        tables = ", ".join(
            f"{t.removeprefix('collector_')} {v['rows']:,} rows / {v['mib']:,} MiB" for t, v in data["tables"].items()
        )
        gen = data.get("generation")
        lines.append(
            f"- {run['database']}: {data['rows']:,} events, year ending {data['end_day']}; {tables}; "
            + (f"generated in {gen['seconds']:.0f} s" if gen else "reused")
        )
    lines += [
        "",
        "View = aggregate_compared + 2 timeseries + 13 breakdowns; ms for the whole view (sequential calls).",
        "",
    ]
    sizes = [run["database"] for run in runs]
    header = "| period | filter | small site p50 / p95 | " + " | ".join(f"{s} p50 / p95 (n)" for s in sizes)
    if len(runs) >= 2:
        header += (
            f" | p95 {sizes[-1].split('_')[-1]}/{sizes[0].split('_')[-1]} | p95 big/small at {sizes[-1].split('_')[-1]}"
        )
    lines += [header + " |", "|---|---|" + "---:|" * (header.count("|") - 2)]
    index = {(run["database"], v["site"], v["period"], v["filter"]): v for run in runs for v in run["views"]}
    for period in report["periods"]:
        for flt in report["filters"]:
            small = index.get((sizes[-1], "small", period, flt))
            cells = [period, FILTERS[flt] or "none", cell(small, count=False)]
            bigs = [index.get((s, "big", period, flt)) for s in sizes]
            cells += [cell(b) for b in bigs]
            if len(runs) >= 2:
                cells.append(ratio(bigs[-1], bigs[0], 2))
                cells.append(ratio(bigs[-1], small, 1))
            lines.append("| " + " | ".join(cells) + " |")
    # Slowest parts at the largest size.
    lines += parts_table(report, runs[-1], index)
    for run in runs:
        for label, problems in run.get("consistency", {}).items():
            lines.append(f"- {run['database']} consistency {label} (rollups vs raw, all metrics): {problems or 'OK'}")
        for label, item in run.get("explain", {}).items():
            lines.append(
                f"- {run['database']} EXPLAIN 30d {label}: {len(item['plans'])} statements; "
                f"index problems: {item['problems'] or 'none'}"
            )
    if report.get("replay"):
        r = report["replay"]
        lines.append(
            f"- replay check ({r['hits']:,} hits of the small site through ingest_batch, {r['ingest_s']:.0f} s): "
            + ", ".join(
                f"{t} {'equal' if v['equal'] else 'DIFFERENT'} ({v['generated']:,} rows)"
                for t, v in r["tables"].items()
            )
        )
    targets = []
    if sizes:
        big = sizes[-1]
        u = index.get((big, "big", "12mo", "none"))
        if u and u["n"]:
            targets.append(
                f"unfiltered 12mo p95 at {big}: {u['p95']:.1f} ms (target < 100 ms): "
                f"{'met' if u['p95'] < 100 else 'MISSED'}"
            )
        for flt in report["filters"]:
            if flt == "none":
                continue
            f = index.get((big, "big", "30d", flt))
            if f and f["n"]:
                targets.append(
                    f"filtered 30d ({FILTERS[flt]}) p95 at {big}: {f['p95']:.0f} ms (target < 1000 ms): "
                    f"{'met' if f['p95'] < 1000 else 'MISSED'}"
                )
    lines += ["", "Targets:", *(f"- {t}" for t in targets)]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1m,10m", help="events of the big site, one database each")
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the sizes (0.01: smoke run)")
    parser.add_argument("--quick", action="store_true", help="10k events, 2 reps, 2 s per view: tries the script")
    parser.add_argument("--reuse", action="store_true", help="keep generated data whose version and row count match")
    parser.add_argument("--reps", type=int, default=20)
    parser.add_argument("--warmups", type=int, default=2)
    parser.add_argument(
        "--budget", type=float, default=60, help="seconds of repetitions per view (a slower view runs once)"
    )
    parser.add_argument(
        "--statement-timeout", type=float, default=120, help="abort a view whose SQL statement runs longer (s)"
    )
    parser.add_argument("--view-timeout", type=float, default=300, help="stop a view that runs longer (s)")
    parser.add_argument("--periods", default=",".join(PERIODS))
    parser.add_argument("--filters", default=",".join(FILTERS), help=f"any of {', '.join(FILTERS)}")
    parser.add_argument("--no-check", action="store_true", help="skip the rollups-vs-raw consistency check")
    parser.add_argument("--no-explain", action="store_true")
    parser.add_argument("--no-replay", action="store_true", help="skip replaying the small site through ingest")
    parser.add_argument("--json", help="write every figure to this file")
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--events", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--json-out", help=argparse.SUPPRESS)
    parser.add_argument("--replay-from", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.reps, args.budget = "10k", 2, 2.0
    args.periods = [p for p in args.periods.split(",") if p]
    args.filters = [f for f in args.filters.split(",") if f]
    if args.worker:
        args.database = args.worker
        return worker(args)
    if args.replay_from:
        Path(args.json_out).write_text(json.dumps(replay_check(args.replay_from), default=str))
        return 0

    started = time.monotonic()
    report: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(),
        "load_before": os.getloadavg()[0],
        "periods": args.periods,
        "filters": args.filters,
        "runs": [],
    }
    sizes = [max(1000, int(parse_size(s) * args.scale)) for s in args.sizes.split(",") if s]
    for events in sizes:
        name = db_name(events)
        log(f"== {name}: {events:,} events (load average {os.getloadavg()[0]:.2f}) ==")
        run = run_worker(name, events, args, {})
        report["runs"].append(run)
        if run["data"]["generated"] and not args.no_replay and "replay" not in report:
            with tempfile.NamedTemporaryFile(suffix=".json", delete=False) as handle:
                out = Path(handle.name)
            cmd = [str(PYTHON), str(Path(__file__).resolve()), "--replay-from", name, "--json-out", str(out)]
            subprocess.run(cmd, cwd=ROOT, env=worker_env(CHECK_DB), check=True, timeout=3600)
            report["replay"] = json.loads(out.read_text())
            out.unlink()
            log(f"replay check: {report['replay']}")
    report["load_after"] = os.getloadavg()[0]
    report["seconds"] = time.monotonic() - started
    print()
    print(summary(report))
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Dashboard query benchmark: what one dashboard page costs the database, at 1M and 10M stored events.

A "view" is every selector call a dashboard page makes for one period and filter:
aggregate_compared (visitors, visits, pageviews, views_per_visit, bounce_rate, visit_duration),
timeseries of the period and of the previous period (visitors), and the 13 breakdown panels
(limit 10). Views: day / 30d / 12mo x unfiltered / visit:source==Google / event:page==/pricing.

Each size has its own database (bench_dash_1m, bench_dash_10m) holding a generated year of a
big site and of a small one (bench/dashboard_data.py); the small site's figures, measured in
the same database and run, are the baseline: the growth with stored events is big / small and
10M / 1M. The data is kept between runs: --reuse skips generation when the data version and
the row count match.

    .venv/bin/python bench/dashboard_queries.py --reuse                 # 1M and 10M (~25 min the first time)
    .venv/bin/python bench/dashboard_queries.py --sizes 1m --reuse      # 1M only
    .venv/bin/python bench/dashboard_queries.py --scale 0.01 --reps 3   # smoke run: 10k and 100k events
    .venv/bin/python bench/dashboard_queries.py --reuse --json /tmp/dash.json

Targets (issue 4): unfiltered 12mo view p95 < 100 ms at 10M and flat in the event count;
filtered 30d view p95 < 1 s at 10M.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, ROOT, app_env, log, machine, mysql_connect
from bench.dashboard_data import BIG_DOMAIN, DATA_VERSION, INTERACTIVE, SMALL_DOMAIN, TZ_NAME

PERIODS = ("day", "30d", "12mo")
FILTERS = {"none": "", "source": "visit:source==Google", "page": "event:page==/pricing"}
HEADLINE = ("visitors", "visits", "pageviews", "views_per_visit", "bounce_rate", "visit_duration")
# Panel -> metrics; used only if dashboard/report_data.py (the page's builder) is missing.
PANELS = {
    "event:page": "visitors,pageviews,bounce_rate,visit_duration",
    **{
        f"visit:{name}": "visitors,visits,pageviews,bounce_rate,visit_duration"
        for name in ("entry_page", "exit_page", "source", "referrer", "utm_source", "utm_medium", "utm_campaign")
    },
    **{
        f"visit:{name}": "visitors,visits,pageviews,bounce_rate,visit_duration"
        for name in ("country", "browser", "os", "device")
    },
    "event:name": "visitors,events",
}
MATCH_ALL = "visit:entry_page!=/nowhere"  # every visit passes: the raw path, same numbers as the rollups
CHECK_DB = "bench_dash_check"


def parse_size(text: str) -> int:
    text = text.strip().lower()
    mult = {"k": 1_000, "m": 1_000_000}.get(text[-1:], 1)
    return int(float(text.rstrip("km")) * mult)


def db_name(events: int) -> str:
    if events % 1_000_000 == 0:
        return f"bench_dash_{events // 1_000_000}m"
    return f"bench_dash_{events // 1000}k"


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- the database of one size (runs in a worker process, Django set up for that database) -------


def read_meta(name: str) -> dict[str, str] | None:
    try:
        conn = mysql_connect(name)
    except Exception:
        return None
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT k, v FROM bench_dash_meta")
            meta = dict(cur.fetchall())
            cur.execute("SELECT COUNT(*) FROM collector_event")
            meta["rows_now"] = str(cur.fetchone()[0])
        return meta
    except Exception:
        return None
    finally:
        conn.close()


def recreate_database(name: str) -> None:
    if not name.startswith("bench_dash_"):
        raise ValueError(name)
    conn = mysql_connect()
    with conn.cursor() as cur:
        cur.execute(f"DROP DATABASE IF EXISTS `{name}`")
        cur.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
    conn.close()


def ensure_data(name: str, events: int, reuse: bool) -> dict[str, Any]:
    """Generate the database unless --reuse and its marker match. Django must be set up for it."""
    from django.core.management import call_command

    from bench.dashboard_data import generate

    meta = read_meta(name)
    if (
        reuse
        and meta
        and meta.get("version") == str(DATA_VERSION)
        and meta.get("target") == str(events)
        and meta.get("rows") == meta.get("rows_now")
    ):
        log(f"{name}: reusing generated data ({int(meta['rows']):,} events, end day {meta['end_day']})")
        call_command("migrate", verbosity=0, interactive=False)  # new migrations (indexes) apply here
        ensure_monthly(name)
        return {"generated": False, "end_day": meta["end_day"], "rows": int(meta["rows"])}
    from django.db import connection

    connection.close()
    recreate_database(name)
    log(f"{name}: created; migrating")
    call_command("migrate", verbosity=0, interactive=False)
    from dashboard.models import Site

    site_ids = {}
    for domain in (BIG_DOMAIN, SMALL_DOMAIN):
        site_ids[domain] = Site.objects.create(domain=domain, name=domain, timezone=TZ_NAME).id
    end_day = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    log(f"{name}: generating {events:,} + small site events, 365 days ending {end_day}")
    stats = generate(name, site_ids, events, end_day)
    ensure_monthly(name)
    conn = mysql_connect(name)
    conn.autocommit(True)
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM collector_event")
        rows = int(cur.fetchone()[0])
        cur.execute("CREATE TABLE bench_dash_meta (k VARCHAR(40) PRIMARY KEY, v VARCHAR(200) NOT NULL)")
        meta_rows = {"version": DATA_VERSION, "target": events, "rows": rows, "end_day": end_day.isoformat()}
        cur.executemany("INSERT INTO bench_dash_meta VALUES (%s, %s)", [(k, str(v)) for k, v in meta_rows.items()])
    conn.close()
    stats.update(table_stats(name))
    log(f"{name}: generated in {stats['seconds']:.0f} s: {rows:,} events")
    return {"generated": True, "end_day": end_day.isoformat(), "rows": rows, "generation": stats}


def ensure_monthly(name: str) -> None:
    """Fill collector_monthlybreakdown from collector_dailybreakdown (one INSERT ... SELECT ...
    GROUP BY, collector.rollups.backfill_monthly) if it is empty while the daily rows are not:
    data generated before the table existed is kept, not regenerated."""
    from django.db import connection

    from collector.rollups import backfill_monthly

    with connection.cursor() as cur:
        cur.execute("SELECT EXISTS (SELECT 1 FROM collector_monthlybreakdown)")
        has_monthly = cur.fetchone()[0]
        cur.execute("SELECT EXISTS (SELECT 1 FROM collector_dailybreakdown)")
        has_daily = cur.fetchone()[0]
    if has_monthly or not has_daily:
        return
    t = time.perf_counter()
    backfill_monthly(connection)
    with connection.cursor() as cur:
        cur.execute("ANALYZE TABLE collector_monthlybreakdown")
        cur.fetchall()
    log(f"{name}: collector_monthlybreakdown filled from the daily rows in {time.perf_counter() - t:.0f} s")


def table_stats(name: str) -> dict[str, Any]:
    conn = mysql_connect(name)
    out = {}
    with conn.cursor() as cur:
        tables = ("collector_event", "collector_visit", "collector_dailybreakdown", "collector_monthlybreakdown")
        for table in (*tables, "collector_hourlytotal"):
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            rows = int(cur.fetchone()[0])
            cur.execute(
                "SELECT data_length + index_length FROM information_schema.tables "
                "WHERE table_schema = %s AND table_name = %s",
                [name, table],
            )
            out[table] = {"rows": rows, "mib": int(cur.fetchone()[0] or 0) // 2**20}
    conn.close()
    return {"tables": out}


# -- views ------------------------------------------------------------------------------------


def page_spec() -> tuple[tuple[str, ...], Callable[[Any, str], Any], list[tuple[str, str]]]:
    """What the dashboard page asks for: headline metrics, the chart's previous period, panels.

    Read from dashboard/report_data.py (the page's own builder) when it exists, so the bench
    follows the page; otherwise the same choices as constants.
    """
    try:
        from dashboard import report_data
        from dashboard.selectors import METRICS

        panels = [(spec.prop, ",".join(c for c in spec.columns if c in METRICS)) for spec in report_data.PANELS]
        return tuple(report_data.HEADLINE), report_data.chart_previous_period, panels
    except ImportError:
        return HEADLINE, lambda period, interval: period.previous(), list(PANELS.items())


def view_parts(site: Any, period: Any, filters: str) -> list[tuple[str, Callable[[], Any]]]:
    """The selector calls of one dashboard page (report_data.build_report), one part each."""
    from dashboard import selectors

    headline, previous_period, panels = page_spec()
    interval = period.default_interval
    previous = previous_period(period, interval)
    parts: list[tuple[str, Callable[[], Any]]] = [
        ("aggregate_compared", lambda: selectors.aggregate_compared(site, period, headline, filters)),
        ("timeseries", lambda: selectors.timeseries(site, period, headline, filters, interval)),
        ("timeseries previous", lambda: selectors.timeseries(site, previous, headline, filters, interval)),
    ]
    for prop, metrics in panels:
        parts.append(
            (prop, lambda prop=prop, metrics=metrics: selectors.breakdown(site, period, prop, metrics, filters, 10))
        )
    return parts


class ViewTimeout(Exception):
    pass


VIEW_TIMEOUT = [300.0]  # seconds one run of a view may take (--view-timeout); checked between calls


def run_view(parts: list[tuple[str, Callable[[], Any]]]) -> tuple[float, dict[str, float]]:
    from django.core.cache import cache

    cache.clear()
    times = {}
    started = time.perf_counter()
    for name, call in parts:
        t = time.perf_counter()
        call()
        times[name] = (time.perf_counter() - t) * 1000
        if time.perf_counter() - started > VIEW_TIMEOUT[0]:
            raise ViewTimeout(f"view stopped after {time.perf_counter() - started:.0f} s (at {name})")
    return sum(times.values()), times


def measure_view(parts: list[tuple[str, Callable[[], Any]]], reps: int, warmups: int, budget: float) -> dict[str, Any]:
    """Warm-ups, then up to `reps` repetitions within about `budget` seconds.

    A view slower than the budget is run once and that run is reported (n=1). A statement
    that runs into the session's max_statement_time stops the view: reported as timed out.
    """
    from django.db import OperationalError

    try:
        first, first_parts = run_view(parts)
        samples = []
        if first > budget * 1000:
            samples = [(first, first_parts)]
        else:
            if warmups > 1 and first < budget * 1000 / 6:
                run_view(parts)
            n = max(1, min(reps, int(budget * 1000 / max(first, 1e-3))))
            samples = [run_view(parts) for _ in range(n)]
    except (OperationalError, ViewTimeout) as exc:
        return {"n": 0, "timeout": str(exc)[:200], "p50": None, "p95": None, "max": None, "parts": {}}
    totals = [total for total, _ in samples]
    per_part = {name: [times[name] for _, times in samples] for name, _ in parts}
    return {
        "n": len(samples),
        "p50": percentile(totals, 50),
        "p95": percentile(totals, 95),
        "max": max(totals),
        "parts": {name: {"p50": percentile(v, 50), "p95": percentile(v, 95)} for name, v in per_part.items()},
    }


def consistency(site: Any, period: Any) -> list[str]:
    """Unfiltered (rollups) against a filter every visit passes (raw events): must be identical."""
    from dashboard import selectors

    problems = []
    metrics = (*HEADLINE, "events")
    a = selectors.aggregate(site, period, metrics)
    b = selectors.aggregate(site, period, metrics, MATCH_ALL)
    if a != b:
        problems.append(f"aggregate {a} != {b}")
    a = selectors.timeseries(site, period, metrics)
    b = selectors.timeseries(site, period, metrics, MATCH_ALL)
    if a != b:
        diff = [(x, y) for x, y in zip(a, b, strict=True) if x != y][:2]
        problems.append(f"timeseries differs in {sum(x != y for x, y in zip(a, b, strict=True))} buckets: {diff}")
    for prop in selectors.PROPERTIES:
        metrics = selectors.PROPERTIES[prop].metrics
        a = selectors.breakdown(site, period, prop, metrics, None, 10)
        b = selectors.breakdown(site, period, prop, metrics, MATCH_ALL, 10)
        if a != b:
            problems.append(f"breakdown {prop}: {a[:2]} != {b[:2]}")
    return problems


def explain(site: Any, period: Any, filters: str) -> list[dict[str, Any]]:
    """EXPLAIN of every distinct SQL statement of one filtered view."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    # A stopped view (ViewTimeout): explain the statements run so far.
    with CaptureQueriesContext(connection) as captured, contextlib.suppress(ViewTimeout):
        run_view(view_parts(site, period, filters))
    plans = []
    seen = set()
    with connection.cursor() as cur:
        for query in captured.captured_queries:
            sql = query["sql"]
            if not sql.lstrip().upper().startswith("SELECT") or sql in seen:
                continue
            seen.add(sql)
            cur.execute("EXPLAIN " + sql)
            cols = [c[0] for c in cur.description]
            rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
            plans.append(
                {
                    "sql": sql[:300],
                    "ms": float(query["time"]) * 1000,
                    "plan": [
                        {k: r.get(k) for k in ("select_type", "table", "type", "key", "key_len", "rows", "Extra")}
                        for r in rows
                    ],
                }
            )
    return plans


def check_plans(plans: list[dict[str, Any]]) -> list[str]:
    """The filtered path must reach events by (site, ts) and visits by (site, visit_key) / (site, started),
    and use both columns of (site, ts) / (site, started): `ref` on the site part alone (key_len 8)
    reads every index entry the site ever stored and filters the time by index condition pushdown."""
    problems = []
    for item in plans:
        for row in item["plan"]:
            table, key, key_len = row["table"] or "", row["key"] or "", str(row.get("key_len") or "")
            if table.startswith("collector_event") and not key.startswith("event_site"):
                problems.append(f"collector_event read by {key or 'a full scan'}: {item['sql'][:120]}")
            elif table.startswith("collector_event") and row["type"] == "ref" and key_len == "8":
                problems.append(f"collector_event: ref on the site part of {key} only (all the site's entries)")
            if table.startswith("collector_visit") and not key.startswith("visit_site"):
                problems.append(f"collector_visit read by {key or 'a full scan'}: {item['sql'][:120]}")
            elif table.startswith("collector_visit") and key == "visit_site_started" and key_len == "8":
                problems.append("collector_visit: ref on the site part of visit_site_started only")
    return sorted(set(problems))


def worker(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    from dashboard.models import Site
    from dashboard.selectors.periods import Period, parse_period

    def limit_statements(sender: Any, connection: Any, **kwargs: Any) -> None:
        with connection.cursor() as cur:  # MariaDB: abort a statement after this many seconds
            cur.execute(f"SET SESSION max_statement_time = {float(args.statement_timeout)}")

    if args.statement_timeout > 0:
        connection_created.connect(limit_statements)
    VIEW_TIMEOUT[0] = args.view_timeout

    out: dict[str, Any] = {"database": args.database, "events_target": args.events}
    out["data"] = ensure_data(args.database, args.events, args.reuse)
    out["data"].update(table_stats(args.database))
    end_day = dt.date.fromisoformat(out["data"]["end_day"])
    sites = {"big": Site.objects.get(domain=BIG_DOMAIN), "small": Site.objects.get(domain=SMALL_DOMAIN)}
    tz = sites["big"].tz

    def period_of(name: str) -> Period:
        return parse_period(name, end_day.isoformat(), tz)

    if not args.no_check:
        t = time.perf_counter()
        out["consistency"] = {label: consistency(sites["big"], period_of(label)) for label in ("day", "30d")}
        out["consistency_s"] = time.perf_counter() - t
        for label, problems in out["consistency"].items():
            log(f"{args.database}: consistency {label}: {problems or 'OK'}")

    out["views"] = []
    for site_label in ("small", "big"):
        for period_label in args.periods:
            for filter_label in args.filters:
                period = period_of(period_label)
                parts = view_parts(sites[site_label], period, FILTERS[filter_label])
                result = measure_view(parts, args.reps, args.warmups, args.budget)
                result.update({"site": site_label, "period": period_label, "filter": filter_label})
                out["views"].append(result)
                if result["n"] == 0:
                    log(
                        f"{args.database} {site_label:5} {period_label:4} {filter_label:6}: "
                        f"TIMED OUT {result['timeout']}"
                    )
                    continue
                slowest = max(result["parts"].items(), key=lambda kv: kv[1]["p50"])
                log(
                    f"{args.database} {site_label:5} {period_label:4} {filter_label:6}: n={result['n']:2} "
                    f"p50 {result['p50']:9.1f} ms  p95 {result['p95']:9.1f} ms  "
                    f"(slowest part {slowest[0]} p50 {slowest[1]['p50']:.1f} ms)"
                )
    if not args.no_explain:
        out["explain"] = {}
        for filter_label in [f for f in args.filters if f != "none"]:
            plans = explain(sites["big"], period_of("30d"), FILTERS[filter_label])
            out["explain"][filter_label] = {"plans": plans, "problems": check_plans(plans)}
            log(
                f"{args.database}: EXPLAIN 30d {filter_label}: {len(plans)} statements, problems: "
                f"{out['explain'][filter_label]['problems'] or 'none'}"
            )
    Path(args.json_out).write_text(json.dumps(out, indent=1, default=str))
    return 0


# -- replay check (worker process, Django set up for CHECK_DB) ----------------------------------


def replay_check(source_db: str) -> dict[str, Any]:
    """Replay the small site's generated events through ingest_batch; compare visits and rollups."""
    import django
    from django.core.management import call_command

    django.setup()
    from collector.ingest import ingest_batch
    from dashboard.models import Site

    recreate_database(CHECK_DB)
    call_command("migrate", verbosity=0, interactive=False)
    src = mysql_connect(source_db)
    cur = src.cursor()
    cur.execute("SELECT id, domain, timezone FROM dashboard_site WHERE domain = %s", [SMALL_DOMAIN])
    site_id, domain, tz = cur.fetchone()
    Site.objects.create(id=site_id, domain=domain, name=domain, timezone=tz)
    cur.execute(
        "SELECT hit_id, ts, name, path, hostname, referrer, referrer_source, utm_source, utm_medium, utm_campaign, "
        "browser, os, device, country, value, props, scroll_depth, engaged_ms, visitor_id "
        "FROM collector_event WHERE site_id = %s ORDER BY ts",
        [site_id],
    )
    hits = []
    for row in cur.fetchall():
        (hid, ts, name, path, host, ref, src_, us, um, uc, b, os_, dev, cc, value, props, sd, e, vid) = row
        hit: dict[str, Any] = {
            "id": hid,
            "site": site_id,
            "ts": int(ts.replace(tzinfo=dt.UTC).timestamp() * 1000),
            "n": name,
            "p": path,
            "host": host,
            "b": b,
            "os": os_,
            "dev": dev,
            "cc": cc,
            "i": INTERACTIVE.get(name, True),
            "vid": vid,
        }
        if src_:
            hit["src"] = src_
        if ref:
            hit["ref"] = ref
        if us or um or uc:
            hit["utm"] = [us, um, uc, "", ""]
        if value is not None:
            hit["v"] = value
        if props:
            hit["props"] = json.loads(props)
        if sd is not None:
            hit["sd"] = sd
        if e is not None:
            hit["e"] = e
        hits.append(hit)
    t = time.perf_counter()
    for i in range(0, len(hits), 1000):
        ingest_batch(hits[i : i + 1000])
    ingest_s = time.perf_counter() - t
    dst = mysql_connect(CHECK_DB)
    queries = {
        "collector_hourlytotal": "SELECT day, hour, visitors, new_visitors, visits, pageviews, bounces, duration, "
        "events FROM collector_hourlytotal WHERE site_id = %s",
        "collector_dailybreakdown": "SELECT dim, day, value_hash, CAST(value AS BINARY), visitors, visits, pageviews, "
        "bounces, duration, events, value_sum, engaged_ms, engagements, scroll_sum FROM collector_dailybreakdown "
        "WHERE site_id = %s",
        "collector_monthlybreakdown": "SELECT dim, month, value_hash, CAST(value AS BINARY), visitors, visits, "
        "pageviews, bounces, duration, events, value_sum, engaged_ms, engagements, scroll_sum "
        "FROM collector_monthlybreakdown WHERE site_id = %s",
        "collector_visit": "SELECT visitor_id, started, day, last_seen, pageviews, events, interactive, engaged_ms, "
        "CAST(CONCAT_WS('|', entry_path, exit_path, referrer, referrer_source, utm_source, utm_medium, utm_campaign, "
        "browser, os, device, country) AS BINARY) FROM collector_visit WHERE site_id = %s",
    }
    NUMBERS_FROM = {"collector_hourlytotal": 2, "collector_dailybreakdown": 4, "collector_monthlybreakdown": 4}
    result: dict[str, Any] = {"hits": len(hits), "ingest_s": ingest_s, "tables": {}}
    for table, sql in queries.items():
        rows = []
        for conn in (src, dst):
            with conn.cursor() as c:
                c.execute(sql, [site_id])
                # The worker leaves rows whose increments cancelled out (an exit page that stopped
                # being one): all numbers 0, never shown. The generator writes no such rows.
                rows.append(
                    {
                        tuple(str(x) for x in r)
                        for r in c.fetchall()
                        if table == "collector_visit" or any(r[NUMBERS_FROM[table] :])
                    }
                )
        generated, replayed = rows
        result["tables"][table] = {
            "generated": len(generated),
            "replayed": len(replayed),
            "only_generated": sorted(generated - replayed)[:3],
            "only_replayed": sorted(replayed - generated)[:3],
            "equal": generated == replayed,
        }
    src.close()
    dst.close()
    return result


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
    env = app_env(name, REDIS_URL="", CELERY_BROKER_URL="", ALLOW_LOCMEM_CACHE="1")
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
    last = runs[-1]
    lines += ["", f"Per part at {last['database']}, big site (p50 ms):", ""]
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
    lines.append("")
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

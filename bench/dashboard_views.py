"""The worker side of the dashboard query bench (bench/dashboard_queries.py runs it, one process
per size, Django set up for that size's database): the generated data, kept and reused; the
views a dashboard page makes, measured; the consistency and EXPLAIN checks.

The app's modules are imported inside the functions: they need Django set up, and the parent
process that imports this module for its constants never sets it up.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import time
import zoneinfo
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.common import (
    STORED_TABLES,
    BenchDatabase,
    add_indexes,
    analyze,
    drop_indexes,
    log,
    mysql_connect,
    percentile,
    table_stats,
)
from bench.dashboard_data import (
    BIG_DOMAIN,
    DATA_VERSION,
    DAYS,
    EVENTS_PER_VISIT,
    GEN_TABLE,
    SMALL_DOMAIN,
    SMALL_EVENTS,
    TZ_NAME,
    Layout,
    all_values,
    gen_visits,
    insert_events,
    insert_visits,
)
from bench.dashboard_rollups import rollups

FILTERS = {"none": "", "source": "visit:source==Google", "page": "event:page==/pricing"}
MATCH_ALL = "visit:entry_page!=/nowhere"  # every visit passes: the raw path, same numbers as the rollups
DATA_TABLES = (
    "collector_event",
    "collector_visit",
    "collector_dailybreakdown",
    "collector_monthlybreakdown",
    "collector_hourlytotal",
)


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


def ensure_data(name: str, events: int, reuse: bool) -> dict[str, Any]:
    """Generate the database unless --reuse and its marker match. Django must be set up for it."""
    from django.core.management import call_command

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
    BenchDatabase(name).recreate()
    log(f"{name}: created; migrating")
    call_command("migrate", verbosity=0, interactive=False)
    from sites.models import Site

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
    stats.update(data_tables(name))
    log(f"{name}: generated in {stats['seconds']:.0f} s: {rows:,} events")
    return {"generated": True, "end_day": end_day.isoformat(), "rows": rows, "generation": stats}


def generate(db_name: str, site_ids: dict[str, int], big_events: int, end_day: dt.date) -> dict[str, Any]:
    """Fill an empty, migrated database (sites created) with the generated year. Returns stats."""
    # Imported here: the app's modules need Django set up (the worker process does it first).
    from collector.ingest import hash64

    layout = Layout(end_day, zoneinfo.ZoneInfo(TZ_NAME))
    conn = mysql_connect(db_name)
    conn.autocommit(True)
    stats: dict[str, Any] = {}
    t_all = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SET SESSION time_zone = '+00:00', SESSION unique_checks = 0, SESSION foreign_key_checks = 0")
        cur.execute("SET SESSION tmp_table_size = 268435456, SESSION max_heap_table_size = 268435456")
        cur.execute("DROP TABLE IF EXISTS bench_dash_gen, bench_dash_hash")
        cur.execute(GEN_TABLE)
        cur.execute(
            "CREATE TABLE bench_dash_hash (value VARCHAR(255) COLLATE utf8mb4_bin NOT NULL PRIMARY KEY, "
            "h BIGINT NOT NULL) CHARACTER SET utf8mb4",
        )
        cur.executemany("INSERT INTO bench_dash_hash VALUES (%s, %s)", [(v, hash64(v)) for v in sorted(all_values())])

        t = time.perf_counter()
        ranges = {}
        v = 0
        for domain, events in ((BIG_DOMAIN, big_events), (SMALL_DOMAIN, SMALL_EVENTS)):
            n_visits = max(DAYS, round(events / EVENTS_PER_VISIT))
            end = gen_visits(cur, layout, site_ids[domain], v, n_visits)
            ranges[domain] = (v, end)
            v = end
        stats["gen_visits_s"] = time.perf_counter() - t
        log(f"{db_name}: {v:,} visits planned in {stats['gen_visits_s']:.0f} s")

        t = time.perf_counter()
        visit_indexes = drop_indexes(cur, "collector_visit")
        chunk = 500_000
        for lo, hi in ranges.values():
            for a in range(lo, hi, chunk):
                insert_visits(cur, layout, a, min(hi, a + chunk))
        log(f"{db_name}: visits inserted in {time.perf_counter() - t:.0f} s; building their indexes")
        add_indexes(cur, "collector_visit", visit_indexes)
        stats["visits_s"] = time.perf_counter() - t

        t = time.perf_counter()
        done = 0
        for domain, (lo, hi) in ranges.items():
            step = max(1, 300_000 // 3)  # ~300k events per statement
            for a in range(lo, hi, step):
                done += insert_events(cur, layout, domain, a, min(hi, a + step))
                if domain == BIG_DOMAIN and (a - lo) // step % 10 == 9:
                    rate = done / (time.perf_counter() - t)
                    log(f"{db_name}: events {done:,} ({rate:,.0f} rows/s)")
        stats["events_s"] = time.perf_counter() - t
        log(f"{db_name}: {done:,} events inserted in {stats['events_s']:.0f} s; rollups")

        t = time.perf_counter()
        for domain in ranges:
            rollups(cur, layout, site_ids[domain])
        stats["rollups_s"] = time.perf_counter() - t
        log(f"{db_name}: rollups in {stats['rollups_s']:.0f} s; analyzing")
        analyze(cur, STORED_TABLES)
        cur.execute("DROP TABLE bench_dash_gen")
        stats["seconds"] = time.perf_counter() - t_all
    conn.close()
    return stats


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


def data_tables(name: str) -> dict[str, Any]:
    conn = mysql_connect(name)
    with conn.cursor() as cur:
        tables = table_stats(cur, DATA_TABLES)
    conn.close()
    return {"tables": tables}


# -- views ------------------------------------------------------------------------------------


def page_spec() -> tuple[tuple[str, ...], Callable[[Any, str], Any], list[tuple[str, str]]]:
    """What the dashboard page asks for: headline metrics, the chart's previous period, panels,
    read from dashboard/report_data.py (the page's own builder), so the bench follows the page."""
    from dashboard import report_data
    from dashboard.selectors import METRICS

    panels = [(spec.prop, ",".join(c for c in spec.columns if c in METRICS)) for spec in report_data.PANELS]
    return tuple(report_data.HEADLINE), report_data.chart_previous_period, panels


def view_parts(site: Any, period: Any, filters: str) -> list[tuple[str, Callable[[], Any]]]:
    """The selector calls of one dashboard page (report_data.build_report), one part each."""
    from dashboard import selectors
    from dashboard.selectors.periods import compared_periods

    headline, previous_period, panels = page_spec()
    interval = period.default_interval
    previous = previous_period(period, interval)
    current, compared = compared_periods(period)
    series = [(current, "date"), (compared, "date"), (period, interval), (previous, interval)]
    parts: list[tuple[str, Callable[[], Any]]] = [
        # build_report announces its reads first (ClickHouse makes them one statement).
        (
            "prefetch",
            lambda: selectors.prefetch(
                site, period, filters, breakdowns=[(p, m, 10) for p, m in panels], series=series
            ),
        ),
        ("aggregate_compared", lambda: selectors.aggregate_compared(site, period, headline, filters)),
        ("timeseries", lambda: selectors.timeseries(site, period, headline, filters, interval)),
        ("timeseries previous", lambda: selectors.timeseries(site, previous, headline, filters, interval)),
    ]
    for prop, metrics in panels:
        parts.append(
            (prop, lambda prop=prop, metrics=metrics: selectors.breakdown(site, period, prop, metrics, filters, 10))
        )
    return parts


def check_and_measure(
    out: dict[str, Any],
    args: argparse.Namespace,
    sites: dict[str, Any],
    period_of: Callable[[str], Any],
    note: str = "",
) -> None:
    """A bench worker's checks and measurements, into `out`: the consistency of the big site's
    day and 30 days (unless --no-check; `note` says what it compares), then every view of both
    sites (args.periods x args.filters), each logged with its slowest part."""
    if not args.no_check:
        t = time.perf_counter()
        out["consistency"] = {label: consistency(sites["big"], period_of(label)) for label in ("day", "30d")}
        out["consistency_s"] = time.perf_counter() - t
        for label, problems in out["consistency"].items():
            log(f"{args.database}: consistency {label}{note}: {problems or 'OK'}")
    out["views"] = []
    for site_label in ("small", "big"):
        for period_label in args.periods:
            for filter_label in args.filters:
                parts = view_parts(sites[site_label], period_of(period_label), FILTERS[filter_label])
                result = measure_view(parts, args.reps, args.warmups, args.budget)
                result.update({"site": site_label, "period": period_label, "filter": filter_label})
                out["views"].append(result)
                name = f"{args.database} {site_label:5} {period_label:4} {filter_label:6}"
                if result["n"] == 0:
                    log(f"{name}: TIMED OUT {result['timeout']}")
                    continue
                slowest = max(result["parts"].items(), key=lambda kv: kv[1]["p50"])
                log(
                    f"{name}: n={result['n']:2} p50 {result['p50']:9.1f} ms  p95 {result['p95']:9.1f} ms  "
                    f"(slowest part {slowest[0]} p50 {slowest[1]['p50']:.1f} ms)"
                )


class ViewTimeout(Exception):
    pass


VIEW_TIMEOUT = [300.0]  # seconds one run of a view may take (--view-timeout); checked between calls


def run_view(parts: list[tuple[str, Callable[[], Any]]]) -> tuple[float, dict[str, float]]:
    """One run of the view's calls, in one selectors.one_view() as build_report makes them."""
    from django.core.cache import cache

    from dashboard import selectors

    cache.clear()
    times = {}
    started = time.perf_counter()
    with selectors.one_view():
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
        "p50": percentile(totals, 50, interpolate=True),
        "p95": percentile(totals, 95, interpolate=True),
        "max": max(totals),
        "parts": {
            name: {"p50": percentile(v, 50, interpolate=True), "p95": percentile(v, 95, interpolate=True)}
            for name, v in per_part.items()
        },
    }


def consistency(site: Any, period: Any) -> list[str]:
    """Unfiltered (rollups) against a filter every visit passes (raw events): must be identical."""
    from dashboard import selectors
    from dashboard.report_data import HEADLINE

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
            elif table.startswith("collector_visit") and key.startswith("visit_site_started") and key_len == "8":
                problems.append("collector_visit: ref on the site part of visit_site_started only")
    return sorted(set(problems))


def worker(args: argparse.Namespace) -> int:
    import django

    django.setup()
    from django.db.backends.signals import connection_created

    from dashboard.selectors.periods import Period, parse_period
    from sites.models import Site

    def limit_statements(sender: Any, connection: Any, **kwargs: Any) -> None:
        with connection.cursor() as cur:  # MariaDB: abort a statement after this many seconds
            cur.execute(f"SET SESSION max_statement_time = {float(args.statement_timeout)}")

    if args.statement_timeout > 0:
        connection_created.connect(limit_statements)
    VIEW_TIMEOUT[0] = args.view_timeout

    out: dict[str, Any] = {"database": args.database, "events_target": args.events}
    out["data"] = ensure_data(args.database, args.events, args.reuse)
    out["data"].update(data_tables(args.database))
    end_day = dt.date.fromisoformat(out["data"]["end_day"])
    sites = {"big": Site.objects.get(domain=BIG_DOMAIN), "small": Site.objects.get(domain=SMALL_DOMAIN)}
    tz = sites["big"].tz

    def period_of(name: str) -> Period:
        return parse_period(name, end_day.isoformat(), tz)

    check_and_measure(out, args, sites, period_of)
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

"""Fill a bench database with stored data fast: INSERT ... SELECT from MariaDB's sequence engine.

Going through ingest_batch would take hours for 10M events, so the rows are generated in SQL:
events of one site spread evenly over the 365 days that end before the days the ingest bench
writes, ~4 events per visit with the matching collector_visit rows, and the rollups
(collector_hourlytotal: every hour of the year; collector_dailybreakdown: per day ~E/3 pages,
~E/6 entry and exit pages, and all values of the small dimensions, E = events per day).

Each fill step ("stage") spreads its rows over the whole year and the whole key space (hit ids,
visit keys, visitor ids), in increasing order within the step: every index is then filled by
appends or by one ordered merge pass, which keeps filling fast, while a later random hit id or
visitor id still lands anywhere in the indexes, as in a table grown by real traffic.

    .venv/bin/python bench/fill.py --database bench_fathom --events 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import math
import sys
import time
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import (
    BENCH_DOMAIN,
    BROWSERS,
    COUNTRIES,
    CUSTOM_EVENTS,
    DEVICES,
    INGEST_DAYS_AGO,
    OSES,
    SECTIONS,
    SOURCES,
    STORED_TABLES,
    BenchDatabase,
    analyze,
    insert_select,
    log,
    sql_elt,
    table_stats,
)
from collector.payload import ENGAGEMENT

CHUNK = 500_000
EVENTS_PER_VISIT = 4
DAYS = 365
SOURCE_NAMES = [name for _, name in SOURCES]
BROWSER_NAMES = [name for name, _ in BROWSERS]
OS_NAMES = [name for name, _ in OSES]
DEVICE_NAMES = [name for name, _ in DEVICES]
HASH_MUL = 2654435761
HASH_MOD = 4294967291
TWO_63 = 2**63


def _elt(index_sql: str, values: tuple[str, ...] | list[str]) -> str:
    """One of values, picked by an SQL integer expression (modulo their number)."""
    return sql_elt(f"1 + ({index_sql}) % {len(values)}", values)


def fill_window(today: dt.date | None = None) -> tuple[dt.datetime, dt.datetime]:
    """[start, end) of the filled year: it ends the day before the first day the ingest bench writes."""
    today = today or dt.datetime.now(dt.UTC).date()
    end = dt.datetime.combine(today - dt.timedelta(days=INGEST_DAYS_AGO), dt.time())
    return end - dt.timedelta(days=DAYS), end


def _source_columns(has_source: str) -> dict[str, str]:
    """referrer and referrer_source of a visit (t.hv) that has one where has_source holds."""
    source = _elt("t.hv DIV 19", SOURCE_NAMES)
    return {
        "referrer": f"CASE WHEN {has_source} THEN LOWER(REPLACE({source}, ' ', '')) ELSE '' END",
        "referrer_source": f"CASE WHEN {has_source} THEN {source} ELSE '' END",
    }


def _client_columns() -> dict[str, str]:
    """browser, os, device and country of a visit (t.hv)."""
    return {
        "browser": _elt("t.hv DIV 3", BROWSER_NAMES),
        "os": _elt("t.hv DIV 5", OS_NAMES),
        "device": _elt("t.hv DIV 7", DEVICE_NAMES),
        "country": f"SUBSTRING('{''.join(COUNTRIES)}', 1 + 2 * ((t.hv DIV 23) % {len(COUNTRIES)}), 2)",
    }


def _event_columns(site_id: int, stage: int, n: int, start: dt.datetime) -> dict[str, str]:
    step_us = DAYS * 86_400_000_000 / n
    nv = math.ceil(n / EVENTS_PER_VISIT)
    key_step = (2**64 - 2**20) // nv
    name = (
        "CASE WHEN t.h % 100 < 5 THEN "
        + _elt("t.h DIV 100", CUSTOM_EVENTS)
        + f" WHEN t.h % 100 < 25 AND t.i % 4 <> 0 THEN '{ENGAGEMENT}' ELSE 'pageview' END"
    )
    path = (
        "CASE WHEN (t.h DIV 7) % 10 = 0 THEN '/' ELSE CONCAT('/', " + _elt("t.pk", SECTIONS) + ", '/page-', t.pk) END"
    )
    has_source = "(t.i % 4 = 0 AND (t.hv DIV 17) % 10 >= 4)"
    return {
        "site_id": str(site_id),
        "hit_id": (
            f"LOWER(CONCAT(LPAD(HEX(FLOOR(t.i * {4294967295 / n!r})), 8, '0'), LPAD(HEX({stage}), 2, '0'), "
            "LPAD(HEX(t.i), 22, '0')))"
        ),
        "ts": f"TIMESTAMPADD(MICROSECOND, FLOOR(t.i * {step_us!r}), '{start:%Y-%m-%d %H:%M:%S}')",
        "visitor_id": f"CAST(t.v AS DECIMAL(30, 0)) * {key_step} + {key_step // 2} - {TWO_63}",
        "visit_key": f"CAST(t.v AS DECIMAL(30, 0)) * {key_step} - {TWO_63} + {stage}",
        "name": name,
        "path": path,
        "hostname": f"'{BENCH_DOMAIN}'",
        **_source_columns(has_source),
        "utm_source": "''",
        "utm_medium": "''",
        "utm_campaign": "''",
        "utm_content": "''",
        "utm_term": "''",
        **_client_columns(),
        "value": "CASE WHEN t.h % 100 < 5 AND (t.h DIV 100) % 4 = 3 THEN 1999 ELSE NULL END",
        "props": "NULL",
        "scroll_depth": "CASE WHEN t.h % 100 BETWEEN 5 AND 24 AND t.i % 4 <> 0 THEN 10 + t.h % 91 ELSE NULL END",
        "engaged_ms": "CASE WHEN t.h % 100 BETWEEN 5 AND 24 AND t.i % 4 <> 0 THEN (t.h DIV 91) % 600000 ELSE NULL END",
    }


def _visit_columns(site_id: int, stage: int, n: int, start: dt.datetime) -> dict[str, str]:
    step_us = DAYS * 86_400_000_000 / n
    nv = math.ceil(n / EVENTS_PER_VISIT)
    key_step = (2**64 - 2**20) // nv
    started = f"TIMESTAMPADD(MICROSECOND, FLOOR(t.v * {EVENTS_PER_VISIT * step_us!r}), '{start:%Y-%m-%d %H:%M:%S}')"
    entry = "CONCAT('/', " + _elt("1 + (t.hv DIV 13) % 1999", SECTIONS) + ", '/page-', 1 + (t.hv DIV 13) % 1999)"
    exit_path = "CONCAT('/', " + _elt("1 + (t.hv DIV 31) % 1999", SECTIONS) + ", '/page-', 1 + (t.hv DIV 31) % 1999)"
    has_source = "((t.hv DIV 17) % 10 >= 4)"
    return {
        "site_id": str(site_id),
        "visit_key": f"CAST(t.v AS DECIMAL(30, 0)) * {key_step} - {TWO_63} + {stage}",
        "visitor_id": f"CAST(t.v AS DECIMAL(30, 0)) * {key_step} + {key_step // 2} - {TWO_63}",
        "day": f"DATE({started})",
        "started": started,
        "last_seen": f"TIMESTAMPADD(SECOND, 30 + t.hv % 900, {started})",
        "pageviews": "1 + t.hv % 4",
        "events": "CASE WHEN t.hv % 20 = 0 THEN 1 ELSE 0 END",
        "interactive": "CASE WHEN t.hv % 20 = 0 THEN 1 ELSE 0 END",
        "engaged_ms": "(t.hv DIV 91) % 600000",
        "entry_path": entry,
        "exit_path": exit_path,
        **_source_columns(has_source),
        "utm_source": "''",
        "utm_medium": "''",
        "utm_campaign": "''",
        **_client_columns(),
        # A visit's `seen` list holds ~12 64-bit hashes (dimension values, hours, pages).
        "seen": "CONCAT('[', REPEAT('-1234567890123456789,', 11), t.v, ']')",
    }


def daily_plan(total_events: int) -> dict[str, int]:
    """Distinct values per day and dimension for a site with total_events over a year."""
    per_day = total_events / DAYS
    return {
        "page": min(2000, math.ceil(per_day / 3)),
        "entry_page": min(1200, math.ceil(per_day / 6)),
        "exit_page": min(1200, math.ceil(per_day / 6)),
        "source": 31,
        "referrer": 30,
        "browser": len(BROWSERS),
        "os": len(OSES),
        "device": len(DEVICES),
        "country": len(COUNTRIES),
        "event": len(CUSTOM_EVENTS),
    }


def _fill_daily(cur: Any, site_id: int, total_events: int, start: dt.datetime) -> int:
    added = 0
    per_day = max(1, total_events // DAYS)
    for dim_no, (dim, values) in enumerate(daily_plan(total_events).items()):
        if dim in ("page", "entry_page", "exit_page"):
            value = "CONCAT('/', " + _elt("v.seq", SECTIONS) + ", '/page-', v.seq)"
        else:
            value = f"CONCAT('{dim}-', v.seq)"
        columns = {
            "site_id": str(site_id),
            "day": f"DATE_ADD('{start:%Y-%m-%d}', INTERVAL d.seq DAY)",
            "dim": f"'{dim}'",
            "value_hash": f"{dim_no} * 4294967296 + v.seq",
            "value": value,
            "visitors": f"1 + {per_day} DIV (v.seq * 4)",
            "visits": f"1 + {per_day} DIV (v.seq * 4)",
            "pageviews": f"1 + {per_day} DIV (v.seq * 3)",
            "bounces": f"{per_day} DIV (v.seq * 9)",
            "duration": f"60 * (1 + {per_day} DIV (v.seq * 4))",
            "events": "0",
            "value_sum": "0",
            "engaged_ms": "0",
            "engagements": "0",
            "scroll_sum": "0",
        }
        source = f"seq_0_to_{DAYS - 1} AS d JOIN seq_1_to_{values} AS v ORDER BY d.seq, v.seq"
        added += insert_select(cur, "collector_dailybreakdown", columns, source, ignore=True)
    return added


def _fill_hourly(cur: Any, site_id: int, total_events: int, start: dt.datetime) -> int:
    per_hour = max(1, total_events // (DAYS * 24))
    columns = {
        "site_id": str(site_id),
        "day": f"DATE_ADD('{start:%Y-%m-%d}', INTERVAL h.seq DIV 24 DAY)",
        "hour": "h.seq % 24",
        "visitors": f"{per_hour} DIV 4 + 1",
        "new_visitors": f"{per_hour} DIV 5 + 1",
        "visits": f"{per_hour} DIV 4 + 1",
        "pageviews": f"{per_hour}",
        "bounces": f"{per_hour} DIV 8",
        "duration": f"{per_hour} * 30",
        "events": f"{per_hour} DIV 20",
    }
    return insert_select(cur, "collector_hourlytotal", columns, f"seq_0_to_{DAYS * 24 - 1} AS h", ignore=True)


def fill_to(db: BenchDatabase, target_events: int) -> dict[str, Any]:
    """Add generated rows until collector_event holds target_events rows (never removes rows)."""
    conn = db.connect()
    conn.autocommit(True)
    started = time.perf_counter()
    with conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM collector_event")
        current = int(cur.fetchone()[0])
        n = int(target_events) - int(current)
        stats: dict[str, Any] = {"target_events": target_events, "added_events": max(0, n)}
        if n <= 0:
            log(f"fill: collector_event already holds {current} rows (target {target_events})")
            return stats
        start, end = fill_window()
        stage = _next_stage(cur)
        log(f"fill: adding {n:,} events (stage {stage}) over {start:%Y-%m-%d}..{end - dt.timedelta(days=1):%Y-%m-%d}")
        # t.i: row of this step (0..n-1); t.h: pseudo-random 32 bits; t.pk: a page (1..1999, skewed to
        # the low ones); t.v: the visit (4 rows each); t.hv: pseudo-random per visit.
        derived = (
            "(SELECT r.*, 1 + FLOOR(1998 * POW(((r.h DIV 13) % 10007) / 10007, 3)) AS pk FROM "
            f"(SELECT s.seq AS i, (s.seq * {HASH_MUL} + {stage * 7919}) % {HASH_MOD} AS h, s.seq DIV "
            f"{EVENTS_PER_VISIT} AS v, ((s.seq DIV {EVENTS_PER_VISIT}) * {HASH_MUL} + {stage * 104729}) % {HASH_MOD}"
            " AS hv FROM seq_{a}_to_{b} AS s) AS r) AS t"
        )
        event_columns = _event_columns(db.site_id, stage, n, start)
        t0 = time.perf_counter()
        for a in range(0, n, CHUNK):
            b = min(n, a + CHUNK) - 1
            insert_select(cur, "collector_event", event_columns, derived.format(a=a, b=b))
            done = b + 1
            rate = done / (time.perf_counter() - t0)
            log(f"fill: events {done:,}/{n:,} ({rate:,.0f} rows/s, ~{(n - done) / rate:.0f} s left)")
        nv = math.ceil(n / EVENTS_PER_VISIT)
        visit_derived = (
            f"(SELECT s.seq AS v, (s.seq * {HASH_MUL} + {stage * 104729}) % {HASH_MOD} AS hv "
            "FROM seq_{a}_to_{b} AS s) AS t"
        )
        visit_columns = _visit_columns(db.site_id, stage, n, start)
        for a in range(0, nv, CHUNK):
            b = min(nv, a + CHUNK) - 1
            insert_select(cur, "collector_visit", visit_columns, visit_derived.format(a=a, b=b))
            log(f"fill: visits {b + 1:,}/{nv:,}")
        total = int(current) + n
        daily = _fill_daily(cur, db.site_id, total, start)
        hourly = _fill_hourly(cur, db.site_id, total, start)
        log(f"fill: rollups +{daily:,} daily breakdown rows, +{hourly:,} hourly rows; analyzing tables")
        analyze(cur, STORED_TABLES)
        stats["tables"] = table_stats(cur, STORED_TABLES)
    conn.close()
    stats["seconds"] = time.perf_counter() - started
    log(
        f"fill: done in {stats['seconds']:.0f} s: "
        + ", ".join(f"{t} {v['rows']:,} rows ({v['mib']:,} MiB)" for t, v in stats["tables"].items())
    )
    return stats


def _next_stage(cur: Any) -> int:
    """Each fill step gets a number (kept in a bench_fill table of the bench database), so that its
    generated hit ids and visit keys never collide with an earlier step's."""
    cur.execute("CREATE TABLE IF NOT EXISTS bench_fill (stage INT PRIMARY KEY, created DATETIME NOT NULL)")
    cur.execute("SELECT COALESCE(MAX(stage), 0) + 1 FROM bench_fill")
    stage = int(cur.fetchone()[0])
    cur.execute("INSERT INTO bench_fill (stage, created) VALUES (%s, NOW())", [stage])
    return stage


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database", required=True, help="an existing bench_* database (see run_all.py)")
    parser.add_argument("--events", type=int, required=True, help="fill collector_event up to this many rows")
    args = parser.parse_args(argv)
    db = BenchDatabase(args.database).attach()
    fill_to(db, args.events)
    return 0


if __name__ == "__main__":
    sys.exit(main())

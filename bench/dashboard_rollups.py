"""Step 3 of the dashboard bench's generated data (bench/dashboard_data.py): the rollups
(collector_hourlytotal, collector_dailybreakdown) by INSERT ... SELECT ... GROUP BY over the
generated events and visits, with the worker's rules (collector/ingest.py); and the replay check
that proves them: the small site's events through ingest_batch into a scratch database, every
rollup row and every visit compared.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from typing import Any

from bench.common import BenchDatabase, insert_select, mysql_connect
from bench.dashboard_data import INTERACTIVE, SMALL_DOMAIN, Layout
from collector.payload import ENGAGEMENT

CHECK_DB = "bench_dash_check"  # the scratch database of the replay check
DURATION = "FLOOR(TIMESTAMPDIFF(MICROSECOND, started, last_seen) / 1000000)"
BOUNCE = "(pageviews <= 1 AND NOT interactive)"


def rollups(cur: Any, layout: Layout, site_id: int, chunk_days: int = 31) -> None:
    """collector_hourlytotal and collector_dailybreakdown of one site, by chunks of local days.

    The last chunk runs two days past end_day: visits begun late on the last day end after it."""
    days = [*layout.days, layout.end_day + dt.timedelta(days=1), layout.end_day + dt.timedelta(days=2)]
    for i in range(0, len(days), chunk_days):
        lo, hi = days[i], days[min(i + chunk_days, len(days)) - 1] + dt.timedelta(days=1)
        _rollup_chunk(cur, _Chunk(layout, site_id, f"'{layout.midnight(lo)}'", f"'{layout.midnight(hi)}'"))


@dataclass
class _Chunk:
    layout: Layout
    site_id: int
    a: str  # UTC bounds, SQL literals
    b: str

    def events(self, where: str = "TRUE") -> str:
        """The chunk's events with their local time lt, as a derived table e."""
        return (
            f"(SELECT visitor_id, visit_key, name, path, value, engaged_ms, scroll_depth, "
            f"{self.layout.local_sql('ts')} AS lt FROM collector_event "
            f"WHERE site_id = {self.site_id} AND ts >= {self.a} AND ts < {self.b} AND {where}) AS e"
        )

    def visits(self, where: str = "TRUE") -> str:
        """The visits started in the chunk, with local start ls, whole-second duration and bounce."""
        return (
            f"(SELECT *, {self.layout.local_sql('started')} AS ls, {DURATION} AS dur, {BOUNCE} AS bounce "
            f"FROM collector_visit WHERE site_id = {self.site_id} AND started >= {self.a} AND started < {self.b} "
            f"AND {where}) AS v"
        )


def _daily_insert(cur: Any, site_id: int, dim: str, select: dict[str, str], source: str, group: str) -> None:
    """INSERT one dimension's rows; `select` gives day, value and some of the rollup's numbers."""
    # Imported here: the app's models need Django set up (the worker process does it first).
    from collector.models import BREAKDOWN_COLUMNS

    inner = ", ".join(f"{expr} AS {name}" for name, expr in select.items())
    columns = {"site_id": str(site_id), "day": "x.day", "dim": f"'{dim}'", "value_hash": "h.h", "value": "x.value"}
    columns.update({c: f"x.{c}" if c in select else "0" for c in BREAKDOWN_COLUMNS})
    source = (
        f"(SELECT {inner} FROM {source} GROUP BY {group}) AS x "
        "JOIN bench_dash_hash AS h ON h.value = x.value COLLATE utf8mb4_bin"
    )
    insert_select(cur, "collector_dailybreakdown", columns, source)


def _rollup_chunk(cur: Any, c: _Chunk) -> None:
    # Imported here: the app's models need Django set up (the worker process does it first).
    from collector.ingest import VISIT_DIMS

    site_id = c.site_id
    hits = c.events(f"name <> '{ENGAGEMENT}'")
    hourly = f"""
        INSERT INTO collector_hourlytotal
            (site_id, day, hour, visitors, new_visitors, visits, pageviews, bounces, duration, events)
        SELECT {site_id}, day, hour, SUM(visitors), SUM(new_visitors), SUM(visits), SUM(pageviews),
               SUM(bounces), SUM(duration), SUM(events)
        FROM (
            SELECT DATE(lt) AS day, HOUR(lt) AS hour, COUNT(DISTINCT visitor_id) AS visitors, 0 AS new_visitors,
                   0 AS visits, SUM(name = 'pageview') AS pageviews, 0 AS bounces, 0 AS duration,
                   SUM(name <> 'pageview') AS events
            FROM {hits} GROUP BY DATE(lt), HOUR(lt)
            UNION ALL
            SELECT day, hour, 0, COUNT(*), 0, 0, 0, 0, 0
            FROM (SELECT DATE(lt) AS day, HOUR(MIN(lt)) AS hour FROM {hits} GROUP BY DATE(lt), visitor_id) AS f
            GROUP BY day, hour
            UNION ALL
            SELECT DATE(ls), HOUR(ls), 0, 0, COUNT(*), 0, SUM(bounce), SUM(dur), 0
            FROM {c.visits()} GROUP BY DATE(ls), HOUR(ls)
        ) AS u GROUP BY day, hour
    """
    cur.execute(hourly)
    visit_numbers = {
        "visitors": "COUNT(DISTINCT visitor_id)",
        "visits": "COUNT(*)",
        "pageviews": "SUM(pageviews)",
        "bounces": "SUM(bounce)",
        "duration": "SUM(dur)",
        "events": "SUM(events)",
    }
    for dim, column, keep_empty in VISIT_DIMS:
        source = c.visits() if keep_empty else c.visits(f"{column} <> ''")
        select = {"day": "day", "value": f"MIN({column})", **visit_numbers}
        _daily_insert(cur, site_id, dim, select, source, f"day, BINARY {column}")
    _daily_insert(
        cur,
        site_id,
        "exit_page",
        {"day": "day", "value": "MIN(exit_path)", "visits": "COUNT(*)"},
        c.visits(),
        "day, BINARY exit_path",
    )
    page = f"""(
        SELECT DATE(lt) AS day, path, COUNT(DISTINCT visitor_id) AS visitors, COUNT(DISTINCT visit_key) AS visits,
               COUNT(*) AS pageviews, 0 AS engaged_ms, 0 AS engagements, 0 AS scroll_sum
        FROM {c.events("name = 'pageview'")} GROUP BY DATE(lt), BINARY path
        UNION ALL
        SELECT DATE(lt), path, 0, 0, 0, SUM(engaged_ms), COUNT(*), SUM(COALESCE(scroll_depth, 0))
        FROM {c.events(f"name = '{ENGAGEMENT}'")} GROUP BY DATE(lt), BINARY path
    ) AS pg"""
    sums = ("visitors", "visits", "pageviews", "engaged_ms", "engagements", "scroll_sum")
    _daily_insert(
        cur,
        site_id,
        "page",
        {"day": "day", "value": "MIN(path)", **{col: f"SUM({col})" for col in sums}},
        page,
        "day, BINARY path",
    )
    _daily_insert(
        cur,
        site_id,
        "event",
        {
            "day": "DATE(lt)",
            "value": "MIN(name)",
            "visitors": "COUNT(DISTINCT visitor_id)",
            "visits": "COUNT(DISTINCT visit_key)",
            "events": "COUNT(*)",
            "value_sum": "SUM(COALESCE(value, 0))",
        },
        c.events(f"name NOT IN ('pageview', '{ENGAGEMENT}')"),
        "DATE(lt), BINARY name",
    )


# -- replay check (worker process, Django set up for CHECK_DB) ----------------------------------


def replay_check(source_db: str) -> dict[str, Any]:
    """Replay the small site's generated events through ingest_batch; compare visits and rollups."""
    import django
    from django.core.management import call_command

    django.setup()
    # Imported after django.setup(): the app's modules need it.
    from collector.ingest import ingest_batch
    from sites.models import Site

    BenchDatabase(CHECK_DB).recreate()
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

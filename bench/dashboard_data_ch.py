"""The dashboard bench's generated year, written into ClickHouse (ANALYTICS_URL=clickhouse:// or chdb://).

The same data as bench/dashboard_data.py writes into MariaDB, row for row: the same visits (start,
gap, pageviews, engagement mask, custom event, visitor id, visit key, source / referrer / UTM,
browser, OS, device, country), the same events (name, path, ts, hit id, value, props, scroll depth,
engaged ms) and the same visit states, from the same deterministic hashes. Each expression of
dashboard_data.py is written here in ClickHouse SQL:

- h32 (the first 32 bits of an MD5 of the concatenated parts, as a number) is
  `reinterpretAsUInt32(reverse(substring(MD5(concat(...)), 1, 4)))`: MD5 returns the 16 raw bytes,
  the first four read big-endian are MariaDB's `CONV(LEFT(MD5(...), 8), 16, 10)`; integers are
  concatenated as their decimal text in both.
- ELT(i, ...) is an array literal indexed from 1; DIV is intDiv; the DECIMAL(40, 0) of the key
  bijection is UInt128.
- A day's visits are `ARRAY JOIN range(count)` over the 365 days (MariaDB: one INSERT per day from
  its sequence engine), events `ARRAY JOIN range(2 * MAXPV + 1)` over the visits (MariaDB: a join with
  seq_0_to_24), then the same WHERE picks the hits a visit sends.

ClickHouse holds no rollups (every view reads `events` / `sessions`), so step 3 of dashboard_data.py
has no counterpart. `sessions` gets each visit's final state only (sign 1, version 1): what the worker's
cancel and state rows collapse to, and what the readers' sign sums give.

One INSERT ... SELECT per table per site, all in the server (chdb: in this process); 100M events take
a few minutes on this machine (docs/benchmarks.md §5).
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from bench import dashboard_data
from bench.common import log
from bench.dashboard_data import (
    BROWSERS,
    COUNTRIES,
    DAYS,
    DEVICES,
    EVENT_NAMES,
    MAXPV,
    NPAGES,
    NPV_WEIGHTS,
    OSES,
    P64,
    PATHS,
    SOURCES,
    UTM_CAMPAIGNS,
    UTM_MEDIUMS,
    UTM_SOURCES,
    VID_KEY,
    VKEY_KEY,
    Layout,
    day_weights,
)
from collector.payload import ENGAGEMENT

GEN = "bench_dash_gen"


def s(text: str) -> str:
    """A ClickHouse string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def arr(values: Sequence[str]) -> str:
    return "[" + ", ".join(s(v) for v in values) + "]"


def elt(index: str, values: Sequence[str]) -> str:
    """values[index - 1] (MariaDB's ELT) for a 1-based SQL expression."""
    return f"arrayElement({arr(values)}, toUInt32({index}))"


def h32(*parts: Any) -> str:
    """dashboard_data.h32 in ClickHouse: the first 32 bits of MD5(concat(parts)), big-endian."""
    text = ", ".join(f"toString({p})" for p in parts)
    return f"toUInt64(reinterpretAsUInt32(reverse(substring(MD5(concat({text})), 1, 4))))"


def weighted(u: str, table: Sequence[tuple[str, float]]) -> str:
    """dashboard_data.weighted: u in [0, 10000) -> a value, with the same thresholds."""
    return dashboard_data.weighted(u, table, quote=s)


def weighted_index(u: str, weights: Sequence[float]) -> str:
    """The same thresholds, returning the 0-based index (a number, not text)."""
    return dashboard_data.weighted_case(u, [str(i) for i in range(len(weights))], weights)


def zipf_rank(h: str, n: int) -> str:
    return f"least({n}, toUInt64(floor(exp(({h}) / 4294967296 * log({n + 1})))))"


def page_of(v: str, k: str) -> str:
    return f"arrayElement(paths, toUInt32({zipf_rank(h32(s('p'), v, s('/'), k), NPAGES)}))"


def key(x: str, mul: int, add: int) -> str:
    """dashboard_data._key: (x * mul + add) mod P64 - 2**63, in 128-bit integers."""
    return f"toInt64(toInt128((toUInt128({x}) * {mul} + {add}) % {P64}) - toInt128(9223372036854775808))"


def tod(v: str) -> str:
    return (
        f"(CASE WHEN {h32(s('t'), v)} % 100 < 80 THEN 21600000 + {h32(s('T'), v)} % 30600000 "
        f"+ {h32(s('U'), v)} % 30600000 ELSE {h32(s('V'), v)} % 86400000 END)"
    )


GEN_TABLE = f"""
CREATE TABLE {GEN} (
  v UInt64, site_id UInt64, t0 Int64, gap Int64, npv Int64, emask UInt64, cust Int64, eng Int64,
  vid Int64, vkey Int64, src String, ref String, us String, um String, uc String,
  b String, os String, dev String, cc String
) ENGINE = MergeTree ORDER BY v
"""


def gen_visits(client: Any, layout: Layout, site_id: int, v_start: int, n_visits: int) -> int:
    """Plan n_visits visits of one site (numbered from v_start) into bench_dash_gen, as
    dashboard_data.gen_visits does: the same counts per day and the same hashed attributes."""
    weights = day_weights(DAYS)
    total_w = sum(weights)
    counts = [int(n_visits * w / total_w) for w in weights]
    counts[-1] += n_visits - sum(counts)
    starts, v0 = [], v_start
    for count in counts:
        starts.append(v0)
        v0 += max(0, count)
    day_ms = [layout.ms(layout.midnight(day)) for day in layout.days]

    v, vprev = "v", "(v - 1)"
    second = f"(seq > 0 AND {h32(s('r'), v)} % 100 < 15 AND {h32(s('r'), vprev)} % 100 >= 15)"
    ha, hb, hu = h32(s("a"), v), h32(s("b"), v), h32(s("u"), v)
    npv = f"(1 + {weighted_index(f'{ha} % 10000', NPV_WEIGHTS)})"
    src_i = weighted_index(f"{h32(s('s'), v)} % 10000", [w for _, w, _ in SOURCES])
    ref_i = f"intDiv({hu}, 7) % 64"
    has_utm = f"({hu} % 100 < 9)"
    names = arr([name for name, _, _ in SOURCES])
    refs = "[" + ", ".join(arr(r) for _, _, r in SOURCES) + "]"
    country = elt(zipf_rank(h32(s("C"), v), len(COUNTRIES)), COUNTRIES)
    columns = {
        "v": v,
        "site_id": str(site_id),
        "t0": (
            f"toInt64(CASE WHEN {second} THEN dms + {tod(vprev)} + 7200000 + {h32(s('g'), v)} % 3600000 "
            f"ELSE dms + {tod(v)} END)"
        ),
        "gap": f"toInt64(20000 + {hb} % 270000)",
        "npv": f"toInt64({npv})",
        "emask": f"bitAnd({h32(s('e'), v)}, {h32(s('f'), v)})",
        "cust": f"toInt64(CASE WHEN intDiv({hb}, 300000) % 100 < 8 THEN 1 + intDiv({hb}, 30000000) % 4 ELSE 0 END)",
        "eng": f"toInt64(3000 + intDiv({ha}, 10000) % 180000)",
        "vid": f"(CASE WHEN {second} THEN {key(vprev, *VID_KEY)} ELSE {key(v, *VID_KEY)} END)",
        "vkey": key(v, *VKEY_KEY),
        # The visit's source: its referrer's, else (UTM tags and no referrer) utm_source.
        "src": f"if(src0 = '' AND {has_utm}, us0, src0)",
        "ref": f"arrayElement(refs_of, toUInt32(1 + ({ref_i}) % length(refs_of)))",
        "us": f"if({has_utm}, us0, '')",
        "um": f"if({has_utm}, {weighted(f'intDiv({hu}, 1000) % 10000', UTM_MEDIUMS)}, '')",
        "uc": f"if({has_utm}, {elt(zipf_rank(h32(s('c'), v), len(UTM_CAMPAIGNS)), UTM_CAMPAIGNS)}, '')",
        "b": weighted(f"{h32(s('B'), v)} % 10000", BROWSERS),
        "os": weighted(f"{h32(s('O'), v)} % 10000", OSES),
        "dev": weighted(f"{h32(s('D'), v)} % 10000", DEVICES),
        "cc": f"(CASE WHEN intDiv({hu}, 977) % 100 = 0 THEN '' ELSE {country} END)",
    }
    us0 = weighted(f"intDiv({hu}, 100) % 10000", UTM_SOURCES)
    sql = (
        f"INSERT INTO {GEN} ({', '.join(columns)}) "
        f"SELECT {', '.join(columns.values())} FROM ("
        f"  SELECT v, seq, dms, {src_i} AS si, arrayElement({names}, si + 1) AS src0, {us0} AS us0,"
        f"    arrayElement({refs}, si + 1) AS refs_of FROM ("
        f"    SELECT start + seq AS v, seq, dms FROM ("
        f"      SELECT number AS d, {list(counts)}[d + 1] AS n, {starts}[d + 1] AS start, {day_ms}[d + 1] AS dms"
        f"      FROM numbers({DAYS}) WHERE n > 0"
        f"    ) ARRAY JOIN range(toUInt64(n)) AS seq"
        f"  )"
        f")"
    )
    client.command(sql)
    return v0


def _ts(layout: Layout, ms_expr: str) -> str:
    epoch_ms = int(layout.base.replace(tzinfo=dt.UTC).timestamp() * 1000)
    return f"fromUnixTimestamp64Milli(toInt64({epoch_ms} + ({ms_expr})), 'UTC')"


def insert_sessions(client: Any, layout: Layout, v_from: int, v_to: int) -> None:
    """Each visit's final state (dashboard_data.insert_visits' columns), sign 1, version 1."""
    last_eng = "if(bitAnd(bitShiftRight(emask, toUInt64(npv - 1)), 1) = 1, intDiv(gap, 2), 0)"
    last_seen = f"(t0 + greatest((npv - 1) * gap + {last_eng}, if(cust > 0, intDiv(gap, 4), 0)))"
    npv_mask = "(bitShiftLeft(toUInt64(1), toUInt64(npv)) - 1)"
    columns = {
        "site_id": "site_id",
        "visit_key": "vkey",
        "visitor_id": "vid",
        "sign": "1",
        "version": "1",
        "started": _ts(layout, "t0"),
        "last_seen": _ts(layout, last_seen),
        "pageviews": "npv",
        "events": "if(cust > 0, 1, 0)",
        "interactive": f"if(cust > 0 AND cust != {EVENT_NAMES.index('Outbound Link: Click') + 1}, 1, 0)",
        "engaged_ms": f"eng * bitCount(bitAnd(emask, {npv_mask}))",
        "entry_path": page_of("v", "0"),
        "exit_path": page_of("v", "2 * (npv - 1)"),
        "referrer": "ref",
        "referrer_source": "src",
        "utm_source": "us",
        "utm_medium": "um",
        "utm_campaign": "uc",
        "browser": "b",
        "os": "os",
        "device": "dev",
        "country": "cc",
    }
    client.command(
        f"INSERT INTO sessions ({', '.join(columns)}) WITH {arr(PATHS)} AS paths "
        f"SELECT {', '.join(columns.values())} FROM {GEN} WHERE v >= {int(v_from)} AND v < {int(v_to)}"
    )


def insert_events(client: Any, layout: Layout, domain: str, v_from: int, v_to: int) -> None:
    """dashboard_data.insert_events: the hits every visit sends, with the visit's attributes on each."""
    custom_slot = 2 * MAXPV
    k = "intDiv(seq, 2)"
    offset = (
        f"(CASE WHEN seq = {custom_slot} THEN intDiv(gap, 4) ELSE {k} * gap + if(seq % 2 = 1, intDiv(gap, 2), 0) END)"
    )
    ts_ms = f"(t0 + {offset})"
    epoch_ms = int(layout.base.replace(tzinfo=dt.UTC).timestamp() * 1000)
    is_custom, is_eng, first = f"seq = {custom_slot}", "seq % 2 = 1", "seq = 0"
    name = (
        f"(CASE WHEN {is_custom} THEN {elt('cust', EVENT_NAMES)} WHEN {is_eng} THEN {s(ENGAGEMENT)} "
        "ELSE 'pageview' END)"
    )
    purchase = f"{is_custom} AND cust = 4"
    columns = {
        "site_id": "site_id",
        "hit_id": (
            f"lower(concat(leftPad(hex(toUInt64({epoch_ms} + {ts_ms})), 12, '0'), leftPad(hex(v), 10, '0'), "
            f"leftPad(hex(toUInt8(seq)), 2, '0'), leftPad(hex(toUInt32(eh)), 8, '0')))"
        ),
        "ts": _ts(layout, ts_ms),
        "visitor_id": "vid",
        "visit_key": "vkey",
        "name": name,
        "path": page_of("v", f"if({is_custom}, 0, 2 * {k})"),
        "hostname": s(domain),
        "referrer": f"if({first}, ref, '')",
        "referrer_source": f"if({first}, src, '')",
        "utm_source": f"if({first}, us, '')",
        "utm_medium": f"if({first}, um, '')",
        "utm_campaign": f"if({first}, uc, '')",
        "utm_content": "''",
        "utm_term": "''",
        "entry_path": page_of("v", "0"),
        "visit_source": "src",
        "visit_referrer": "ref",
        "visit_utm_source": "us",
        "visit_utm_medium": "um",
        "visit_utm_campaign": "uc",
        "browser": "b",
        "os": "os",
        "device": "dev",
        "country": "cc",
        "value": f"if({purchase}, toNullable(toInt64(900 + eh % 20000)), NULL)",
        "prop_keys": f"if({purchase}, ['plan'], [])",
        "prop_values": f"if({purchase}, ['pro'], [])",
        "scroll_depth": f"if({is_eng}, toNullable(toInt16(10 + eh % 91)), NULL)",
        "engaged_ms": f"if({is_eng}, toNullable(toInt32(eng)), NULL)",
    }
    keep = (
        f"(seq < 2 * npv AND (seq % 2 = 0 OR bitAnd(bitShiftRight(emask, toUInt64({k})), 1) = 1)) "
        f"OR (seq = {custom_slot} AND cust > 0)"
    )
    client.command(
        f"INSERT INTO events ({', '.join(columns)}) WITH {arr(PATHS)} AS paths "
        f"SELECT {', '.join(columns.values())} FROM ("
        f"  SELECT *, seq, {h32(s('x'), 'v', s('/'), 'seq')} AS eh"
        f"  FROM {GEN} ARRAY JOIN range({custom_slot + 1}) AS seq"
        f"  WHERE v >= {int(v_from)} AND v < {int(v_to)} AND ({keep})"
        f")"
    )


def generate(
    client: Any, layout: Layout, sites: Sequence[tuple[int, str, int]], chunk: int = 2_000_000, v_start: int = 0
) -> dict:
    """Add the generated visits and events of `sites` = (site id, domain, events wanted) to the events
    and sessions tables, visits numbered from v_start (hit ids and visit keys derive from the number,
    so a later call from a higher v_start adds new rows, never copies). Returns {"visits": n (the next
    free number), "events": rows now in events, "seconds": ...}."""
    stats: dict[str, Any] = {}
    t_all = time.perf_counter()
    from bench.dashboard_data import EVENTS_PER_VISIT

    client.command(f"DROP TABLE IF EXISTS {GEN}")
    client.command(GEN_TABLE)
    t = time.perf_counter()
    ranges = {}
    v = v_start
    for site_id, domain, events in sites:
        n_visits = max(DAYS, round(events / EVENTS_PER_VISIT))
        end = gen_visits(client, layout, site_id, v, n_visits)
        ranges[domain] = (v, end)
        v = end
    stats["gen_visits_s"] = time.perf_counter() - t
    log(f"clickhouse: {v - v_start:,} visits planned in {stats['gen_visits_s']:.0f} s")
    t = time.perf_counter()
    for lo, hi in ranges.values():
        for a in range(lo, hi, chunk):
            insert_sessions(client, layout, a, min(hi, a + chunk))
    stats["sessions_s"] = time.perf_counter() - t
    t = time.perf_counter()
    for domain, (lo, hi) in ranges.items():
        for a in range(lo, hi, chunk // 2):
            insert_events(client, layout, domain, a, min(hi, a + chunk // 2))
            if a > lo and (a - lo) // (chunk // 2) % 5 == 0:
                log(f"clickhouse: events of visits {a - lo:,} / {hi - lo:,} of {domain}")
    stats["events_s"] = time.perf_counter() - t
    client.command(f"DROP TABLE {GEN}")
    stats["visits"] = v
    stats["events"] = int(client.command("SELECT count() FROM events"))
    stats["seconds"] = time.perf_counter() - t_all
    log(
        f"clickhouse: {stats['events']:,} events, {v - v_start:,} visits added in {stats['seconds']:.0f} s "
        f"(sessions {stats['sessions_s']:.0f} s, events {stats['events_s']:.0f} s)"
    )
    return stats

"""Generated stored data for the dashboard query benchmark (bench/dashboard_queries.py).

One MariaDB database per size (bench_dash_1m, bench_dash_10m, ...), each with two sites in
Europe/Berlin (so local days, DST and the UTC bounds of the selectors are real):

- big.example: N events over the 365 local days ending with `end_day`;
- small.example: SMALL_EVENTS events over the same year (the baseline the big site is
  compared with, in the same database and the same run).

Generation is SQL only (MariaDB's SEQUENCE engine, INSERT ... SELECT), in three steps (this
module: steps 1 and 2; bench/dashboard_rollups.py: step 3; bench/dashboard_views.py's
`generate` runs them):

1. bench_dash_gen: one row per visit with everything that decides its hits (start, gap
   between pageviews, number of pageviews, which pageviews send an engagement report, a
   custom event, visitor id, visit key, source / referrer / UTM, browser, OS, device,
   country), from deterministic hashes (MD5) of the visit number. Visits per day follow
   a weekly and a yearly curve with a few traffic spikes; start times a daily curve;
   15% of visits are a visitor's second visit that day (2-3 h after the first).
2. collector_visit and collector_event from it: pageview k of a visit at start + k*gap on a
   page drawn Zipf-like from 3,000 paths, an engagement report for ~25% of pageviews at
   +gap/2, a custom event (Signup, Download, Outbound Link: Click, Purchase) in ~8% of
   visits at +gap/4. The first hit carries the referrer and the UTM tags, as the collector
   sends them; every event carries its visit's attributes (entry page, source, referrer, UTM,
   browser, OS, device, country), as the worker writes them. Visit rows hold exactly what the
   worker would compute from these hits (entry / exit page, last_seen, pageviews, events,
   interactive, engaged_ms).
3. The rollups (collector_hourlytotal, collector_dailybreakdown) by INSERT ... SELECT ...
   GROUP BY over those events and visits, with the worker's rules (collector/ingest.py):
   local day and hour, unique visitors per hour / day / value, visit numbers on the
   visit's start, value_hash = collector.ingest.hash64 (computed in Python for every
   value the generator can emit, joined in SQL). collector_monthlybreakdown is then summed
   from the daily rows (collector.rollups.backfill_monthly, one INSERT ... SELECT ... GROUP
   BY; bench/dashboard_views.py's ensure_monthly, which also fills it in kept databases
   generated before the table existed, without regenerating their events).

`replay_check` (bench/dashboard_rollups.py) replays the small site's events through collector.ingest.ingest_batch into a
scratch database and compares every rollup row and every visit: the SQL of step 3 is the
worker's arithmetic, not an approximation of it.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
import zoneinfo
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.common import insert_select, sql_elt, sql_str
from collector.payload import ENGAGEMENT

DATA_VERSION = 5  # bump when the generated data changes: --reuse then regenerates
TZ_NAME = "Europe/Berlin"
DAYS = 365
BIG_DOMAIN = "big.example"
SMALL_DOMAIN = "small.example"
SMALL_EVENTS = 20_000
MAXPV = 12  # most pageviews in one visit; slot 2*MAXPV is the custom event

# -- value catalogues --------------------------------------------------------------------------

TOP_PAGES = ["/", "/pricing", "/features", "/docs", "/blog", "/about", "/signup", "/login", "/contact", "/changelog"]
SECTIONS = ["blog", "docs", "guides", "changelog", "integrations", "customers"]
NPAGES = 3000
PATHS = TOP_PAGES + [f"/{SECTIONS[pk % len(SECTIONS)]}/post-{pk}" for pk in range(len(TOP_PAGES) + 1, NPAGES + 1)]
# (source, weight %, referrers): '' = direct.
SOURCES: list[tuple[str, float, list[str]]] = [
    ("", 36.0, [""]),
    ("Google", 30.0, ["google.com"]),
    ("Bing", 3.0, ["bing.com"]),
    ("DuckDuckGo", 3.0, ["duckduckgo.com"]),
    ("Ecosia", 0.5, ["ecosia.org"]),
    ("Hacker News", 4.0, ["news.ycombinator.com"]),
    ("Reddit", 3.0, ["reddit.com/r/webdev", "reddit.com/r/selfhosted", "reddit.com/r/privacy", "old.reddit.com"]),
    ("Twitter", 3.0, ["t.co"]),
    ("Facebook", 2.0, ["facebook.com", "l.facebook.com", "m.facebook.com"]),
    ("LinkedIn", 2.0, ["linkedin.com", "lnkd.in"]),
    ("GitHub", 3.0, ["github.com", "github.com/awesome/selfhosted", "github.com/topics/analytics"]),
    ("YouTube", 1.0, ["youtube.com"]),
    ("Stack Overflow", 1.0, ["stackoverflow.com/questions"]),
    ("ChatGPT", 2.0, ["chatgpt.com"]),
    ("Perplexity", 0.5, ["perplexity.ai"]),
    ("Product Hunt", 0.5, ["producthunt.com/posts/fathom"]),
    ("dev.to", 1.0, ["dev.to"]),
    ("Medium", 1.0, ["medium.com", "medium.com/@writer"]),
    ("Mastodon", 1.0, ["mastodon.social", "fosstodon.org"]),
    ("Bluesky", 0.5, ["bsky.app"]),
    ("Kagi", 0.5, ["kagi.com"]),
]
UTM_SOURCES = [("newsletter", 50), ("twitter-ads", 15), ("google-ads", 20), ("linkedin-ads", 10), ("partner", 5)]
UTM_MEDIUMS = [("email", 50), ("social", 25), ("cpc", 20), ("referral", 5)]
UTM_CAMPAIGNS = [f"nl-week-{w:02d}" for w in range(1, 53)] + ["spring-sale", "launch-2026", "brand", "retargeting"]
BROWSERS = [("Chrome", 58), ("Safari", 20), ("Firefox", 8), ("Edge", 7), ("Samsung Internet", 3), ("Opera", 2), ("", 2)]
OSES = [("Windows", 34), ("macOS", 20), ("iOS", 20), ("Android", 21), ("Linux", 4), ("", 1)]
DEVICES = [("Desktop", 50), ("Laptop", 6), ("Mobile", 40), ("Tablet", 4)]
# fmt: off
COUNTRIES = [
    "US", "DE", "GB", "FR", "IN", "CA", "NL", "BR", "ES", "IT", "PL", "AU", "SE", "JP", "CH", "AT", "BE", "DK", "NO",
    "FI", "IE", "PT", "CZ", "RO", "UA", "TR", "MX", "AR", "CO", "CL", "ZA", "NG", "EG", "KE", "IL", "AE", "SA", "PK",
    "BD", "ID", "VN", "TH", "MY", "SG", "PH", "KR", "TW", "CN", "HK", "NZ", "GR", "HU", "SK", "SI", "HR", "RS", "BG",
    "LT", "LV", "EE",
]
# fmt: on
EVENT_NAMES = ["Signup", "Download", "Outbound Link: Click", "Purchase"]  # custom event 1..4
INTERACTIVE = {"Signup": True, "Download": True, "Outbound Link: Click": False, "Purchase": True}
NPV_WEIGHTS = [45, 22, 12, 8, 5, 3, 2, 1.2, 0.8, 0.5, 0.3, 0.2]  # 1..12 pageviews
EVENTS_PER_VISIT = (
    sum((i + 1) * w for i, w in enumerate(NPV_WEIGHTS)) / sum(NPV_WEIGHTS) * 1.25 + 0.08
)  # pageviews + 25% engagement reports + 8% custom events


def all_values() -> set[str]:
    """Every value a rollup row can hold (for the value_hash table)."""
    values = set(PATHS) | set(UTM_CAMPAIGNS) | set(COUNTRIES) | set(EVENT_NAMES) | {""}
    for source, _, refs in SOURCES:
        values.add(source)
        values.update(refs)
    for table in (UTM_SOURCES, UTM_MEDIUMS, BROWSERS, OSES, DEVICES):
        values.update(v for v, _ in table)
    return values


# -- SQL building blocks -----------------------------------------------------------------------


def h32(*parts: Any) -> str:
    """A deterministic 32-bit hash of the concatenated parts: the first 32 bits of their MD5.

    (Not CRC32: CRC is affine, so CRC32('a' + x) XOR CRC32('b' + x) is the same for every x and
    "independent" hashes of one visit would be tied to each other.)"""
    return f"CAST(CONV(LEFT(MD5(CONCAT({', '.join(str(p) for p in parts)})), 8), 16, 10) AS UNSIGNED)"


def weighted_case(u: str, outcomes: Sequence[str], weights: Sequence[float]) -> str:
    """u in [0, 10000) -> one of the outcomes (SQL expressions), with the given weights: a CASE
    that MariaDB and ClickHouse read alike (bench/dashboard_data_ch.py uses it too)."""
    total = sum(weights)
    acc = 0.0
    parts = []
    for outcome, weight in zip(outcomes[:-1], weights[:-1], strict=True):
        acc += weight
        parts.append(f"WHEN {u} < {round(10000 * acc / total)} THEN {outcome}")
    return f"(CASE {' '.join(parts)} ELSE {outcomes[-1]} END)"


def weighted(u: str, table: Sequence[tuple[str, float]], quote: Callable[[str], str] = sql_str) -> str:
    """u in [0, 10000) -> one of the values, with the given weights (`quote`: the dialect's string literal)."""
    return weighted_case(u, [quote(value) for value, _ in table], [weight for _, weight in table])


def zipf_rank(h: str, n: int) -> str:
    """A rank 1..n, P(rank) ~ 1/rank, from a 32-bit hash."""
    return f"LEAST({n}, FLOOR(EXP(({h}) / 4294967296 * LN({n + 1}))))"


def page_of(v: str, k: str) -> str:
    """Path of pageview k of visit v (the same expression for events and visit rows)."""
    return sql_elt(zipf_rank(h32("'p'", v, "'/'", k), NPAGES), PATHS)


@dataclass
class Layout:
    """Where the generated year lies and how UTC maps to the site's local time."""

    end_day: dt.date
    tz: zoneinfo.ZoneInfo

    @property
    def days(self) -> list[dt.date]:
        return [self.end_day - dt.timedelta(days=DAYS - 1 - i) for i in range(DAYS)]

    def midnight(self, day: dt.date) -> dt.datetime:
        """Local midnight as naive UTC."""
        return dt.datetime(day.year, day.month, day.day, tzinfo=self.tz).astimezone(dt.UTC).replace(tzinfo=None)

    @property
    def base(self) -> dt.datetime:
        return self.midnight(self.days[0])

    def ms(self, when: dt.datetime) -> int:
        return int((when - self.base).total_seconds() * 1000)

    def ts_sql(self, ms_expr: str) -> str:
        return f"TIMESTAMPADD(MICROSECOND, ({ms_expr}) * 1000, '{self.base:%Y-%m-%d %H:%M:%S}')"

    def local_sql(self, column: str) -> str:
        """A naive-UTC DATETIME column -> naive local time (offset changes within the window)."""
        start = self.base - dt.timedelta(days=2)
        stop = self.midnight(self.end_day) + dt.timedelta(days=3)
        changes: list[tuple[dt.datetime, int]] = []
        when = start
        while when < stop:
            offset = int(when.replace(tzinfo=dt.UTC).astimezone(self.tz).utcoffset().total_seconds())
            if not changes or changes[-1][1] != offset:
                changes.append((when, offset))
            when += dt.timedelta(hours=1)
        parts = [
            f"WHEN {column} < '{nxt:%Y-%m-%d %H:%M:%S}' THEN {off}"
            for (_, off), (nxt, _) in itertools.pairwise(changes)
        ]
        case = f"(CASE {' '.join(parts)} ELSE {changes[-1][1]} END)" if parts else str(changes[0][1])
        return f"TIMESTAMPADD(SECOND, {case}, {column})"


def day_weights(n_days: int) -> list[float]:
    """Traffic per day: growth over the year, weekends lower, a slow wave and a few spikes."""
    weights = []
    for i in range(n_days):
        w = (1 + 0.8 * i / n_days) * (1 + 0.12 * math.sin(2 * math.pi * i / 91))
        if i % 7 in (5, 6):
            w *= 0.62
        if i in (40, 41, 200, 290):  # launches / a front page
            w *= 3.0 if i in (40, 200) else 1.8
        weights.append(w)
    return weights


# -- generation --------------------------------------------------------------------------------

R, G, S, E, F, HB, HO, HD, HC = ("'r'", "'g'", "'s'", "'e'", "'f'", "'B'", "'O'", "'D'", "'C'")
T1, T2, T3, T4 = ("'t'", "'T'", "'U'", "'V'")
VID_KEY = (6364136223846793005, 1442695040888963407)
VKEY_KEY = (2862933555777941757, 3037000493)
P64 = 18446744073709551557  # the largest prime below 2**64


def _key(x: str, mul: int, add: int) -> str:
    """A bijection of the visit number onto the signed 64-bit range, spread (as hash64 would be)."""
    return f"CAST((CAST({x} AS DECIMAL(40, 0)) * {mul} + {add}) % {P64} - 9223372036854775808 AS SIGNED)"


def tod(v: str) -> str:
    """Local time of day (ms) a visit starts: 80% on a curve peaking mid-afternoon, 20% any time."""
    return (
        f"(CASE WHEN {h32(T1, v)} % 100 < 80 THEN 21600000 + {h32(T2, v)} % 30600000 "
        f"+ {h32(T3, v)} % 30600000 ELSE {h32(T4, v)} % 86400000 END)"
    )


def gen_visits(cur: Any, layout: Layout, site_id: int, v_start: int, n_visits: int) -> int:
    """Fill bench_dash_gen with n_visits visits of one site, numbered from v_start."""
    weights = day_weights(DAYS)
    total_w = sum(weights)
    counts = [int(n_visits * w / total_w) for w in weights]
    counts[-1] += n_visits - sum(counts)
    v0 = v_start
    npv_table = [(str(i + 1), w) for i, w in enumerate(NPV_WEIGHTS)]
    src_table = [(str(i), w) for i, (_, w, _) in enumerate(SOURCES)]
    for day, count in zip(layout.days, counts, strict=True):
        if count <= 0:
            continue
        day_ms = layout.ms(layout.midnight(day))

        v = f"(s.seq + {v0})"
        vprev = f"({v} - 1)"
        second = f"(s.seq > 0 AND {h32(R, v)} % 100 < 15 AND {h32(R, vprev)} % 100 >= 15)"
        start = (
            f"(CASE WHEN {second} THEN {day_ms} + {tod(vprev)} + 7200000 + {h32(G, v)} % 3600000 "
            f"ELSE {day_ms} + {tod(v)} END)"
        )
        vid = f"(CASE WHEN {second} THEN {_key(vprev, *VID_KEY)} ELSE {_key(v, *VID_KEY)} END)"
        ha, hb, hu = h32("'a'", v), h32("'b'", v), h32("'u'", v)
        src_i = weighted(f"{h32(S, v)} % 10000", src_table)
        country = sql_elt(zipf_rank(h32(HC, v), len(COUNTRIES)), COUNTRIES)
        columns = {
            "v": v,
            "site_id": str(site_id),
            "t0": start,
            "gap": f"20000 + {hb} % 270000",
            "npv": weighted(f"{ha} % 10000", npv_table),
            "emask": f"({h32(E, v)} & {h32(F, v)})",
            "cust": f"(CASE WHEN {hb} DIV 300000 % 100 < 8 THEN 1 + {hb} DIV 30000000 % 4 ELSE 0 END)",
            "eng": f"3000 + {ha} DIV 10000 % 180000",
            "vid": vid,
            "vkey": _key(v, *VKEY_KEY),
            "src_i": src_i,
            "ref_i": f"{hu} DIV 7 % 64",
            "has_utm": f"({hu} % 100 < 9)",
            "us": weighted(f"{hu} DIV 100 % 10000", [(a, b) for a, b in UTM_SOURCES]),
            "um": weighted(f"{hu} DIV 1000 % 10000", [(a, b) for a, b in UTM_MEDIUMS]),
            "uc": sql_elt(zipf_rank(h32("'c'", v), len(UTM_CAMPAIGNS)), UTM_CAMPAIGNS),
            "b": weighted(f"{h32(HB, v)} % 10000", [(a, b) for a, b in BROWSERS]),
            "os": weighted(f"{h32(HO, v)} % 10000", [(a, b) for a, b in OSES]),
            "dev": weighted(f"{h32(HD, v)} % 10000", [(a, b) for a, b in DEVICES]),
            "cc": f"(CASE WHEN {hu} DIV 977 % 100 = 0 THEN '' ELSE {country} END)",
        }
        sql = (
            f"INSERT INTO bench_dash_gen ({', '.join(columns)}) "
            f"SELECT {', '.join(columns.values())} FROM seq_0_to_{count - 1} AS s"
        )
        cur.execute(sql)
        v0 += count
    # Source, referrer and UTM: a visit with UTM tags and no referrer takes utm_source as its source.
    src_case = "CASE " + " ".join(f"WHEN src_i = {i} THEN {sql_str(s)}" for i, (s, _, _) in enumerate(SOURCES)) + " END"
    ref_case = (
        "CASE "
        + " ".join(
            f"WHEN src_i = {i} THEN {sql_elt(f'1 + ref_i % {len(refs)}', refs)}"
            for i, (_, _, refs) in enumerate(SOURCES)
        )
        + " END"
    )
    these = f"v >= {int(v_start)} AND v < {int(v0)}"
    cur.execute(f"UPDATE bench_dash_gen SET ref = {ref_case}, src = {src_case} WHERE {these}")
    cur.execute(f"UPDATE bench_dash_gen SET src = us WHERE src = '' AND has_utm AND {these}")
    cur.execute(f"UPDATE bench_dash_gen SET us = '', um = '', uc = '' WHERE NOT has_utm AND {these}")
    return v0


GEN_TABLE = """
CREATE TABLE bench_dash_gen (
  v BIGINT NOT NULL PRIMARY KEY, site_id BIGINT NOT NULL, t0 BIGINT NOT NULL, gap INT NOT NULL,
  npv INT NOT NULL, emask BIGINT NOT NULL, cust INT NOT NULL, eng INT NOT NULL,
  vid BIGINT NOT NULL, vkey BIGINT NOT NULL, src_i INT NOT NULL, ref_i INT NOT NULL,
  has_utm TINYINT NOT NULL, us VARCHAR(60) NOT NULL, um VARCHAR(60) NOT NULL, uc VARCHAR(60) NOT NULL,
  b VARCHAR(60) NOT NULL, os VARCHAR(60) NOT NULL, dev VARCHAR(20) NOT NULL, cc VARCHAR(2) NOT NULL,
  src VARCHAR(100) NOT NULL DEFAULT '', ref VARCHAR(200) NOT NULL DEFAULT ''
) ENGINE=InnoDB CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci
"""


def _last_seen_ms() -> str:
    last_eng = "IF((emask >> (npv - 1)) & 1, gap DIV 2, 0)"
    return f"(t0 + GREATEST((npv - 1) * gap + {last_eng}, IF(cust > 0, gap DIV 4, 0)))"


def insert_visits(cur: Any, layout: Layout, v_from: int, v_to: int) -> int:
    started = layout.ts_sql("t0")
    npv_mask = "((1 << npv) - 1)"
    columns = {
        "site_id": "site_id",
        "visit_key": "vkey",
        "visitor_id": "vid",
        "day": f"DATE({layout.local_sql(started)})",
        "started": started,
        "last_seen": layout.ts_sql(_last_seen_ms()),
        "pageviews": "npv",
        "events": "IF(cust > 0, 1, 0)",
        "interactive": f"IF(cust > 0 AND cust <> {EVENT_NAMES.index('Outbound Link: Click') + 1}, 1, 0)",
        "engaged_ms": f"eng * BIT_COUNT(emask & {npv_mask})",
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
        # As long as the worker's list of hashes (~20 characters each); nothing reads it here.
        "seen": "CONCAT('[', REPEAT('-1234567890123456789,', 7 + npv), v, ']')",
    }
    source = f"bench_dash_gen WHERE v >= {int(v_from)} AND v < {int(v_to)} ORDER BY v"
    return insert_select(cur, "collector_visit", columns, source)


def insert_events(cur: Any, layout: Layout, domain: str, v_from: int, v_to: int) -> int:
    custom_slot = 2 * MAXPV
    k = "(s.seq DIV 2)"
    offset = (
        f"(CASE WHEN s.seq = {custom_slot} THEN g.gap DIV 4 ELSE {k} * g.gap + IF(s.seq % 2 = 1, g.gap DIV 2, 0) END)"
    )
    ts_ms = f"(g.t0 + {offset})"
    eh = h32("'x'", "g.v", "'/'", "s.seq")
    is_custom = f"s.seq = {custom_slot}"
    is_eng = "s.seq % 2 = 1"
    first = "s.seq = 0"
    custom_name = sql_elt("g.cust", EVENT_NAMES)
    name = f"(CASE WHEN {is_custom} THEN {custom_name} WHEN {is_eng} THEN '{ENGAGEMENT}' ELSE 'pageview' END)"
    page_k = f"IF({is_custom}, 0, 2 * {k})"
    epoch_ms = int(layout.base.replace(tzinfo=dt.UTC).timestamp() * 1000)
    columns = {
        "site_id": "g.site_id",
        "hit_id": (
            f"LOWER(CONCAT(LPAD(HEX({epoch_ms} + {ts_ms}), 12, '0'), LPAD(HEX(g.v), 10, '0'), "
            "LPAD(HEX(s.seq), 2, '0'), LPAD(HEX(" + eh + "), 8, '0')))"
        ),
        "ts": layout.ts_sql(ts_ms),
        "visitor_id": "g.vid",
        "visit_key": "g.vkey",
        "name": name,
        "path": page_of("g.v", page_k),
        "hostname": sql_str(domain),
        "referrer": f"IF({first}, g.ref, '')",
        "referrer_source": f"IF({first}, g.src, '')",
        "utm_source": f"IF({first}, g.us, '')",
        "utm_medium": f"IF({first}, g.um, '')",
        "utm_campaign": f"IF({first}, g.uc, '')",
        "utm_content": "''",
        "utm_term": "''",
        "browser": "g.b",
        "os": "g.os",
        "device": "g.dev",
        "country": "g.cc",
        "value": f"IF({is_custom} AND g.cust = 4, 900 + {eh} % 20000, NULL)",
        "props": f'IF({is_custom} AND g.cust = 4, \'{{"plan":"pro"}}\', NULL)',
        "scroll_depth": f"IF({is_eng}, 10 + {eh} % 91, NULL)",
        "engaged_ms": f"IF({is_eng}, g.eng, NULL)",
        # The visit's attributes, on every event (collector.ingest.EVENT_VISIT_FIELDS).
        "entry_path": page_of("g.v", "0"),
        "visit_source": "g.src",
        "visit_referrer": "g.ref",
        "visit_utm_source": "g.us",
        "visit_utm_medium": "g.um",
        "visit_utm_campaign": "g.uc",
    }
    where = (
        f"g.v >= {int(v_from)} AND g.v < {int(v_to)} AND ((s.seq < 2 * g.npv AND (s.seq % 2 = 0 OR "
        f"(g.emask >> {k}) & 1)) OR (s.seq = {custom_slot} AND g.cust > 0))"
    )
    source = f"bench_dash_gen AS g JOIN seq_0_to_{custom_slot} AS s WHERE {where} ORDER BY 3"
    return insert_select(cur, "collector_event", columns, source)

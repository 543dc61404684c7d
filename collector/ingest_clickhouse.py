"""The ClickHouse write path: a batch of checked hits -> one INSERT into `events` and one into
`sessions` (collector.ingest.ingest_batch calls `write` when analytics.store.kind() is
"clickhouse"; the message check, the ban-token drop and the poison bisection stay there).

In this mode the Django database gets no per-event or per-visit row and no rollup: the
dashboard reads ClickHouse. Per batch, in this order:

1.-2. One SELECT (one round trip, two scalar subqueries) answers both questions the worker asks
   before writing:
   - which hit ids are already in `events`, pruned by the batch's sites and time range (the
     table's key starts with site and day) and by the batch's visitor ids (an event row carries
     its visit's visitor id, which is the hit's vid or pvid: both are in the set; with the key's
     visitor_id this keeps a day of a large site from being read for its hit ids). Those hits are
     skipped, so a redelivered message never counts twice, wholly or partly redelivered;
   - the open-visit state: the latest state row of each visit of the batch's visitors (vid and
     pvid) in `sessions`, `argMaxIf(..., version, sign = 1)` of the visits whose signs still sum
     to more than 0, pruned by site and by a start at most 2 days before the batch's first hit
     (a visitor id lives two UTC days: vid on its day, pvid on the next). Visitors whose hits
     all turn out to be duplicates are looked up too (a few rows more, never written back).
     Nothing is kept in the worker between batches, so a restarted worker (or another one)
     continues visits exactly.
   The ids and visitors go into the SQL text as one string literal each, split by the server
   (`splitByChar`): clickhouse-connect's parameter binding formats a list element by element,
   and each string character by character, in Python; a literal costs one `str.replace`. The literal is escaped
   (backslash, quote; NUL as the separator, which the message check keeps out of hit ids), and
   max_query_size is raised to the statement's size (a batch of 10,000 is ~0.7 MB of SQL).
3. Hits replayed in time order in memory, as the SQL path does (collector.ingest._process):
   a hit joins the visitor's visit if within VISIT_TIMEOUT_MINUTES of it, else starts one; an
   engagement report extends last_seen and engaged_ms or is dropped without a visit.
4. One INSERT of events (each with its visit's attributes: entry page, source, referrer, UTM,
   browser, OS, device, country), then one INSERT of sessions: per changed visit a cancel row
   (its old state, sign -1, old version) and its new state (sign +1, version + 1); a new visit
   is one state row. The sessions table (VersionedCollapsingMergeTree) folds each pair away
   in the background; until then, sums of `x * sign` give the right answer.

The INSERTs are column-oriented, with the column types given (without them clickhouse-connect
runs a DESCRIBE TABLE before every INSERT), timestamps as integer milliseconds. What a batch
costs, and where (docs/benchmarks.md, "ClickHouse ingest"): at 1,000 hits the engine's three
statements are most of it (each has a fixed cost of several ms of CPU), the Python around them
~15-25 us a hit (the message check ~3 us of it); clickhouse-connect's own serialization is
~1.3 ms per 1,000 events.

Each INSERT carries insert_deduplication_token = a hash of the batch's hit ids, so an INSERT
that reached the server but whose answer was lost, retried with the same batch, is dropped by
the server (non_replicated_ / replicated_deduplication_window).

Limits (docs/architecture.md, "Analytics store (ClickHouse)"): two workers writing the same
visitor at the same moment each read the same state and each write a cancel + state pair; the
cancel rows are identical and collapse once, so the visit is left with two state rows (counts
of that visit double) - with one consumer per queue, or SQS's visibility timeout, a visitor's
hits are rarely in two batches at once. A crash between the two INSERTs leaves the batch's
events without their visit update; the redelivered batch finds the events and skips them.
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from django.conf import settings

from analytics import store
from collector.models import VISIT_ATTRIBUTES
from collector.payload import ENGAGEMENT
from collector.write_errors import AnalyticsStoreUnavailable, clickhouse_about_the_data, describe
from sites.models import Site

log = logging.getLogger("collector.ingest")  # one logger for the ingest, whichever the store

EVENT_COLUMNS = (
    "site_id",
    "hit_id",
    "ts",
    "visitor_id",
    "visit_key",
    "name",
    "path",
    "hostname",
    "referrer",
    "referrer_source",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "entry_path",
    "visit_source",
    "visit_referrer",
    "visit_utm_source",
    "visit_utm_medium",
    "visit_utm_campaign",
    "browser",
    "os",
    "device",
    "country",
    "value",
    "prop_keys",
    "prop_values",
    "scroll_depth",
    "engaged_ms",
)
# ClickHouse types of EVENT_COLUMNS, as analytics/migrations_clickhouse creates them (a test
# compares them with the table): given to the INSERT, which then needs no DESCRIBE TABLE.
LC = "LowCardinality(String)"
TS = "DateTime64(3, 'UTC')"
EVENT_TYPES = (
    "UInt64",
    "String",
    TS,
    "Int64",
    "Int64",
    LC,
    *("String",) * 15,
    LC,
    LC,
    LC,
    LC,
    "Nullable(Int64)",
    "Array(String)",
    "Array(String)",
    "Nullable(Int16)",
    "Nullable(Int32)",
)
# A visit's state, as stored in `sessions` after site_id, visit_key, sign.
STATE = (
    "visitor_id",
    "version",
    "started",
    "last_seen",
    "pageviews",
    "events",
    "interactive",
    "engaged_ms",
    *VISIT_ATTRIBUTES,
)
SESSION_COLUMNS = ("site_id", "visit_key", "sign", *STATE)
SESSION_TYPES = ("UInt64", "Int64", "Int8", "Int64", "UInt32", TS, TS, "UInt32", "UInt32", "UInt8", "UInt64")
SESSION_TYPES += ("String",) * 7 + (LC,) * 4
MS = ("started", "last_seen")  # kept as integer milliseconds (DateTime64(3) takes them as such)
NO_UTM = ("", "", "", "", "")
DAY_MS = 86_400_000
_STATE_SQL = ", ".join(f"toUnixTimestamp64Milli({c})" if c in MS else c for c in STATE)
LOOKUP_SQL = f"""
WITH visitors AS (SELECT arrayJoin(arrayMap(v -> toInt64(v), splitByChar(',', '{{visitors}}'))))
SELECT
  (SELECT groupArray(hit_id) FROM events
   WHERE site_id IN ({{sites}})
     AND ts BETWEEN fromUnixTimestamp64Milli(toInt64({{first}}), 'UTC')
                AND fromUnixTimestamp64Milli(toInt64({{last}}), 'UTC')
     AND visitor_id IN visitors
     AND hit_id IN (SELECT arrayJoin(splitByChar('\\0', {{ids}})))),
  (SELECT groupArray((site_id, visit_key, state)) FROM (
     SELECT site_id, visit_key, argMaxIf(({_STATE_SQL}), version, sign = 1) AS state
     FROM sessions
     WHERE site_id IN ({{sites}})
       AND visitor_id IN visitors
       AND started >= fromUnixTimestamp64Milli(toInt64({{since}}), 'UTC')
     GROUP BY site_id, visit_key
     HAVING sum(sign) > 0))
"""


def sql_text(value: str) -> str:
    """A ClickHouse string literal of value: backslash and quote escaped, NUL written as \\0."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'").replace("\x00", "\\0") + "'"


class Visit:
    """A visit as the worker works on it. `stored` is its state row as read (None if new)."""

    __slots__ = ("site_id", "visit_key", *STATE, "stored")

    def __init__(self, site_id: int, visit_key: int, state: Iterable[Any], stored: bool) -> None:
        self.site_id = site_id
        self.visit_key = visit_key
        state = tuple(state)
        for name, value in zip(STATE, state, strict=True):
            setattr(self, name, value)
        self.stored = state if stored else None

    def state(self) -> tuple:
        return _state_of(self)


_state_of = operator.attrgetter(*STATE)  # a Visit's STATE values as a tuple, in C


def hash64(text: str) -> int:
    """The same visit key as the SQL path (collector.ingest.hash64)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


def write(hits: list[dict[str, Any]]) -> tuple[int, int, int]:
    """Valid hits with distinct ids, sorted by ts -> rows. Returns (written, duplicates, dropped).

    A ClickHouse error about the data propagates as is (ingest_batch isolates the hit); an
    outage is raised as AnalyticsStoreUnavailable (a Django OperationalError: retry)."""
    try:
        return _write(hits)
    except Exception as exc:
        if clickhouse_about_the_data(exc):
            raise
        raise AnalyticsStoreUnavailable(describe(exc)) from exc


def _write(hits: list[dict[str, Any]]) -> tuple[int, int, int]:
    written = dropped = 0
    client = store.client()
    site_ids = {hit["site"] for hit in hits}
    live = set(Site.objects.filter(id__in=site_ids).values_list("id", flat=True))
    if len(live) != len(site_ids):
        gone = [hit for hit in hits if hit["site"] not in live]
        log.warning("ingest: dropped %d hits of deleted sites %s", len(gone), sorted(site_ids - live))
        dropped += len(gone)
        hits = [hit for hit in hits if hit["site"] in live]
    if not hits:
        return 0, 0, dropped

    sites = ",".join(map(str, sorted(live)))
    visitors = {hit["vid"] for hit in hits}
    visitors.update(hit["pvid"] for hit in hits if hit.get("pvid"))
    first, last = min(hit["ts"] for hit in hits), max(hit["ts"] for hit in hits)
    sql = LOOKUP_SQL.format(
        sites=sites,
        first=first,
        last=last,
        ids=sql_text("\x00".join(hit["id"] for hit in hits)),
        visitors=",".join(map(str, visitors)),
        since=first - 2 * DAY_MS,
    )
    ((written_ids, open_visits),) = client.query(sql, settings={"max_query_size": len(sql.encode()) + 1024}).result_rows
    existing = set(written_ids)
    new_hits = [hit for hit in hits if hit["id"] not in existing] if existing else hits
    if not new_hits:
        return 0, len(existing), dropped

    by_visitor: dict[tuple[int, int], list[Visit]] = defaultdict(list)
    for site_id, visit_key, state in open_visits:
        visit = Visit(site_id, visit_key, state, stored=True)
        by_visitor[(site_id, visit.visitor_id)].append(visit)

    timeout = settings.VISIT_TIMEOUT_MINUTES * 60_000
    touched: dict[int, Visit] = {}
    events = []
    append = events.append
    for hit in new_hits:
        visit = _find(by_visitor, hit, timeout)
        ts = hit["ts"]
        name = hit["n"]
        if name == ENGAGEMENT:
            if visit is None:
                dropped += 1  # engagement after the visit timed out: nothing to attach it to
                continue
            visit.engaged_ms += int(hit.get("e") or 0)
            if ts > visit.last_seen:
                visit.last_seen = ts
        else:
            if visit is None:
                visit = _new_visit(hit)
                by_visitor[(visit.site_id, visit.visitor_id)].append(visit)
            if ts > visit.last_seen:
                visit.last_seen = ts
            if ts < visit.started:
                visit.started = ts
            if name == "pageview":
                visit.pageviews += 1
                if ts >= visit.last_seen:
                    visit.exit_path = hit["p"]
            else:
                visit.events += 1
                if hit.get("i", True):
                    visit.interactive = 1
        touched[id(visit)] = visit
        append(_event_row(hit, visit))
    written = len(events)

    sessions = []
    for visit in touched.values():
        state = visit.state()
        if visit.stored is None:
            sessions.append((visit.site_id, visit.visit_key, 1, *state))
        elif state != visit.stored:
            sessions.append((visit.site_id, visit.visit_key, -1, *visit.stored))
            visit.version = visit.stored[1] + 1
            sessions.append((visit.site_id, visit.visit_key, 1, *visit.state()))

    token = hashlib.blake2b("\n".join(sorted(hit["id"] for hit in new_hits)).encode(), digest_size=16).hexdigest()
    extra = {"distributed_foreground_insert": 1} if store.cluster() else {}
    if events:
        client.insert(
            "events",
            list(zip(*events, strict=True)),
            column_names=EVENT_COLUMNS,
            column_type_names=EVENT_TYPES,
            column_oriented=True,
            settings={"insert_deduplication_token": f"e{token}", **extra},
        )
    if sessions:
        client.insert(
            "sessions",
            list(zip(*sessions, strict=True)),
            column_names=SESSION_COLUMNS,
            column_type_names=SESSION_TYPES,
            column_oriented=True,
            # optimize_on_insert would collapse the block's own +1/-1 pairs of one version: a
            # block never holds one (a cancel row has the stored version, its state row the next).
            settings={"insert_deduplication_token": f"s{token}", "optimize_on_insert": 0, **extra},
        )
    return written, len(existing), dropped


def _find(by_visitor: dict[tuple[int, int], list[Visit]], hit: dict[str, Any], timeout: int) -> Visit | None:
    """The visitor's visit (under today's hash, else yesterday's) whose last hit is within the
    timeout of this one, the latest if several; None if there is none."""
    ts, site_id = hit["ts"], hit["site"]
    for visitor_id in (hit["vid"], hit.get("pvid")):
        if visitor_id is None:
            continue
        best = None
        for visit in by_visitor.get((site_id, visitor_id), ()):
            if visit.last_seen - timeout <= ts <= visit.last_seen + timeout and (
                best is None or visit.last_seen > best.last_seen
            ):
                best = visit
        if best is not None:
            return best
    return None


def _new_visit(hit: dict[str, Any]) -> Visit:
    utm = hit.get("utm") or NO_UTM
    ts = hit["ts"]
    state = (
        hit["vid"],  # visitor_id
        1,  # version
        ts,  # started
        ts,  # last_seen
        0,  # pageviews
        0,  # events
        0,  # interactive
        0,  # engaged_ms
        hit["p"],  # entry_path
        hit["p"],  # exit_path
        hit.get("ref", ""),
        hit.get("src", ""),
        utm[0],
        utm[1],
        utm[2],
        hit.get("b", ""),
        hit.get("os", ""),
        hit.get("dev", ""),
        hit.get("cc", ""),
    )
    return Visit(hit["site"], hash64(f"{hit['vid']}|{hit['id']}"), state, stored=False)


def _event_row(hit: dict[str, Any], visit: Visit) -> tuple:
    """A hit as an `events` row (EVENT_COLUMNS): its own values, then its visit's attributes."""
    props = hit.get("props") or {}
    return (
        hit["site"],
        hit["id"],
        hit["ts"],
        visit.visitor_id,
        visit.visit_key,
        hit["n"],
        hit["p"],
        hit.get("host", ""),
        hit.get("ref", ""),
        hit.get("src", ""),
        *(hit.get("utm") or NO_UTM),
        visit.entry_path,
        visit.referrer_source,
        visit.referrer,
        visit.utm_source,
        visit.utm_medium,
        visit.utm_campaign,
        visit.browser,
        visit.os,
        visit.device,
        visit.country,
        hit.get("v"),
        list(props),
        [str(value) for value in props.values()],
        hit.get("sd"),
        hit.get("e"),
    )

"""The ClickHouse write path: a batch of checked hits -> one INSERT into `events` and one into
`sessions` (collector.ingest.ingest_batch calls `write` when analytics.store.kind() is
"clickhouse"; the message check, the ban-token drop and the poison bisection stay there).

In this mode the Django database gets no per-event or per-visit row and no rollup: the
dashboard reads ClickHouse. Per batch, in this order:

1.-2. One SELECT (one round trip, two scalar subqueries) answers both questions the worker asks
   before writing:
   - which hit ids are already in `events`: the SELECT returns the stored hit ids of the batch's
     visitor ids (vid and pvid: an event row carries its visit's visitor id, which is one of
     them) between the batch's first and last timestamp, pruned by the table's key (site, day,
     name, visitor, ts), and the batch's own ids among them are skipped in Python, so a
     redelivered message never counts twice, wholly or partly redelivered. The hit ids are not
     sent: as SQL text they cost clickhouse-connect's regular expressions and the engine's
     parser ~45 ns a byte (~15 ms for 10,000 ids, 0.34 MB); the answer is the visitors' other events in
     that range too, usually few (a batch spans seconds to minutes of a visitor's hits);
   - the open-visit state: the latest state row of each visit of the batch's visitors in
     `sessions`, `argMaxIf(..., version, sign = 1)` of the visits whose signs still sum
     to more than 0, pruned by site and by a start at most 2 days before the batch's first hit
     (a visitor id lives two UTC days: vid on its day, pvid on the next). Visitors whose hits
     all turn out to be duplicates are looked up too (a few rows more, never written back).
     Nothing is kept in the worker between batches, so a restarted worker (or another one)
     continues visits exactly.
   The visitor ids travel as one binary query parameter, `$visitors$`: clickhouse-connect
   splices the bytes into the query as a heredoc string (no escaping; its parameter binding
   would format a list element by element in Python), and the server splits them.
   max_query_size is raised to the statement's size (10,000 visitors are ~0.2 MB).
3. Hits replayed in time order in memory, as the SQL path does (collector.ingest._process):
   a hit joins the visitor's visit if within VISIT_TIMEOUT_MINUTES of it, else starts one; an
   engagement report extends last_seen and engaged_ms or is dropped without a visit.
4. One INSERT of events (each with its visit's attributes: entry page, source, referrer, UTM,
   browser, OS, device, country), built column by column (one list per column, no tuple per
   hit; a visit is a list, see SITE_ID..EXIT_PATH), then one INSERT of sessions: per changed
   visit a cancel row (its old state, sign -1, old version) and its new state (sign +1,
   version + 1); a new visit is one state row. The sessions table
   (VersionedCollapsingMergeTree) folds each pair away in the background; until then, sums of
   `x * sign` give the right answer.

The INSERTs are column-oriented, with the column types given (without them clickhouse-connect
runs a DESCRIBE TABLE before every INSERT), timestamps as integer milliseconds. What a batch
costs, and where (docs/benchmarks.md, "ClickHouse ingest"): at 1,000 hits ~42 ms of the calling
thread's CPU, the engine's three statements ~33 of it (each has a fixed cost of several ms), the
Python ~9 (the message check ~3); at 10,000 ~150 ms, ~100 of it Python. One INSERT into a Null
table routed to both tables by materialized views was measured at 1.7x the two INSERTs' cost,
and is not used.

Each INSERT carries insert_deduplication_token = a hash of the batch's hit ids, so an INSERT
that reached the server but whose answer was lost, retried with the same batch, is dropped by
the server (non_replicated_ / replicated_deduplication_window).

Limits (docs/architecture.md, "Analytics store (ClickHouse)"): two workers writing the same
visitor at the same moment each read the same state and each write a cancel + state pair; the
cancel rows are identical and collapse once, so the visit is left with two state rows (counts
of that visit double) - with one consumer per queue, or SQS's visibility timeout, a visitor's
hits are rarely in two batches at once. A crash between the two INSERTs leaves the batch's
events without their visit update; the redelivered batch finds the events and skips them. The
lookup's answer holds every stored event of the batch's visitors in its time range: a visitor
with very many events there (a bot not yet banned, a batch spanning hours of a backlog) makes it
that long (its hit ids, ~35 bytes each).
"""

from __future__ import annotations

import hashlib
import logging
import operator
from collections import defaultdict
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
NO_PROPS = ()  # an event's prop_keys / prop_values without props (one object for every such row)
DAY_MS = 86_400_000
_STATE_SQL = ", ".join(f"toUnixTimestamp64Milli({c})" if c in MS else c for c in STATE)
# The visitor ids travel as one binary query parameter, `$visitors$` (clickhouse-connect splices
# the bytes into the query as a heredoc string: no escaping, and none of its per-query regular
# expressions run over them), split by the server.
LOOKUP_SQL = f"""
WITH splitByChar(',', $visitors$)::Array(Int64) AS visitors
SELECT
  (SELECT groupArray(hit_id) FROM events
   WHERE site_id IN ({{sites}})
     AND ts BETWEEN fromUnixTimestamp64Milli(toInt64({{first}}), 'UTC')
                AND fromUnixTimestamp64Milli(toInt64({{last}}), 'UTC')
     AND visitor_id IN visitors),
  (SELECT groupArray((site_id, visit_key, state)) FROM (
     SELECT site_id, visit_key, argMaxIf(({_STATE_SQL}), version, sign = 1) AS state
     FROM sessions
     WHERE site_id IN ({{sites}})
       AND visitor_id IN visitors
       AND started >= fromUnixTimestamp64Milli(toInt64({{since}}), 'UTC')
     GROUP BY site_id, visit_key
     HAVING sum(sign) > 0))
"""

# A visit as the worker works on it: a list [site_id, visit_key, stored, *STATE], where stored is
# its state row as read (None if the visit is new). A list, not an object: a batch of 10,000
# hits makes ~3,000 of them, and the replay reads and sets a few items per hit.
SITE_ID, VISIT_KEY, STORED = 0, 1, 2
_AT = {name: index for index, name in enumerate(STATE, start=3)}
VISITOR_ID, VERSION, STARTED, LAST_SEEN = _AT["visitor_id"], _AT["version"], _AT["started"], _AT["last_seen"]
PAGEVIEWS, EVENTS, INTERACTIVE, ENGAGED_MS = _AT["pageviews"], _AT["events"], _AT["interactive"], _AT["engaged_ms"]
EXIT_PATH = _AT["exit_path"]
# The event columns that hold the visit's values (visitor_id, visit_key, entry_path .. country):
# column -> the item of the visit list.
_EVENT_VISIT_ITEMS = {
    "visitor_id": VISITOR_ID,
    "visit_key": VISIT_KEY,
    "entry_path": _AT["entry_path"],
    "visit_source": _AT["referrer_source"],
    "visit_referrer": _AT["referrer"],
    "visit_utm_source": _AT["utm_source"],
    "visit_utm_medium": _AT["utm_medium"],
    "visit_utm_campaign": _AT["utm_campaign"],
    "browser": _AT["browser"],
    "os": _AT["os"],
    "device": _AT["device"],
    "country": _AT["country"],
}


def state_of(visit: list) -> tuple:
    """A visit's STATE values, as a `sessions` row holds them after site_id, visit_key, sign."""
    return tuple(visit[3:])


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

    visitors = {hit["vid"] for hit in hits}
    visitors.update(hit["pvid"] for hit in hits if hit.get("pvid"))
    first, last = min(hit["ts"] for hit in hits), max(hit["ts"] for hit in hits)
    sql = LOOKUP_SQL.format(sites=",".join(map(str, sorted(live))), first=first, last=last, since=first - 2 * DAY_MS)
    visitor_list = ",".join(map(str, visitors)).encode()
    ((stored_ids, open_visits),) = client.query(
        sql,
        parameters={"$visitors$": visitor_list},
        settings={"max_query_size": len(sql) + len(visitor_list) + 1024},
    ).result_rows
    # stored_ids: every event of the batch's visitors in its time range; the batch's own among them
    # were written before (a redelivery, whole or partial) and are skipped.
    existing = {hit["id"] for hit in hits}.intersection(stored_ids) if stored_ids else set()
    new_hits = [hit for hit in hits if hit["id"] not in existing] if existing else hits
    if not new_hits:
        return 0, len(existing), dropped

    by_visitor: dict[tuple[int, int], list[list]] = defaultdict(list)
    for site_id, visit_key, state in open_visits:
        by_visitor[(site_id, state[0])].append([site_id, visit_key, state, *state])  # state[0]: visitor_id

    timeout = settings.VISIT_TIMEOUT_MINUTES * 60_000
    touched: dict[int, list] = {}
    kept: list[dict[str, Any]] = []  # the hits written, in order, and each one's visit
    visits: list[list] = []
    for hit in new_hits:
        visit = _find(by_visitor, hit, timeout)
        ts = hit["ts"]
        name = hit["n"]
        if name == ENGAGEMENT:
            if visit is None:
                dropped += 1  # engagement after the visit timed out: nothing to attach it to
                continue
            visit[ENGAGED_MS] += int(hit.get("e") or 0)
            if ts > visit[LAST_SEEN]:
                visit[LAST_SEEN] = ts
        else:
            if visit is None:
                visit = _new_visit(hit)
                by_visitor[(visit[SITE_ID], visit[VISITOR_ID])].append(visit)
            if ts > visit[LAST_SEEN]:
                visit[LAST_SEEN] = ts
            if ts < visit[STARTED]:
                visit[STARTED] = ts
            if name == "pageview":
                visit[PAGEVIEWS] += 1
                if ts >= visit[LAST_SEEN]:
                    visit[EXIT_PATH] = hit["p"]
            else:
                visit[EVENTS] += 1
                if hit.get("i", True):
                    visit[INTERACTIVE] = 1
        touched[id(visit)] = visit
        kept.append(hit)
        visits.append(visit)
    written = len(kept)

    sessions = []
    for visit in touched.values():
        state = state_of(visit)
        stored = visit[STORED]
        if stored is None:
            sessions.append((visit[SITE_ID], visit[VISIT_KEY], 1, *state))
        elif state != stored:
            sessions.append((visit[SITE_ID], visit[VISIT_KEY], -1, *stored))
            visit[VERSION] = stored[1] + 1
            sessions.append((visit[SITE_ID], visit[VISIT_KEY], 1, *state_of(visit)))

    token = hashlib.blake2b("\n".join(sorted(hit["id"] for hit in new_hits)).encode(), digest_size=16).hexdigest()
    extra = {"distributed_foreground_insert": 1} if store.cluster() else {}
    if kept:
        client.insert(
            "events",
            _event_columns(kept, visits),
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


def _find(by_visitor: dict[tuple[int, int], list[list]], hit: dict[str, Any], timeout: int) -> list | None:
    """The visitor's visit (under today's hash, else yesterday's) whose last hit is within the
    timeout of this one, the latest if several; None if there is none."""
    ts, site_id = hit["ts"], hit["site"]
    for visitor_id in (hit["vid"], hit.get("pvid")):
        if visitor_id is None:
            continue
        best = None
        for visit in by_visitor.get((site_id, visitor_id), ()):
            last_seen = visit[LAST_SEEN]
            if last_seen - timeout <= ts <= last_seen + timeout and (best is None or last_seen > best[LAST_SEEN]):
                best = visit
        if best is not None:
            return best
    return None


def _new_visit(hit: dict[str, Any]) -> list:
    """A visit begun by this hit: [site_id, visit_key, stored (None), *STATE]."""
    utm = hit.get("utm") or NO_UTM
    ts = hit["ts"]
    path = hit["p"]
    return [
        hit["site"],
        hash64(f"{hit['vid']}|{hit['id']}"),
        None,
        # visitor_id, version, started, last_seen, pageviews, events, interactive, engaged_ms
        hit["vid"],
        1,
        ts,
        ts,
        0,
        0,
        0,
        0,
        # VISIT_ATTRIBUTES, in their order (_VISIT_ATTRIBUTES_BUILT checks it at import)
        path,
        path,
        hit.get("ref", ""),
        hit.get("src", ""),
        utm[0],
        utm[1],
        utm[2],
        hit.get("b", ""),
        hit.get("os", ""),
        hit.get("dev", ""),
        hit.get("cc", ""),
    ]


_VISIT_ATTRIBUTES_BUILT = ("entry_path", "exit_path", "referrer", "referrer_source", "utm_source", "utm_medium")
_VISIT_ATTRIBUTES_BUILT += ("utm_campaign", "browser", "os", "device", "country")
if VISIT_ATTRIBUTES != _VISIT_ATTRIBUTES_BUILT:  # not an assert: it must hold under python -O too
    raise ImportError("collector.models.VISIT_ATTRIBUTES changed: update ingest_clickhouse._new_visit")


def _event_columns(hits: list[dict[str, Any]], visits: list[list]) -> list[list]:
    """The hits as `events` columns (EVENT_COLUMNS), each row its hit's own values and its visit's
    attributes (visits[i] is hits[i]'s visit). Built a column at a time: one list per column,
    no row tuple per hit."""

    def item(key: str) -> list:
        return list(map(operator.itemgetter(key), hits))

    def optional(key: str, default: Any = "") -> list:
        return [hit.get(key, default) for hit in hits]

    def of_visit(column: str) -> list:
        return list(map(operator.itemgetter(_EVENT_VISIT_ITEMS[column]), visits))

    utms = [hit.get("utm") or NO_UTM for hit in hits]
    props = [hit.get("props") for hit in hits]
    return [
        item("site"),
        item("id"),
        item("ts"),
        of_visit("visitor_id"),
        of_visit("visit_key"),
        item("n"),
        item("p"),
        optional("host"),
        optional("ref"),
        optional("src"),
        *([utm[index] for utm in utms] for index in range(5)),
        *(of_visit(column) for column in EVENT_COLUMNS[15:25]),
        optional("v", None),
        [list(prop) if prop else NO_PROPS for prop in props],
        [[str(value) for value in prop.values()] if prop else NO_PROPS for prop in props],
        optional("sd", None),
        optional("e", None),
    ]

"""Turn a batch of hits into raw events, visit state and rollups, in one transaction.

Per batch: one SELECT for hit ids already written (a redelivered message counts once), one
SELECT ... FOR UPDATE of the visitors' visits, one bulk INSERT of events, one upsert of the
visits, and one additive upsert per rollup table covering every distinct key of the batch.
Every event row carries its visit's attributes (EVENT_VISIT_FIELDS, and the visit's browser,
OS, device and country), so a filtered read needs no lookup of the visits.

The queue is not trusted (messages of an older release, another producer, a bug): every hit is
checked again against the message contract of collector.services.build_messages, and one that
breaks it is dropped with a log line. If a batch still fails for a reason that is about its data
(not an outage), it is written in halves, each in its own transaction, down to the single hits
that fail alone; those are dropped with a log line and the rest is written once (hit ids). An
outage propagates, so the caller retries the whole batch. Log lines about a hit carry its id and
a reason, never its content.

How the numbers are kept (all in the site's time zone):
- A visit is a visitor's run of hits with less than VISIT_TIMEOUT_MINUTES between them.
  Its visits / bounces / duration, and its visit-level dimensions (entry page, source, UTM,
  browser, OS, device, country) count on the local day and hour it started. Because a later
  hit can turn a bounce into a non-bounce or lengthen it, each touched visit's contribution
  is computed before and after the batch and only the difference is added.
- Pageviews and events count at their own time.
- "Unique visitors" of a day, an hour, a page, an event or a dimension value are exact: each
  visit keeps hashes of what it already counted (`seen`) and a visitor's visits that day are
  consulted before counting them again.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import time
import zoneinfo
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction

from analytics import store as analytics_store
from collector import ingest_clickhouse
from collector.message_check import hit_label, problem_of
from collector.models import (
    BREAKDOWN_COLUMNS,
    VISIT_ATTRIBUTES,
    DailyBreakdown,
    Dimension,
    Event,
    HourlyTotal,
    MonthlyBreakdown,
    Salt,
    Visit,
)
from collector.payload import ENGAGEMENT
from collector.rollups import adapt, adapt_datetime, insert_rows, monthly_rows, upsert_add, upsert_replace
from collector.write_errors import about_the_data, describe
from security.bans import current_snapshot
from security.guards import ban_tokens
from sites.models import Site

log = logging.getLogger(__name__)

HOURLY_KEY = ("site_id", "day", "hour")
HOURLY_ADD = ("visitors", "new_visitors", "visits", "pageviews", "bounces", "duration", "events")
DAILY_KEY = ("site_id", "dim", "day", "value_hash")
MONTHLY_KEY = ("site_id", "dim", "month", "value_hash")
DAILY_ADD = BREAKDOWN_COLUMNS  # every DailyBreakdown / MonthlyBreakdown number: additive
# Visit-level dimensions and the Visit field holding each. Empty values of the optional ones
# (referrer, UTM) are not rolled up; an empty source is "Direct / None" and is.
VISIT_DIMS: tuple[tuple[str, str, bool], ...] = (
    (Dimension.ENTRY_PAGE, "entry_path", True),
    (Dimension.SOURCE, "referrer_source", True),
    (Dimension.REFERRER, "referrer", False),
    (Dimension.UTM_SOURCE, "utm_source", False),
    (Dimension.UTM_MEDIUM, "utm_medium", False),
    (Dimension.UTM_CAMPAIGN, "utm_campaign", False),
    (Dimension.BROWSER, "browser", True),
    (Dimension.OS, "os", True),
    (Dimension.DEVICE, "device", True),
    (Dimension.COUNTRY, "country", True),
)
VISIT_COLUMNS = (
    "site_id",
    "visit_key",
    "visitor_id",
    "day",
    "started",
    "last_seen",
    "pageviews",
    "events",
    "interactive",
    "engaged_ms",
    *VISIT_ATTRIBUTES,
    "seen",
)
# The visit's attributes every event row carries (Event column, VisitState field): set when the
# visit starts and never changed, so a visit filter is a condition on the event row alone. The
# event's browser, OS, device and country are the visit's too (the same visitor id means the same
# browser; the visit's values make it exact). The exit page changes with later hits: not copied.
EVENT_VISIT_FIELDS = (
    ("entry_path", "entry_path"),
    ("visit_source", "referrer_source"),
    ("visit_referrer", "referrer"),
    ("visit_utm_source", "utm_source"),
    ("visit_utm_medium", "utm_medium"),
    ("visit_utm_campaign", "utm_campaign"),
)
VISIT_MUTABLE = ("started", "last_seen", "pageviews", "events", "interactive", "engaged_ms", "exit_path", "seen")
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
    "browser",
    "os",
    "device",
    "country",
    "value",
    "props",
    "scroll_depth",
    "engaged_ms",
    *(column for column, _ in EVENT_VISIT_FIELDS),
)
NO_UTM = ("", "", "", "", "")


class VisitState:
    """A Visit row as the worker works on it: a plain object, not a model instance (speed)."""

    __slots__ = (*VISIT_COLUMNS, "local_start", "stored")

    def __init__(self, values: tuple, stored: bool, tz: zoneinfo.ZoneInfo) -> None:
        for name, value in zip(VISIT_COLUMNS, values, strict=True):
            setattr(self, name, value)
        if isinstance(self.seen, str):  # SQLite and MariaDB hand JSON back as text
            self.seen = json.loads(self.seen)
        self.stored = stored
        self.local_start = self.started.astimezone(tz)

    @property
    def is_bounce(self) -> bool:
        return self.pageviews <= 1 and not self.interactive

    @property
    def duration(self) -> int:
        return int((self.last_seen - self.started).total_seconds())

    def row(self) -> tuple:
        values = [getattr(self, name) for name in VISIT_COLUMNS]
        values[3] = self.day.isoformat()
        values[4] = adapt_datetime(self.started)
        values[5] = adapt_datetime(self.last_seen)
        values[21] = json.dumps(self.seen, separators=(",", ":"))
        return tuple(values)


def hash64(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True)


@dataclass
class IngestResult:
    written: int = 0
    duplicates: int = 0
    dropped: int = 0  # every hit not written: invalid, banned, deleted site, stale engagement, poison
    invalid: int = 0  # of dropped: broke the message contract
    poison: int = 0  # of dropped: valid, but writing it failed even alone

    def add(self, other: IngestResult) -> None:
        self.written += other.written
        self.duplicates += other.duplicates
        self.dropped += other.dropped
        self.invalid += other.invalid
        self.poison += other.poison


class _Counts(defaultdict):
    """key -> {column: increment}"""

    def __init__(self) -> None:
        super().__init__(lambda: defaultdict(int))


class _Batch:
    def __init__(self, timeout: dt.timedelta) -> None:
        self.timeout = timeout
        self.hourly = _Counts()
        self.daily = _Counts()
        self.daily_values: dict[tuple, str] = {}
        self.events: list[tuple] = []
        self.visits_by_visitor: dict[tuple[int, int], list[VisitState]] = defaultdict(list)
        self.seen_by_visitor: dict[tuple[int, int], set[int]] = {}
        self.before: dict[int, dict[tuple, dict[str, int]]] = {}  # id(visit) -> contribution
        self.touched: dict[int, VisitState] = {}

    # -- visits -------------------------------------------------------------------------------

    def add_existing(self, visits: Iterable[VisitState]) -> None:
        for visit in visits:
            self.visits_by_visitor[(visit.site_id, visit.visitor_id)].append(visit)

    def _seen(self, visit: VisitState) -> set[int]:
        key = (visit.site_id, visit.visitor_id)
        seen = self.seen_by_visitor.get(key)
        if seen is None:
            seen = set()
            for other in self.visits_by_visitor[key]:
                seen.update(other.seen)
            self.seen_by_visitor[key] = seen
        return seen

    def first_time(self, visit: VisitState, marker: str) -> tuple[bool, bool]:
        """Record marker for this visit; return (new for the visitor, new for the visit)."""
        code = hash64(marker)
        visitor_seen = self._seen(visit)
        new_for_visit = code not in visit.seen
        new_for_visitor = code not in visitor_seen
        if new_for_visit:
            visit.seen.append(code)
        visitor_seen.add(code)
        return new_for_visitor, new_for_visit

    def find_visit(self, site_id: int, visitor_ids: Iterable[int | None], ts: dt.datetime) -> VisitState | None:
        best = None
        for visitor_id in visitor_ids:
            if visitor_id is None:
                continue
            for visit in self.visits_by_visitor.get((site_id, visitor_id), ()):
                active = visit.last_seen - self.timeout <= ts <= visit.last_seen + self.timeout
                if active and (best is None or visit.last_seen > best.last_seen):
                    best = visit
            if best is not None:
                return best
        return None

    def touch(self, visit: VisitState) -> None:
        if id(visit) not in self.touched:
            self.touched[id(visit)] = visit
            self.before[id(visit)] = contribution(visit) if visit.stored else {}

    def new_visit(self, site_id: int, hit: dict[str, Any], ts: dt.datetime, tz: zoneinfo.ZoneInfo) -> VisitState:
        utm = hit.get("utm") or NO_UTM
        visit = VisitState(
            (
                site_id,
                hash64(f"{hit['vid']}|{hit['id']}"),
                hit["vid"],
                ts.astimezone(tz).date(),
                ts,
                ts,
                0,
                0,
                False,
                0,
                hit["p"],
                hit["p"],
                hit.get("ref", ""),
                hit.get("src", ""),
                utm[0],
                utm[1],
                utm[2],
                hit.get("b", ""),
                hit.get("os", ""),
                hit.get("dev", ""),
                hit.get("cc", ""),
                [],
            ),
            stored=False,
            tz=tz,
        )
        day = visit.day
        self.visits_by_visitor[(site_id, visit.visitor_id)].append(visit)
        self.touch(visit)
        for dim, field, keep_empty in VISIT_DIMS:
            value = getattr(visit, field)
            if value or keep_empty:
                new_visitor, _ = self.first_time(visit, f"{day}|{dim}|{value}")
                if new_visitor:
                    self.add_daily(site_id, day, dim, value, visitors=1)
        return visit

    # -- rollups ------------------------------------------------------------------------------

    def add_daily(self, site_id: int, day: dt.date, dim: str, value: str, **increments: int) -> None:
        key = (site_id, dim, day, hash64(value))
        self.daily_values[key] = value
        row = self.daily[key]
        for column, amount in increments.items():
            row[column] += amount

    def add_hourly(self, site_id: int, day: dt.date, hour: int, **increments: int) -> None:
        row = self.hourly[(site_id, day, hour)]
        for column, amount in increments.items():
            row[column] += amount

    def count_visitor(self, visit: VisitState, day: dt.date, hour: int) -> None:
        new_in_hour, _ = self.first_time(visit, f"{day}|hour|{hour}")
        new_in_day, _ = self.first_time(visit, f"{day}|day")
        self.add_hourly(visit.site_id, day, hour, visitors=int(new_in_hour), new_visitors=int(new_in_day))

    def apply_visit_deltas(self) -> None:
        for key, visit in self.touched.items():
            after = contribution(visit)
            before = self.before[key]
            for target in set(before) | set(after):
                old, new = before.get(target, {}), after.get(target, {})
                delta = {col: new.get(col, 0) - old.get(col, 0) for col in set(old) | set(new)}
                delta = {col: amount for col, amount in delta.items() if amount}
                if not delta:
                    continue
                if target[0] == "hourly":
                    self.add_hourly(visit.site_id, target[1], target[2], **delta)
                else:
                    self.add_daily(visit.site_id, target[1], target[2], target[3], **delta)


def contribution(visit: VisitState) -> dict[tuple, dict[str, int]]:
    """What one visit adds to the rollups: its start hour's totals and its dimension rows."""
    day, hour = visit.local_start.date(), visit.local_start.hour
    base = {"visits": 1, "bounces": int(visit.is_bounce), "duration": visit.duration}
    result: dict[tuple, dict[str, int]] = {("hourly", day, hour): dict(base)}
    per_dim = {**base, "pageviews": visit.pageviews, "events": visit.events}
    for dim, field, keep_empty in VISIT_DIMS:
        value = getattr(visit, field)
        if value or keep_empty:
            result[("daily", day, dim, value)] = per_dim
    result[("daily", day, Dimension.EXIT_PAGE, visit.exit_path)] = {"visits": 1}
    return result


_BAN_TOKENS: dict[tuple[int, tuple[str, ...]], set[int]] = {}


def banned_tokens() -> set[int]:
    """Tokens (see security.guards.ip_tokens) of every active ban under the salts still kept."""
    snapshot = current_snapshot()
    if not snapshot.size:
        return set()
    salts = tuple(Salt.objects.order_by("-day").values_list("value", flat=True)[:2])
    key = (id(snapshot), salts)
    if key not in _BAN_TOKENS:
        _BAN_TOKENS.clear()
        networks = snapshot.networks()
        _BAN_TOKENS[key] = set().union(*(ban_tokens(networks, bytes.fromhex(salt)) for salt in salts))
    return _BAN_TOKENS[key]


# -- writing ------------------------------------------------------------------------------------


def ingest_batch(hits: list[dict[str, Any]]) -> IngestResult:
    """Write a batch of hits (as built by the collector view). Idempotent per hit id.

    One transaction when nothing is wrong. A hit that breaks the message contract, or that
    cannot be written even alone, is dropped with a log line and counted (invalid, poison);
    the others are written. A database outage propagates: retry the whole batch."""
    result = IngestResult()
    valid = []
    now_ms = int(time.time() * 1000)
    for hit in hits:
        problem = problem_of(hit, now_ms)
        if problem:
            log.warning("ingest: dropped hit %s: %s", hit_label(hit), problem)
            result.invalid += 1
        else:
            valid.append(hit)
    if result.invalid:
        result.dropped += result.invalid
        log.warning("ingest: dropped %d malformed hits", result.invalid)
    banned = banned_tokens()
    if banned:
        kept = [hit for hit in valid if banned.isdisjoint(hit.get("tok") or ())]
        if len(kept) != len(valid):
            log.warning("ingest: dropped %d hits from addresses banned after they were queued", len(valid) - len(kept))
            result.dropped += len(valid) - len(kept)
        valid = kept
    unique = {hit["id"]: hit for hit in valid}
    result.duplicates += len(valid) - len(unique)
    if unique:
        write = _write_clickhouse if analytics_store.kind() == analytics_store.CLICKHOUSE else _write
        _write_apart(sorted(unique.values(), key=lambda hit: hit["ts"]), result, whole=True, write=write)
    return result


def _write_clickhouse(hits: list[dict[str, Any]]) -> IngestResult:
    """The ClickHouse store's writer (collector/ingest_clickhouse.py): no row in the Django database."""
    written, duplicates, dropped = ingest_clickhouse.write(hits)
    return IngestResult(written=written, duplicates=duplicates, dropped=dropped)


def _write_apart(hits: list[dict[str, Any]], result: IngestResult, *, whole: bool, write: Any = None) -> None:
    """Write hits (sorted by ts) in one transaction; if that fails because of the data, write
    each half in its own transaction, recursively, and drop a single hit that fails alone.
    Earlier halves commit first, so visits are continued in time order as in one batch."""
    write = write or _write
    try:
        written = write(hits)
    except Exception as exc:
        if not about_the_data(exc):
            raise
        if len(hits) == 1:
            log.error("ingest: dropped hit %s: it cannot be written (%s)", hit_label(hits[0]), describe(exc))
            result.dropped += 1
            result.poison += 1
            return
        if whole:
            log.warning(
                "ingest: writing a batch of %d hits failed (%s); writing it in parts to isolate the hits at fault",
                len(hits),
                describe(exc),
            )
        half = len(hits) // 2
        _write_apart(hits[:half], result, whole=False, write=write)
        _write_apart(hits[half:], result, whole=False, write=write)
        return
    result.add(written)


def _write(hits: list[dict[str, Any]]) -> IngestResult:
    """Valid hits with distinct ids, sorted by ts -> rows, in one transaction."""
    result = IngestResult()
    unique = {hit["id"]: hit for hit in hits}
    timeout = dt.timedelta(minutes=settings.VISIT_TIMEOUT_MINUTES)

    with transaction.atomic():
        existing = set(Event.objects.filter(hit_id__in=list(unique)).values_list("hit_id", flat=True))
        result.duplicates += len(existing)
        new_hits = [hit for hit_id, hit in unique.items() if hit_id not in existing]
        site_ids = {hit["site"] for hit in new_hits}
        zones = {
            site_id: zoneinfo.ZoneInfo(tz)
            for site_id, tz in Site.objects.filter(id__in=site_ids).values_list("id", "timezone")
        }
        missing = [hit for hit in new_hits if hit["site"] not in zones]
        if missing:
            log.warning(
                "ingest: dropped %d hits of deleted sites %s", len(missing), sorted({h["site"] for h in missing})
            )
            result.dropped += len(missing)
        new_hits = [hit for hit in new_hits if hit["site"] in zones]
        if not new_hits:
            return result

        batch = _Batch(timeout)
        visitor_ids = {hit["vid"] for hit in new_hits} | {hit["pvid"] for hit in new_hits if hit.get("pvid")}
        rows = (
            Visit.objects.select_for_update()
            .filter(site_id__in=list(zones), visitor_id__in=list(visitor_ids))
            .values_list(*VISIT_COLUMNS)
        )
        batch.add_existing(VisitState(row, stored=True, tz=zones[row[0]]) for row in rows)

        new_hits.sort(key=lambda hit: hit["ts"])
        for hit in new_hits:
            if _process(batch, hit, zones[hit["site"]]):
                result.written += 1
            else:
                result.dropped += 1
        batch.apply_visit_deltas()

        insert_rows(Event, EVENT_COLUMNS, batch.events)
        visit_rows = [visit.row() for visit in batch.touched.values()]
        upsert_replace(Visit, ("site_id", "visit_key"), VISIT_COLUMNS, visit_rows, VISIT_MUTABLE)
        hourly_rows = [
            (*map(adapt, key), *(row.get(c, 0) for c in HOURLY_ADD))
            for key, row in batch.hourly.items()
            if any(row.values())
        ]
        daily_rows = [
            (*map(adapt, key), batch.daily_values[key], *(row.get(c, 0) for c in DAILY_ADD))
            for key, row in batch.daily.items()
            if any(row.values())
        ]
        upsert_add(HourlyTotal, HOURLY_KEY, HOURLY_ADD, hourly_rows)
        upsert_add(DailyBreakdown, DAILY_KEY, DAILY_ADD, daily_rows, insert_only=("value",))
        monthly = monthly_rows(batch.daily, batch.daily_values)
        upsert_add(MonthlyBreakdown, MONTHLY_KEY, DAILY_ADD, monthly, insert_only=("value",))
    return result


def event_row(hit: dict[str, Any], *, ts: dt.datetime, visit: VisitState) -> tuple:
    """A hit of this visit as a collector_event row, in the order of EVENT_COLUMNS: the hit's own
    values, then the visit's (browser, OS, device, country and EVENT_VISIT_FIELDS)."""
    props = hit.get("props")
    return (
        hit["site"],
        hit["id"],
        adapt_datetime(ts),
        visit.visitor_id,
        visit.visit_key,
        hit["n"],
        hit["p"],
        hit.get("host", ""),
        hit.get("ref", ""),
        hit.get("src", ""),
        *(hit.get("utm") or NO_UTM),
        visit.browser,
        visit.os,
        visit.device,
        visit.country,
        hit.get("v"),
        json.dumps(props) if props else None,
        hit.get("sd"),
        hit.get("e"),
        *(getattr(visit, field) for _, field in EVENT_VISIT_FIELDS),
    )


def _process(batch: _Batch, hit: dict[str, Any], tz: zoneinfo.ZoneInfo) -> bool:
    site_id = hit["site"]
    ts = dt.datetime.fromtimestamp(hit["ts"] / 1000, tz=dt.UTC)
    local = ts.astimezone(tz)
    day, hour = local.date(), local.hour
    name = hit["n"]
    path = hit["p"]
    visit = batch.find_visit(site_id, (hit["vid"], hit.get("pvid")), ts)

    if name == ENGAGEMENT:
        if visit is None:
            return False  # engagement after the visit timed out: nothing to attach it to
        batch.touch(visit)
        engaged = int(hit.get("e") or 0)
        visit.engaged_ms += engaged
        visit.last_seen = max(visit.last_seen, ts)
        batch.add_daily(
            site_id, day, Dimension.PAGE, path, engaged_ms=engaged, engagements=1, scroll_sum=int(hit.get("sd") or 0)
        )
    else:
        if visit is None:
            visit = batch.new_visit(site_id, hit, ts, tz)
        else:
            batch.touch(visit)
        if ts > visit.last_seen:
            visit.last_seen = ts
        if ts < visit.started:
            visit.started = ts
            visit.local_start = local
        batch.count_visitor(visit, day, hour)
        if name == "pageview":
            visit.pageviews += 1
            if ts >= visit.last_seen:
                visit.exit_path = path
            batch.add_hourly(site_id, day, hour, pageviews=1)
            new_visitor, new_visit = batch.first_time(visit, f"{day}|page|{path}")
            batch.add_daily(
                site_id, day, Dimension.PAGE, path, pageviews=1, visitors=int(new_visitor), visits=int(new_visit)
            )
        else:
            visit.events += 1
            if hit.get("i", True):
                visit.interactive = True
            batch.add_hourly(site_id, day, hour, events=1)
            new_visitor, new_visit = batch.first_time(visit, f"{day}|event|{name}")
            batch.add_daily(
                site_id,
                day,
                Dimension.EVENT,
                name,
                events=1,
                value_sum=int(hit.get("v") or 0),
                visitors=int(new_visitor),
                visits=int(new_visit),
            )

    batch.events.append(event_row(hit, ts=ts, visit=visit))
    return True

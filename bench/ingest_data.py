"""The bench hits for bench/ingest_bench.py: what collector/services.py::build_messages makes,
with realistic key diversity (docs/benchmarks.md, section 2)."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid
from typing import Any

from bench.common import BENCH_DOMAIN, BROWSERS, COUNTRIES, CUSTOM_EVENTS, DEVICES, OSES, SECTIONS, SOURCES
from collector.payload import ENGAGEMENT

PAGE_COUNT = 2000
UTM = [
    ("newsletter", "email", "november"),
    ("twitter", "social", "launch"),
    ("google", "cpc", "brand"),
    ("partner", "referral", "spring-deal"),
]
PAGEVIEWS_PER_VISIT = (1, 2, 3, 4, 5, 6, 7, 8)
PAGEVIEW_WEIGHTS = (40, 20, 12, 9, 7, 5, 4, 3)


def _cum(weights: list[float]) -> list[float]:
    return list(itertools.accumulate(weights))


def page_paths() -> list[str]:
    return ["/"] + [f"/{SECTIONS[k % len(SECTIONS)]}/page-{k}" for k in range(1, PAGE_COUNT)]


# How hit ids are made: "time" by collector/services.py hit_id() (48-bit millisecond timestamp +
# 80 random bits, hex, time-ordered like UUIDv7), or "uuid4" (random, what the collector made
# before 2026-11-26 16:30) to measure what random ids cost the unique index on
# collector_event.hit_id once the table is large (--hit-ids uuid4).
HIT_IDS = "time"


def new_hit_id(ts_ms: int) -> str:
    if HIT_IDS == "time":
        # Imported here: the app's modules need Django set up, which run() does first.
        from collector.services import hit_id

        return hit_id(ts_ms)
    return uuid.uuid4().hex


def generate_hits(site_id: int, n_events: int, day: dt.date, seed: int) -> list[dict[str, Any]]:
    """n_events hits of one day, sorted by time, as the collector view builds them."""
    rng = random.Random(seed)
    paths = page_paths()
    page_cum = _cum([1 / (k + 1) ** 1.05 for k in range(PAGE_COUNT)])
    source_cum = _cum([1 / (k + 1) for k in range(len(SOURCES))])
    browsers, browser_w = zip(*BROWSERS, strict=True)
    oses, os_w = zip(*OSES, strict=True)
    devices, device_w = zip(*DEVICES, strict=True)
    day_start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp()
    hits: list[dict[str, Any]] = []
    while len(hits) < n_events:
        vid = rng.getrandbits(64) - 2**63
        pvid = rng.getrandbits(64) - 2**63  # yesterday's hash: the worker looks visits up by both
        common = {
            "site": site_id,
            "host": BENCH_DOMAIN,
            "b": rng.choices(browsers, browser_w)[0],
            "os": rng.choices(oses, os_w)[0],
            "dev": rng.choices(devices, device_w)[0],
            "cc": rng.choice(COUNTRIES),
            "vid": vid,
            "pvid": pvid,
        }
        source = None if rng.random() < 0.4 else rng.choices(SOURCES, cum_weights=source_cum)[0]
        utm = rng.choice(UTM) if rng.random() < 0.08 else None
        t = day_start + rng.uniform(0, 86_400 - 3_600)
        for j in range(rng.choices(PAGEVIEWS_PER_VISIT, PAGEVIEW_WEIGHTS)[0]):
            path = rng.choices(paths, cum_weights=page_cum)[0]
            hit = {"id": new_hit_id(int(t * 1000)), "ts": int(t * 1000), "n": "pageview"}
            hit.update(common, p=path, i=True)
            if j == 0 and source is not None:
                hit["ref"], hit["src"] = source
            if j == 0 and utm is not None:
                hit["utm"] = [*utm, "", ""]
            hits.append(hit)
            if rng.random() < 0.06:
                name = rng.choice(CUSTOM_EVENTS)
                event = {"id": new_hit_id(int((t + 5) * 1000)), "ts": int((t + 5) * 1000)}
                event.update(common, n=name, p=path, i=True)
                if name == "Purchase":
                    event["v"] = rng.choice((999, 1999, 4999, 19900))
                    event["props"] = {"plan": rng.choice(("basic", "pro", "team"))}
                hits.append(event)
            gap = rng.uniform(10, 300)
            if rng.random() < 0.3:  # the tracker's engagement report when the page is left
                engagement = {"id": new_hit_id(int((t + gap) * 1000)), "ts": int((t + gap) * 1000)}
                engagement.update(common, n=ENGAGEMENT, p=path, i=False)
                engagement["e"] = int(gap * 1000 * rng.uniform(0.3, 1.0))
                engagement["sd"] = rng.randint(10, 100)
                hits.append(engagement)
            t += gap
    hits.sort(key=lambda hit: hit["ts"])
    return hits[:n_events]

"""Per-minute traffic counters for the security dashboard's chart, in the cache only.

One counter per (minute, outcome), kept a few hours: an attack in progress shows as a wall of
"banned" or "rate_limited" next to the usual "accepted". Never rows in the database.
"""

from __future__ import annotations

import logging
import time

from django.core.cache import cache

from security.counters import safe_incr_many

log = logging.getLogger(__name__)

OUTCOMES = ("accepted", "dropped", "rate_limited", "banned")
KEEP_SECONDS = 6 * 3600


def _key(minute: int, outcome: str) -> str:
    return f"traffic:{minute}:{outcome}"


def counter(outcome: str, now: float | None = None) -> tuple[str, int]:
    """The (key, ttl) of this minute's counter, for callers that batch their increments."""
    return _key(int((now or time.time()) // 60), outcome), KEEP_SECONDS


def record(outcome: str, now: float | None = None) -> None:
    """Count one request's outcome in its minute. Never raises: a metric is not worth a 500."""
    safe_incr_many([counter(outcome, now)])


def series(minutes: int = 180, now: float | None = None) -> list[dict[str, int]]:
    """[{"minute": epoch_minute, "accepted": n, "dropped": n, "rate_limited": n, "banned": n}, ...], oldest first."""
    last = int((now or time.time()) // 60)
    first = last - minutes + 1
    keys = [_key(minute, outcome) for minute in range(first, last + 1) for outcome in OUTCOMES]
    try:
        values = cache.get_many(keys)
    except Exception as exc:
        log.warning("traffic counters unavailable: %s", type(exc).__name__)
        values = {}
    return [
        {"minute": minute, **{outcome: int(values.get(_key(minute, outcome), 0)) for outcome in OUTCOMES}}
        for minute in range(first, last + 1)
    ]

"""Short-lived counters in the shared cache, several per request in one round trip.

On Redis the increments of one request go out as one pipeline (INCR + EXPIRE NX per key);
on the local-memory cache (development) they are plain add/incr calls. Counters are the
only trace ordinary traffic leaves: they expire within minutes and are never rows.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from django.core.cache import cache

log = logging.getLogger(__name__)


def _redis_client() -> object | None:
    backend = getattr(cache, "_cache", None)
    if backend is None or not hasattr(backend, "get_client"):
        return None
    return backend


_local = threading.local()


def _pipeline(client: Any) -> Any:
    """A reusable pipeline per thread and client: building one copies redis-py's whole table of
    response callbacks (~0.5 ms), more than the round trip it saves. execute() empties it."""
    cached = getattr(_local, "pipelines", None)
    if cached is None:
        cached = _local.pipelines = {}
    pipe = cached.get(id(client))
    if pipe is None:
        pipe = cached[id(client)] = client.pipeline(transaction=False)
    return pipe


def incr_many(items: Sequence[tuple[str, int]]) -> list[int]:
    """Increment each key (creating it with the given TTL in seconds) and return the new values.

    Raises on a cache failure: the caller decides whether to fail open or closed.
    """
    backend = _redis_client()
    if backend is not None:
        keys = [cache.make_and_validate_key(key) for key, _ in items]
        client = backend.get_client(keys[0], write=True)
        pipe = _pipeline(client)
        for key, (_, ttl) in zip(keys, items, strict=True):
            pipe.incr(key)
            pipe.expire(key, ttl, nx=True)
        results = pipe.execute()
        return [int(value) for value in results[0::2]]
    values = []
    for key, ttl in items:
        if cache.add(key, 1, ttl):
            values.append(1)
        else:
            try:
                values.append(int(cache.incr(key)))
            except ValueError:  # expired between add and incr
                cache.set(key, 1, ttl)
                values.append(1)
    return values


def safe_incr_many(items: Sequence[tuple[str, int]]) -> list[int] | None:
    """incr_many that logs and returns None when the cache is unreachable (fail open)."""
    try:
        return incr_many(items)
    except Exception as exc:
        log.warning("counters unavailable: %s", type(exc).__name__)
        return None

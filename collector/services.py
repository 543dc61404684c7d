"""Write-side services the views and commands call."""

from __future__ import annotations

import logging
from typing import Any

from django.db import DatabaseError

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The hit could not be queued (broker down, or in inline mode the database)."""


def enqueue_hits(hits: list[dict[str, Any]]) -> None:
    """Queue hits for the ingest worker; inline (in this request) when no broker is configured.

    Publishing is not retried: the broker's connect and socket timeouts are short, so a dead
    broker costs the request about a second and the client gets a 503 with Retry-After.
    """
    from collector.tasks import ingest_hits

    try:
        ingest_hits.apply_async((hits,), retry=False)
    except DatabaseError as exc:  # inline mode writes in the request
        log.warning("ingest inline failed: %s", type(exc).__name__)
        raise BrokerUnavailable from exc
    except Exception as exc:  # kombu/redis/boto errors and socket timeouts: the broker is unreachable
        log.warning("broker unavailable: %s: %s", type(exc).__name__, exc)
        raise BrokerUnavailable from exc

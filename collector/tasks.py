from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from django.db import DatabaseError

from collector.ingest import ingest_batch

log = logging.getLogger(__name__)


@shared_task(bind=True, acks_late=True, max_retries=200, ignore_result=True)
def ingest_hits(self: Any, hits: list[dict[str, Any]]) -> dict[str, int]:
    """Write queued hits. Database outages are retried with backoff (the hits wait in the queue);
    a hit that cannot be valid (deleted site, malformed) is dropped with a log line by ingest_batch."""
    try:
        result = ingest_batch(hits)
    except DatabaseError as exc:
        if self.request.is_eager:
            raise
        countdown = min(300, 2 ** min(self.request.retries, 8))
        log.warning("ingest: database error %s, retrying in %ss", type(exc).__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc
    return {"written": result.written, "duplicates": result.duplicates, "dropped": result.dropped}


@shared_task(ignore_result=True)
def rotate_salts_task() -> dict[str, Any]:
    from collector.salts import rotate_salts

    created, deleted = rotate_salts()
    return {"created": created, "deleted": deleted}

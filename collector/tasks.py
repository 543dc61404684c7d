from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.db import Error

from collector.ingest import ingest_batch
from collector.salts import rotate_salts

log = logging.getLogger(__name__)


def write_hits(hits: list[dict[str, Any]]) -> dict[str, int]:
    """Write hits (one transaction when nothing is wrong): what ingest_hits runs, and what the
    Lambda worker runs once for all the ingest messages of an SQS batch (fathom.lambda_sqs).

    A hit that is invalid or cannot be written is dropped by ingest_batch (counted in "invalid"
    or "poison", and in "dropped"), so it never fails its batch-mates; an outage raises."""
    return asdict(ingest_batch(hits))


def retry_countdown(retries: int) -> int:
    """Seconds before the next attempt after a database error: 1, 2, 4, ... capped at 5 minutes."""
    return min(300, 2 ** min(retries, 8))


@shared_task(bind=True, acks_late=True, max_retries=200, ignore_result=True)
def ingest_hits(self: Any, hits: list[dict[str, Any]]) -> dict[str, int]:
    """Write queued hits. Database outages are retried with backoff (the hits wait in the queue);
    a hit that cannot be valid (deleted site, malformed) or cannot be written (poison) is dropped
    with a log line by ingest_batch and the others are written, so it never causes a retry."""
    try:
        return write_hits(hits)
    except Error as exc:  # DatabaseError or InterfaceError (connection closed): an outage
        if self.request.is_eager:
            raise
        countdown = retry_countdown(self.request.retries)
        log.warning("ingest: database error %s, retrying in %ss", type(exc).__name__, countdown)
        raise self.retry(exc=exc, countdown=countdown) from exc


@shared_task(ignore_result=True)
def rotate_salts_task() -> dict[str, Any]:
    created, deleted = rotate_salts()
    return {"created": created, "deleted": deleted}

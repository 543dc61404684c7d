"""A batching consumer of the ingest queue, for servers (locally: Redis; anywhere kombu reaches).

A Celery worker runs one task, so one transaction, per queued hit: about 100 hits per second.
This command takes up to --batch queued messages at a time (waiting at most --wait seconds to
fill a batch), writes them with one ingest_batch call (one transaction, one upsert per rollup
key) and acknowledges them after the commit. A redelivered message counts once (hit ids).
A hit that is invalid or cannot be written is dropped by ingest_batch and its batch-mates are
written: its message is acknowledged with theirs. A batch that fails as a whole (an outage)
goes back to the queue and the loop waits (1 s, doubling up to a minute) before the next one.
Run it instead of a Celery worker on the `ingest` queue; Celery workers keep `default`. On
Lambda the SQS handler does the same grouping.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser
from django.db import Error, close_old_connections
from kombu import Connection, Consumer, Exchange, Queue
from kombu.exceptions import DecodeError

from collector.ingest import ingest_batch
from collector.write_errors import describe

log = logging.getLogger(__name__)
TASK_NAME = "collector.tasks.ingest_hits"


class BatchFailed(Exception):
    """ingest_batch raised something other than a database error for a whole batch (a bug, not
    a hit: those are dropped inside); its messages are back in the queue."""


def hits_of(message: Any) -> list[dict[str, Any]] | None:
    """The hits a Celery ingest_hits message carries, or None if it is not one."""
    if (message.headers or {}).get("task") != TASK_NAME:
        return None
    try:
        args, _kwargs, _embed = message.decode()
        hits = args[0]
    except (DecodeError, ValueError, TypeError, IndexError, KeyError):
        return None
    return hits if isinstance(hits, list) else None


class BatchConsumer:
    """Receives raw messages (undecoded, so a corrupt one cannot stop the loop) from `ingest`."""

    def __init__(self, connection: Any, batch: int) -> None:
        self.connection = connection
        self.received: list[Any] = []
        self.consumer = Consumer(
            connection.default_channel,
            queues=[Queue("ingest", Exchange("ingest"), routing_key="ingest")],
            on_message=self.received.append,
            prefetch_count=batch,
        )
        self.consumer.consume()

    def take(self, batch: int, wait: float) -> list[Any]:
        deadline = time.monotonic() + wait
        while len(self.received) < batch:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                self.connection.drain_events(timeout=remaining)
            except TimeoutError:
                break
        taken, self.received[:] = self.received[:batch], self.received[batch:]
        return taken

    def close(self) -> None:
        self.consumer.cancel()


def drain_once(consumer: BatchConsumer, batch: int, wait: float) -> tuple[int, int]:
    """Take up to `batch` messages, write their hits in one batch, ack them after the commit.

    Returns (messages taken, hits written)."""
    messages: list[Any] = []
    hits: list[dict[str, Any]] = []
    for message in consumer.take(batch, wait):
        carried = hits_of(message)
        if carried is None:
            log.warning("ingest worker: rejected a message that is not an ingest_hits task")
            message.reject()
            continue
        messages.append(message)
        hits.extend(carried)
    if not messages:
        return 0, 0
    close_old_connections()
    try:
        result = ingest_batch(hits)
    except Exception as exc:
        log.warning("ingest worker: batch failed (%s), %d messages back to the queue", describe(exc), len(messages))
        for message in messages:
            message.requeue()
        if isinstance(exc, Error):  # a database error (DatabaseError, InterfaceError): an outage
            raise
        raise BatchFailed(describe(exc)) from exc
    for message in messages:
        message.ack()
    return len(messages), result.written


class Command(BaseCommand):
    help = "Consume the ingest queue in batches (one transaction per batch)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch", type=int, default=1000, help="hits per batch (default 1000)")
        parser.add_argument("--wait", type=float, default=1.0, help="seconds to wait to fill a batch")
        parser.add_argument("--once", action="store_true", help="process one batch and exit")

    def handle(self, *args: Any, batch: int, wait: float, once: bool, **options: Any) -> None:
        if settings.CELERY_TASK_ALWAYS_EAGER:
            self.stderr.write("CELERY_BROKER_URL is not set: hits are written in the request, nothing to consume")
            return
        backoff = 1.0
        with Connection(settings.CELERY_BROKER_URL, transport_options=settings.CELERY_BROKER_TRANSPORT_OPTIONS) as conn:
            consumer = BatchConsumer(conn, batch)
            try:
                while True:
                    try:
                        taken, written = drain_once(consumer, batch, wait)
                        backoff = 1.0
                    except (Error, BatchFailed):
                        if once:
                            raise
                        time.sleep(backoff)
                        backoff = min(backoff * 2, 60.0)
                        continue
                    if taken:
                        self.stdout.write(f"{taken} messages, {written} hits written")
                    if once:
                        return
            finally:
                consumer.close()

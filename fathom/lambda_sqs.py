"""The worker function: run a batch of Celery messages delivered by the SQS event source.

Each record's body is what kombu's SQS transport published: base64 of a JSON envelope (or the
envelope itself with `sqs_base64_encoding` off), whose `body` is base64 of `[args, kwargs, embed]`.
The task name, id, eta and retry count are in the envelope's headers.

- All `collector.tasks.ingest_hits` records of the batch are written together: one
  `write_hits` call, one transaction. Ingest is idempotent per hit id, so a redelivered message
  counts once. A hit that is invalid or that the database refuses (even alone) is dropped
  inside `write_hits` with a log line naming its id, and its batch-mates are written: its
  record is then done like the others (deleted, not delivered again).
- Other tasks run one by one in this process, as a Celery worker would run them.
- A message whose eta is in the future is not run: it is published again with SQS
  DelaySeconds = min(900, seconds left), same id, eta and retries (eta kept, so a delay longer
  than 15 minutes is delayed again on arrival). A task's `self.retry(countdown=c)` is published
  the same way (retries + 1, DelaySeconds = min(900, c)). So is the ingest group when the
  database is unreachable (OperationalError / InterfaceError), with ingest_hits' backoff.
  The original record then counts as done: it is deleted, not delivered a second time.
- Failures are returned as `batchItemFailures` (messageIds): an unreadable message, an unknown
  task, a task that raises, a task past max_retries, or a republish that failed. SQS delivers
  those again after the visibility timeout and, after the queue's maxReceiveCount, moves them
  to its dead-letter queue. The ingest group failing as a whole for another reason (not an
  outage, not one hit's data: e.g. a missing table) is split into its messages, so only the
  bad one fails.

This relies on ReportBatchItemFailures being enabled on the event source mapping (Zappa does
not set it; a post-deploy hook does). Without it Lambda ignores the list and deletes the whole
batch. Set SQS_REPORT_BATCH_ITEM_FAILURES=0 then: a batch with failures raises instead, the
whole batch comes back, and its ingest messages count once (hit ids); the other tasks are
idempotent too (WAF sync, expiries, salts, reports).

Privacy: no record body, argument or exception message is logged; only message ids, task
names and exception types.
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import datetime as dt
import json
import logging
import math
import os
import re
from dataclasses import dataclass
from typing import Any

from celery import signals
from celery.exceptions import Ignore, Reject, Retry
from django.db import InterfaceError, OperationalError, close_old_connections

from fathom.celery import app

log = logging.getLogger(__name__)

INGEST_TASK = "collector.tasks.ingest_hits"
MAX_DELAY_SECONDS = 900  # SQS's limit for DelaySeconds
# Only the project's own tasks run here (not Celery's built-in canvas tasks, not a library's).
PROJECT_PACKAGES = frozenset({"sites", "collector", "dashboard", "security", "fathom"})
# Strict base64, as kombu's SQS transport checks it before decoding a body.
_B64 = re.compile(rb"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$")

# Set while this module handles a batch: Celery's own retry publishing then gets DelaySeconds.
_in_batch: contextvars.ContextVar[bool] = contextvars.ContextVar("fathom_sqs_batch", default=False)
_modules_imported = False


class Poison(ValueError):
    """A record that is not a Celery message this worker can read."""


@dataclass
class Job:
    message_id: str
    name: str
    id: str
    args: list[Any]
    kwargs: dict[str, Any]
    headers: dict[str, Any]
    properties: dict[str, Any]

    @property
    def retries(self) -> int:
        return int(self.headers.get("retries") or 0)

    @property
    def eta(self) -> dt.datetime | None:
        return parse_time(self.headers.get("eta"))

    @property
    def expires(self) -> dt.datetime | None:
        return parse_time(self.headers.get("expires"))

    @property
    def queue(self) -> str | None:
        return (self.properties.get("delivery_info") or {}).get("routing_key") or None

    @property
    def hits(self) -> list[dict[str, Any]]:
        hits = self.args[0] if self.args else self.kwargs.get("hits")
        if not isinstance(hits, list) or len(self.args) > 1:
            raise Poison("ingest_hits without a list of hits")
        return hits


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def parse_time(value: Any) -> dt.datetime | None:
    if not value:
        return None
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        raise Poison("unreadable eta/expires header") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def delay_seconds(eta: dt.datetime | None, at: dt.datetime) -> int:
    """Whole seconds until eta, capped at SQS's 900; 0 when it is due."""
    if eta is None:
        return 0
    return min(MAX_DELAY_SECONDS, max(0, math.ceil((eta - at).total_seconds())))


def _b64_or_raw(text: str) -> bytes:
    """Mirror kombu: decode only text that is strict base64 of UTF-8, else take it as it is."""
    raw = text.encode()
    candidate = raw.strip()
    if _B64.fullmatch(candidate) is None:
        return raw
    try:
        decoded = base64.b64decode(candidate, validate=True)
        decoded.decode("utf-8")
    except (binascii.Error, ValueError):  # UnicodeDecodeError is a ValueError
        return raw
    if base64.b64encode(decoded).rstrip(b"=") != candidate.rstrip(b"="):
        return raw
    return decoded


def decode(record: dict[str, Any]) -> Job:
    """A Lambda SQS record → Job, or Poison (the reason names no content)."""
    body = record.get("body")
    if not isinstance(body, str):
        raise Poison("record without a body")
    try:
        envelope = json.loads(_b64_or_raw(body))
    except ValueError:
        raise Poison("body is not a JSON envelope") from None
    if not isinstance(envelope, dict):
        raise Poison("body is not a JSON envelope")
    if envelope.get("content-type") != "application/json":
        raise Poison("envelope content-type is not application/json")
    headers = envelope.get("headers")
    properties = envelope.get("properties") or {}
    if not isinstance(headers, dict) or not isinstance(properties, dict):
        raise Poison("envelope without headers")
    if headers.get("compression"):
        raise Poison("compressed messages are not supported")
    name, task_id = headers.get("task"), headers.get("id")
    if not isinstance(name, str) or not isinstance(task_id, str):
        raise Poison("envelope without a task name and id (not Celery message protocol 2)")
    payload = envelope.get("body")
    try:
        if properties.get("body_encoding") == "base64":
            payload = base64.b64decode(payload, validate=True)
        if isinstance(payload, bytes):
            payload = payload.decode(envelope.get("content-encoding") or "utf-8")
        decoded = json.loads(payload)
    except (TypeError, ValueError, LookupError):  # binascii.Error and UnicodeDecodeError are ValueErrors
        raise Poison("message body is not base64 JSON") from None
    if not (isinstance(decoded, list) and len(decoded) == 3):
        raise Poison("message body is not [args, kwargs, embed]")
    args, kwargs, _embed = decoded
    if not isinstance(args, list) or not isinstance(kwargs, dict):
        raise Poison("message body is not [args, kwargs, embed]")
    try:
        int(headers.get("retries") or 0)
    except (TypeError, ValueError):
        raise Poison("unreadable retries header") from None
    job = Job(str(record.get("messageId")), name, task_id, args, kwargs, headers, properties)
    job.eta, job.expires  # noqa: B018 (validate both now: a bad header is poison, not a crash later)
    return job


@signals.before_task_publish.connect(dispatch_uid="fathom.lambda_sqs.delay_on_sqs")
def _delay_on_sqs(headers: dict[str, Any] | None = None, properties: dict[str, Any] | None = None, **_: Any) -> None:
    """While a batch runs, a message published with an eta (a task's self.retry(countdown=...))
    is delayed by SQS itself: Celery only writes the eta, and a Lambda worker cannot hold it."""
    if not _in_batch.get() or properties is None or not headers:
        return
    if properties.get("DelaySeconds") is not None or properties.get("delay_seconds") is not None:
        return
    try:
        delay = delay_seconds(parse_time(headers.get("eta")), now())
    except Poison:
        return
    if delay:
        properties["DelaySeconds"] = delay


def republish(task: Any, job: Job, *, retries: int, eta: dt.datetime) -> int:
    """Send the job again, delayed by SQS until eta (at most 900 s); same id and headers."""
    delay = delay_seconds(eta, now())
    options: dict[str, Any] = {
        "task_id": job.id,
        "eta": eta,
        "retries": retries,
        "expires": job.expires,
        "root_id": job.headers.get("root_id"),
        "parent_id": job.headers.get("parent_id"),
        "argsrepr": job.headers.get("argsrepr"),
        "kwargsrepr": job.headers.get("kwargsrepr"),
        "retry": False,  # fail fast; the record is then reported and SQS delivers it again
        "DelaySeconds": delay,
    }
    if job.queue:
        options["queue"] = job.queue
    task.apply_async(job.args, job.kwargs, **options)
    return delay


def run_task(task: Any, job: Job) -> bool:
    """Run one task in this process as a worker would (not eagerly: self.request.is_eager is
    False, so a task's self.retry() publishes the retry). True when the message is done."""
    request = {
        **job.headers,
        "id": job.id,
        "retries": job.retries,
        "delivery_info": job.properties.get("delivery_info") or {},
        "reply_to": job.properties.get("reply_to"),
        "correlation_id": job.properties.get("correlation_id"),
        "hostname": "lambda",
    }
    task.push_request(request, args=job.args, kwargs=job.kwargs, called_directly=False, is_eager=False)
    try:
        task.run(*job.args, **job.kwargs)
    except Retry as exc:
        log.info("sqs: %s %s retries in %ss (republished)", job.name, job.message_id, exc.when)
        return True
    except Ignore:
        return True
    except Reject as exc:  # the retry could not be published
        log.error("sqs: %s %s could not be retried: %s", job.name, job.message_id, type(exc.reason).__name__)
        return False
    except Exception as exc:
        log.error("sqs: %s %s failed: %s", job.name, job.message_id, type(exc).__name__)
        return False
    finally:
        task.pop_request()
    return True


def run_ingest(jobs: list[Job]) -> list[str]:
    """Write the hits of all these ingest messages in one transaction. Returns failed messageIds."""
    # collector.tasks imports models, which Django can load only after setup; lambda_handler
    # imports this module before fathom.asgi sets Django up. Both imports below wait for a batch.
    from collector.tasks import write_hits

    hits = [hit for job in jobs for hit in job.hits]
    try:
        result = write_hits(hits)
    except (OperationalError, InterfaceError) as exc:  # unreachable, deadlock, lock wait: try later
        log.warning("sqs: ingest of %d message(s) hit %s; retrying later", len(jobs), type(exc).__name__)
        close_old_connections()
        return retry_ingest_later(jobs)
    except Exception as exc:
        if len(jobs) == 1:
            log.error("sqs: ingest message %s failed: %s", jobs[0].message_id, type(exc).__name__)
            return [jobs[0].message_id]
        log.warning("sqs: ingest of %d messages failed (%s); writing them one by one", len(jobs), type(exc).__name__)
        return [failed for job in jobs for failed in run_ingest([job])]
    log.info("sqs: ingested %d message(s): %s", len(jobs), result)
    return []


def retry_ingest_later(jobs: list[Job]) -> list[str]:
    from collector.tasks import ingest_hits, retry_countdown  # after Django's setup: see run_ingest

    failed = []
    for job in jobs:
        retries = job.retries + 1
        if ingest_hits.max_retries is not None and retries > ingest_hits.max_retries:
            log.error("sqs: ingest message %s gave up after %d retries", job.message_id, job.retries)
            failed.append(job.message_id)
            continue
        countdown = retry_countdown(job.retries)
        try:
            republish(ingest_hits, job, retries=retries, eta=now() + dt.timedelta(seconds=countdown))
        except Exception as exc:
            log.error("sqs: ingest message %s could not be republished: %s", job.message_id, type(exc).__name__)
            failed.append(job.message_id)
    return failed


def _import_tasks() -> None:
    global _modules_imported
    if not _modules_imported:
        app.loader.import_default_modules()  # runs autodiscover_tasks: every app's tasks.py
        _modules_imported = True


def handle(event: dict[str, Any], context: Any) -> dict[str, Any]:
    """Process a Lambda SQS batch; returns {"batchItemFailures": [{"itemIdentifier": messageId}, ...]}."""
    _import_tasks()
    close_old_connections()
    token = _in_batch.set(True)
    failures: list[str] = []
    ingest: list[Job] = []
    try:
        for record in event.get("Records") or []:
            message_id = str(record.get("messageId"))
            try:
                job = decode(record)
                if job.name == INGEST_TASK:
                    job.hits  # noqa: B018 (a malformed ingest message is poison, not a failed group)
            except Poison as exc:
                log.error("sqs: message %s is unreadable (%s)", message_id, exc)
                failures.append(message_id)
                continue
            if job.name not in app.tasks or job.name.split(".")[0] not in PROJECT_PACKAGES:
                log.error("sqs: message %s names an unknown task %r", message_id, job.name[:200])
                failures.append(message_id)
                continue
            task = app.tasks[job.name]
            at = now()
            if job.expires is not None and job.expires <= at:
                log.warning("sqs: %s %s expired; dropped", job.name, message_id)
                continue
            if delay_seconds(job.eta, at):
                try:
                    delay = republish(task, job, retries=job.retries, eta=job.eta)
                except Exception as exc:
                    log.error("sqs: %s %s could not be delayed: %s", job.name, message_id, type(exc).__name__)
                    failures.append(message_id)
                else:
                    log.info("sqs: %s %s not due; delayed %ss", job.name, message_id, delay)
                continue
            if job.name == INGEST_TASK:
                ingest.append(job)
            elif not run_task(task, job):
                failures.append(message_id)
        if ingest:
            failures.extend(run_ingest(ingest))
    finally:
        _in_batch.reset(token)
        close_old_connections()
    failed = list(dict.fromkeys(failures))  # a message delivered twice in one batch is listed once
    if failed and not report_batch_item_failures():
        raise RuntimeError(f"{len(failed)} message(s) of the batch failed; the whole batch will be delivered again")
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failed]}


def report_batch_item_failures() -> bool:
    """SQS_REPORT_BATCH_ITEM_FAILURES=0 when the event source mapping lacks ReportBatchItemFailures."""
    return os.environ.get("SQS_REPORT_BATCH_ITEM_FAILURES", "1").strip().lower() not in {"0", "false", "no", "off"}

"""The one entry point of the three Lambda functions (web, worker, commands): Zappa names it
through `lambda_handler`, which replaces Zappa's own handler (its ASGI mode returns empty
responses with Django), so this module dispatches every event itself, by shape:

- keep-warm ping (EventBridge rule `...zappa-keep-warm...`) → {"warm": True} at once, no Django work;
- HTTP (ALB with multi-value headers, API Gateway v1/v2, function URL) → Mangum over Django's
  ASGI app, lifespan off;
- `Records` from `aws:sqs` → the Celery worker (fathom.lambda_sqs), returns batchItemFailures;
- EventBridge `Scheduled Event` with `kwargs.command` → that management command, if allowed
  (fathom.lambda_commands);
- anything else → ValueError (logged by its keys only: events can carry IP addresses).

Behind an ALB, Mangum hands Django the whole X-Forwarded-For string as the client address;
security.middleware.ClientIPMiddleware resolves the real client from it with
TRUSTED_PROXY_HOPS, and that is the only client IP anything uses.

The Lambda package ships PyMySQL instead of mysqlclient (whose C library does not load on
Lambda); it stands in for MySQLdb before Django is imported. Locally mysqlclient is used.
"""

from __future__ import annotations

import logging
import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fathom.settings")

try:
    import MySQLdb  # noqa: F401
except ImportError:
    try:
        import pymysql
    except ImportError:  # neither: fine unless DATABASE_URL is mysql://, and Django says so
        pass
    else:
        pymysql.install_as_MySQLdb()

from mangum import Mangum

from fathom import lambda_commands, lambda_sqs
from fathom.asgi import application

log = logging.getLogger(__name__)

_http = Mangum(application, lifespan="off")


def is_keep_warm(event: dict[str, Any]) -> bool:
    resources = event.get("resources") or []
    return event.get("detail-type") == "Scheduled Event" and any("keep-warm" in str(r) for r in resources)


def is_http(event: dict[str, Any]) -> bool:
    context = event.get("requestContext") or {}
    return "elb" in context or "httpMethod" in event or "http" in context


def is_sqs(event: dict[str, Any]) -> bool:
    records = event.get("Records")
    return bool(records) and all(isinstance(r, dict) and r.get("eventSource") == "aws:sqs" for r in records)


def is_scheduled_command(event: dict[str, Any]) -> bool:
    kwargs = event.get("kwargs")
    return event.get("detail-type") == "Scheduled Event" and isinstance(kwargs, dict) and "command" in kwargs


def handler(event: dict[str, Any], context: Any) -> Any:
    if not isinstance(event, dict):
        raise ValueError("unsupported event: not a JSON object")
    if is_keep_warm(event):
        return {"warm": True}
    if is_http(event):
        return _http(event, context)
    if is_sqs(event):
        return lambda_sqs.handle(event, context)
    if is_scheduled_command(event):
        return lambda_commands.run(event, context)
    keys = sorted(str(key)[:40] for key in event)[:20]
    log.error("lambda: unsupported event with keys %s", keys)
    raise ValueError(f"unsupported event: keys {keys}")

"""The entry point Zappa names through `lambda_handler` (not `app_function`: Zappa's own ASGI
mode returns empty responses with Django).

This first version serves the web function: HTTP events (ALB, API Gateway v1/v2, function
URL) go through Mangum to Django's ASGI app, and keep-warm pings return at once. The worker
(SQS) and commands (schedule) dispatch arrive with the serverless issue.

Behind an ALB, Mangum hands Django the whole X-Forwarded-For string as the client address;
security.middleware.ClientIPMiddleware resolves the real client from it with
TRUSTED_PROXY_HOPS, and that is the only client IP anything uses.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fathom.settings")

from mangum import Mangum

from fathom.asgi import application

_http = Mangum(application, lifespan="off")


def is_keep_warm(event: dict[str, Any]) -> bool:
    resources = event.get("resources") or []
    return event.get("detail-type") == "Scheduled Event" and any("keep-warm" in str(r) for r in resources)


def is_http(event: dict[str, Any]) -> bool:
    context = event.get("requestContext") or {}
    return "elb" in context or "httpMethod" in event or "http" in context


def handler(event: dict[str, Any], context: Any) -> Any:
    if is_keep_warm(event):
        return {"warm": True}
    if is_http(event):
        return _http(event, context)
    raise ValueError("unsupported event: only HTTP events and keep-warm pings are handled by this function")

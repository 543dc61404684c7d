"""Liveness (no I/O) and readiness (database, cache, broker) probes."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.http import HttpRequest, JsonResponse

from fathom.celery import app


def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def readyz(request: HttpRequest) -> JsonResponse:
    checks: dict[str, str] = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except Exception as exc:
        checks["database"] = type(exc).__name__
    try:
        cache.set("readyz", "1", 5)
        checks["cache"] = "ok" if cache.get("readyz") == "1" else "no round trip"
    except Exception as exc:
        checks["cache"] = type(exc).__name__
    if settings.CELERY_TASK_ALWAYS_EAGER:
        checks["broker"] = "inline"
    else:
        try:
            with app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=1, timeout=settings.BROKER_TIMEOUT)
            checks["broker"] = "ok"
        except Exception as exc:
            checks["broker"] = type(exc).__name__
    ok = all(value in ("ok", "inline") for value in checks.values())
    return JsonResponse({"status": "ok" if ok else "fail", "checks": checks}, status=200 if ok else 503)

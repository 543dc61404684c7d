from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from security.client_ip import resolve_client_ip


class ClientIPMiddleware:
    """Overwrite REMOTE_ADDR with the resolved client IP before any other code reads it.

    Zappa's handler fills REMOTE_ADDR from a client-controlled X-Forwarded-For entry and
    Mangum passes the whole header string; neither may be trusted.
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        resolved = resolve_client_ip(
            request.META.get("REMOTE_ADDR"),
            request.META.get("HTTP_X_FORWARDED_FOR"),
            settings.TRUSTED_PROXY_HOPS,
        )
        request.META["REMOTE_ADDR"] = resolved.ip
        request.client_ip = resolved.ip  # type: ignore[attr-defined]
        request.client_ip_anomaly = resolved.anomaly  # type: ignore[attr-defined]
        return self.get_response(request)

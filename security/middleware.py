from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from security import metrics
from security.bans import blocks
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


class BanMiddleware:
    """A banned client gets a bare 403 before any session, database or template work.

    (Sign-in limits live in security.login_limits: they must run after the CSRF check.)
    """

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        ip = request.META["REMOTE_ADDR"]
        # An `all` ban: every path; a `collector` ban: the collector paths only. Liveness
        # probes (/healthz) come from the load balancer and must not do I/O: never looked up.
        if blocks(ip, request.path_info):
            metrics.record("banned")
            return HttpResponse(b"", status=403, content_type="text/plain")
        return self.get_response(request)

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

from security import metrics
from security.bans import blocks
from security.client_ip import resolve_client_ip
from security.guards import LimiterUnavailable, check_limit, ip_key


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

    Also rate-limits login attempts (per IP and per username), failing closed.
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
        if request.method == "POST" and request.path in settings.LOGIN_PATHS:
            limited = self._login_limited(request, ip)
            if limited is not None:
                return limited
        return self.get_response(request)

    def _login_limited(self, request: HttpRequest, ip: str) -> HttpResponse | None:
        username = (request.POST.get("username") or "").strip().lower()[:150]
        try:
            limited = check_limit(request, "login-ip", ip_key(ip), settings.LOGIN_RATE, fail_open=False)
            if limited is None and username:
                limited = check_limit(request, "login-user", username, settings.LOGIN_RATE, fail_open=False)
        except LimiterUnavailable:
            response = HttpResponse("Sign-in is unavailable for a moment. Please retry.", status=503)
            response["Retry-After"] = "30"
            return response
        if limited is None:
            return None
        metrics.record("rate_limited")
        response = HttpResponse("Too many sign-in attempts. Please wait and retry.", status=429)
        response["Retry-After"] = str(limited.retry_after)
        return response

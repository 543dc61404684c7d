"""Shared links (/share/<token>/): lookup, the password unlock kept in the session, and the
shared dashboard, realtime counter and export (read-only, no account needed).

Rate limits (per client IP: the resolved REMOTE_ADDR, IPv6 by /64, as security.guards):

- Anonymous requests that read raw tables, i.e. a filtered shared dashboard and every export,
  count against settings.SHARE_RATE (default 60/m) per IP, across all links: over it, a 429
  page with Retry-After. The unfiltered dashboard reads only the rollups and is not limited.
  Fails open when the cache is down (a read-only view, unlike a password check).
- Password attempts count against settings.LOGIN_RATE per (IP, token), so that guessing from
  one address cannot lock everyone else out of a link. Fails closed.
"""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth.hashers import check_password
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.crypto import salted_hmac
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from dashboard import selectors
from dashboard.models import SharedLink
from dashboard.views.stats.export import export_response
from dashboard.views.stats.page import Links, not_found, render_dashboard
from security.guards import LimiterUnavailable, check_limit, ip_key

SHARE_SESSION_KEY = "shared_links_unlocked"
DEFAULT_SHARE_RATE = "60/m"


def _client(request: HttpRequest) -> str:
    return ip_key(request.META.get("REMOTE_ADDR", ""))


def _raw_read_limit(request: HttpRequest, link: SharedLink) -> HttpResponse | None:
    """A 429 page if this client is over SHARE_RATE for views that read raw tables, else None."""
    rate = getattr(settings, "SHARE_RATE", DEFAULT_SHARE_RATE)
    limited = check_limit(request, "share-raw", _client(request), rate, fail_open=True)
    if not limited:
        return None
    context = {
        "site": link.site,
        "retry_after": limited.retry_after,
        "unfiltered_url": reverse("share_dashboard", args=[link.token]),
    }
    response = render(request, "dashboard/stats/rate_limited.html", context, status=429)
    response["Retry-After"] = str(limited.retry_after)
    return response


def _share_links(link: SharedLink) -> Links:
    return Links(
        base=reverse("share_dashboard", args=[link.token]),
        export=reverse("share_export", args=[link.token]),
        realtime=reverse("share_realtime", args=[link.token]),
        shared=True,
    )


def _active_link(token: str) -> SharedLink | None:
    if not token or len(token) > 64:
        return None
    return SharedLink.objects.select_related("site").filter(token=token, revoked_at__isnull=True).first()


def _unlock_mark(link: SharedLink) -> str:
    """What the session keeps for an unlocked link: changes when the password does."""
    return salted_hmac("shared-link-unlock", f"{link.token}:{link.password_hash}").hexdigest()[:32]


def _unlocked(request: HttpRequest, link: SharedLink) -> bool:
    if not link.has_password:
        return True
    return request.session.get(SHARE_SESSION_KEY, {}).get(link.token) == _unlock_mark(link)


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def share_dashboard(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None:
        return not_found(request, "This shared link does not exist or has been revoked.")
    if request.method == "POST":
        return _share_password(request, link)
    if not _unlocked(request, link):
        return render(request, "dashboard/stats/share_password.html", {"link": link, "site": link.site})
    try:
        filtered = bool(request.GET.get("filters", "").strip())  # filtered: raw events and visits
    except SuspiciousOperation:
        filtered = False  # a query string Django refuses: render_dashboard answers a 400 page
    if filtered:
        limited = _raw_read_limit(request, link)
        if limited:
            return limited
    return render_dashboard(request, link.site, _share_links(link))


def _share_password(request: HttpRequest, link: SharedLink) -> HttpResponse:
    context = {"link": link, "site": link.site}
    if not link.has_password:
        return redirect("share_dashboard", token=link.token)
    try:
        key = f"{_client(request)}|{link.token}"
        limited = check_limit(request, "share-password", key, settings.LOGIN_RATE, fail_open=False)
    except LimiterUnavailable:
        context["error"] = "Password checks are unavailable right now. Try again in a minute."
        return render(request, "dashboard/stats/share_password.html", context, status=503)
    if limited:
        context["error"] = f"Too many attempts. Try again in {limited.retry_after} seconds."
        response = render(request, "dashboard/stats/share_password.html", context, status=429)
        response["Retry-After"] = str(limited.retry_after)
        return response
    if not check_password(request.POST.get("password", ""), link.password_hash):
        context["error"] = "That password is not right."
        return render(request, "dashboard/stats/share_password.html", context, status=403)
    unlocked = dict(request.session.get(SHARE_SESSION_KEY, {}))
    unlocked[link.token] = _unlock_mark(link)
    request.session[SHARE_SESSION_KEY] = unlocked
    request.session.cycle_key()
    return redirect("share_dashboard", token=link.token)


@never_cache
@require_GET
def share_realtime(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None or not _unlocked(request, link):
        return JsonResponse({"error": "not found"}, status=404)
    return JsonResponse({"visitors": selectors.realtime_visitors(link.site)})


@never_cache
@require_GET
def share_export(request: HttpRequest, token: str) -> HttpResponse:
    link = _active_link(token)
    if link is None:
        return not_found(request, "This shared link does not exist or has been revoked.")
    if not _unlocked(request, link):
        return redirect("share_dashboard", token=link.token)
    limited = _raw_read_limit(request, link)
    if limited:
        return limited
    return export_response(request, link.site)

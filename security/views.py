"""The security dashboard (/security/): traffic outcomes, flagged IPs, active bans. Staff only.

Server-rendered; every action is a POST through security.services that redirects back (PRG)
with a flash message. Reads come from security.selectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import wraps
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.contrib import messages
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect, QueryDict
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.timesince import timesince, timeuntil
from django.views.decorators.http import require_GET, require_POST

from fathom.charts import nice_step
from security import metrics, selectors
from security.forms import (
    DEFAULT_DURATION,
    DEFAULT_SCOPE,
    DURATIONS,
    SCOPES,
    FlaggedActionForm,
    ManualBanForm,
    UnbanForm,
    client_ip,
)
from security.services import unban_network

FLAGGED_PER_PAGE = 50
BANS_PER_PAGE = 100
SITES_SHOWN = 5

OUTCOME_STYLE = {  # outcome -> (label, colour); bottom of the stack first
    "accepted": ("Accepted", "#3b7dd8"),
    "dropped": ("Dropped", "#9aa3ad"),
    "rate_limited": ("Rate-limited", "#e8a317"),
    "banned": ("Banned", "#d64045"),
}
TICK_EVERY = {1: 10, 3: 30, 6: 60}  # minutes between x-axis labels for each window


# -- access ------------------------------------------------------------------------------------


def staff_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous: to the admin login and back. Signed in but not staff: a 403 page."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not request.user.is_staff:
            return render(request, "security/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return wrapper


# -- filters (the query string) ----------------------------------------------------------------


@dataclass(frozen=True)
class Filters:
    hours: int = selectors.DEFAULT_HOURS
    status: str = selectors.DEFAULT_STATUS
    reason: str = ""
    q: str = ""
    page: str = "1"
    bpage: str = "1"

    @classmethod
    def parse(cls, params: QueryDict) -> Filters:
        try:
            hours = int(params.get("hours", selectors.DEFAULT_HOURS))
        except ValueError:
            hours = selectors.DEFAULT_HOURS
        status = params.get("status", selectors.DEFAULT_STATUS)
        return cls(
            hours=hours if hours in selectors.WINDOW_HOURS else selectors.DEFAULT_HOURS,
            status=status if status in selectors.STATUS_CHOICES else selectors.DEFAULT_STATUS,
            reason=params.get("reason", "").strip()[:40],
            q=params.get("q", "").strip()[:45],
            page=params.get("page", "1")[:10],
            bpage=params.get("bpage", "1")[:10],
        )

    def query(self, **changes: Any) -> str:
        """The query string of these filters with some changed ('?…', or '' when all default)."""
        values = replace(self, **changes)
        defaults = Filters()
        params = {
            key: getattr(values, key)
            for key in ("hours", "status", "reason", "q", "page", "bpage")
            if getattr(values, key) != getattr(defaults, key)
        }
        return f"?{urlencode(params)}" if params else ""

    def url(self, **changes: Any) -> str:
        return reverse("security:index") + self.query(**changes)


def _back(request: HttpRequest) -> str:
    """Where an action returns to: the posted `next` if it is this dashboard, else its top."""
    index = reverse("security:index")
    target = request.POST.get("next", "")
    if (
        target.startswith(index)
        and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=False)
        and urlsplit(target).path == index
    ):
        return target
    return index


def _filters_of(url: str) -> Filters:
    return Filters.parse(QueryDict(urlsplit(url).query))


# -- chart -------------------------------------------------------------------------------------


def build_chart(traffic: selectors.Traffic) -> dict[str, Any]:
    """Geometry of a stacked per-minute bar chart, drawn as inline SVG by the template."""
    width, height = 960, 260
    left, right, top, bottom = 52, 12, 14, 30
    plot_w, plot_h = width - left - right, height - top - bottom
    rows = traffic.rows
    slot = plot_w / max(len(rows), 1)
    bar = max(slot * 0.82, 0.8)
    peak = traffic.peak
    step = int(nice_step(peak, integer=True))
    y_max = max(step * math.ceil(peak / step), step * 4 if peak == 0 else step)
    scale = plot_h / y_max
    baseline = top + plot_h

    paths: dict[str, list[str]] = {outcome: [] for outcome in metrics.OUTCOMES}
    hovers = []
    for index, row in enumerate(rows):
        x = left + index * slot + (slot - bar) / 2
        stacked = 0
        parts = []
        for outcome in OUTCOME_STYLE:
            value = row.get(outcome, 0)
            if value:
                y = baseline - (stacked + value) * scale
                paths[outcome].append(f"M{x:.2f},{y:.2f}h{bar:.2f}v{value * scale:.2f}h{-bar:.2f}z")
                stacked += value
                parts.append(f"{OUTCOME_STYLE[outcome][0].lower()} {value}")
        if stacked:
            when = timezone.localtime(selectors.minute_start(row["minute"]))
            hovers.append(
                {
                    "x": f"{left + index * slot:.2f}",
                    "w": f"{slot:.2f}",
                    "time": f"{when:%H:%M}",
                    "ts": row["minute"] * 60,
                    "detail": ", ".join(parts),
                }
            )

    y_ticks = [{"y": f"{baseline - value * scale:.1f}", "label": f"{value:,}"} for value in range(0, y_max + 1, step)]
    every = TICK_EVERY.get(traffic.hours, 30)
    x_ticks = []
    for index, row in enumerate(rows):
        if row["minute"] % every == 0:
            start = selectors.minute_start(row["minute"])
            x_ticks.append(
                {
                    "x": f"{left + (index + 0.5) * slot:.1f}",
                    "label": f"{timezone.localtime(start):%H:%M}",
                    "ts": int(start.timestamp()),
                }
            )
    return {
        "width": width,
        "height": height,
        "left": left,
        "right_x": width - right,
        "top": top,
        "baseline": f"{baseline:.1f}",
        "tick_end": f"{baseline + 4:.1f}",
        "plot_h": f"{plot_h:.1f}",
        "center_x": f"{left + plot_w / 2:.1f}",
        "center_y": f"{top + plot_h / 2:.1f}",
        "label_y": height - 8,
        "series": [
            {"outcome": outcome, "label": label, "color": color, "d": "".join(paths[outcome])}
            for outcome, (label, color) in OUTCOME_STYLE.items()
        ],
        "y_ticks": y_ticks,
        "x_ticks": x_ticks,
        "hovers": hovers,
        "empty": peak == 0,
        "timezone": timezone.get_current_timezone_name(),
    }


# -- the page ----------------------------------------------------------------------------------


def _ago(when: Any, now: Any) -> str:
    if when is None:
        return ""
    return "just now" if abs((now - when).total_seconds()) < 60 else f"{timesince(when, now)} ago"


def _in(when: Any, now: Any) -> str:
    if when is None:
        return ""
    return "in under a minute" if (when - now).total_seconds() < 60 else f"in {timeuntil(when, now)}"


def _ban_row(ban: Any, now: Any) -> dict[str, Any]:
    return {
        "ban": ban,
        "created": _ago(ban.created_at, now),
        "expires": _in(ban.expires_at, now),
        "synced": _ago(ban.waf_synced_at, now),
    }


def _flag_row(flag: Any, labels: dict[str, str], now: Any) -> dict[str, Any]:
    reasons = sorted((flag.reasons or {}).items(), key=lambda item: (-selectors._as_int(item[1]), item[0]))
    sites = list(flag.sites or [])
    return {
        "flag": flag,
        "reasons": [{"code": code, "count": count, "label": labels.get(code, "")} for code, count in reasons],
        "sites": sites[:SITES_SHOWN],
        "more_sites": max(len(sites) - SITES_SHOWN, 0),
        "first_seen": _ago(flag.first_seen, now),
        "last_seen": _ago(flag.last_seen, now),
    }


def _context(request: HttpRequest, filters: Filters, ban_form: ManualBanForm | None = None) -> dict[str, Any]:
    now = timezone.now()
    traffic = selectors.traffic(filters.hours)
    labels = selectors.reason_labels()

    flagged_page = Paginator(
        selectors.flagged_ips(status=filters.status, reason=filters.reason, ip_prefix=filters.q), FLAGGED_PER_PAGE
    ).get_page(filters.page)
    bans_page = Paginator(selectors.active_bans(), BANS_PER_PAGE).get_page(filters.bpage)
    cap_bans = list(selectors.waf_cap_bans().values_list("network", "waf_message")[:6])
    waf = selectors.waf_configured()
    collector_waf = selectors.waf_collector_configured()

    reason_codes = sorted(set(labels) | ({filters.reason} if filters.reason else set()))
    return {
        "filters": filters,
        "here": request.get_full_path() if request.method == "GET" else filters.url(),
        "traffic": traffic,
        "totals": [
            {"outcome": outcome, "label": label, "color": color, "value": traffic.totals.get(outcome, 0)}
            for outcome, (label, color) in OUTCOME_STYLE.items()
        ],
        "chart": build_chart(traffic),
        "windows": [{"hours": hours, "url": filters.url(hours=hours)} for hours in selectors.WINDOW_HOURS],
        "statuses": [
            {"value": value, "label": "all statuses" if value == "all" else value} for value in selectors.STATUS_CHOICES
        ],
        "reason_codes": [{"code": code, "label": labels.get(code, "")} for code in reason_codes],
        "flagged_page": flagged_page,
        "flagged_rows": [_flag_row(flag, labels, now) for flag in flagged_page.object_list],
        "flagged_prev": filters.url(page=flagged_page.previous_page_number()) if flagged_page.has_previous() else "",
        "flagged_next": filters.url(page=flagged_page.next_page_number()) if flagged_page.has_next() else "",
        "bans_page": bans_page,
        "ban_rows": [_ban_row(ban, now) for ban in bans_page.object_list],
        "bans_prev": filters.url(bpage=bans_page.previous_page_number()) if bans_page.has_previous() else "",
        "bans_next": filters.url(bpage=bans_page.next_page_number()) if bans_page.has_next() else "",
        "cap_bans": cap_bans,
        "waf_v4": waf[4],
        "waf_v6": waf[6],
        # Collector bans are enforced by the app alone without the collector IP set pair: say so
        # when there are some (the pair is optional, so no note when nothing is affected).
        "collector_waf_missing": [f"IPv{v}" for v in (4, 6) if not collector_waf[v]]
        if (waf[4] or waf[6]) and not all(collector_waf.values()) and selectors.has_collector_bans()
        else [],
        "scopes": SCOPES,
        "default_scope": DEFAULT_SCOPE,
        "durations": DURATIONS,
        "default_duration": DEFAULT_DURATION,
        "ban_form": ban_form or ManualBanForm(),
        "now": now,
    }


@require_GET
@staff_required
def index(request: HttpRequest) -> HttpResponse:
    filters = Filters.parse(request.GET)
    return render(request, "security/dashboard.html", _context(request, filters))


# -- actions (POST, then redirect back) --------------------------------------------------------


@require_POST
@staff_required
def ban(request: HttpRequest) -> HttpResponse:
    """The manual "Ban an IP/CIDR" form."""
    back = _back(request)
    form = ManualBanForm(request.POST)
    if form.is_valid():
        try:
            message = form.save(actor=request.user, client_ip=client_ip(request))
        except ValidationError:
            pass  # the form now carries the service's message
        else:
            messages.success(request, message)
            return HttpResponseRedirect(back)
    messages.error(request, "The ban was not created: see the form below.")
    context = _context(request, _filters_of(back), ban_form=form)
    context["here"] = back
    return render(request, "security/dashboard.html", context, status=400)


@require_POST
@staff_required
def flagged_action(request: HttpRequest) -> HttpResponse:
    """A row's Ban / Dismiss button, or the bulk bar over the checked rows."""
    form = FlaggedActionForm(request.POST)
    if not form.is_valid():
        for errors in form.errors.values():
            for error in errors:
                messages.error(request, error)
        return HttpResponseRedirect(_back(request))
    done, errors = form.save(actor=request.user, client_ip=client_ip(request))
    for message in done:
        messages.success(request, message)
    for message in errors:
        messages.error(request, message)
    return HttpResponseRedirect(_back(request))


@require_POST
@staff_required
def unban(request: HttpRequest) -> HttpResponse:
    form = UnbanForm(request.POST)
    if form.is_valid():
        network = form.cleaned_data["network"]
        try:
            removed = unban_network(network=network, actor=request.user)
        except ValidationError as exc:
            messages.error(request, " ".join(exc.messages))
        else:
            if removed:
                messages.success(request, f"Unbanned {network}.")
            else:
                messages.warning(request, f"{network} was not banned.")
    else:
        messages.error(request, "Say which network to unban.")
    return HttpResponseRedirect(_back(request))

"""Reads of the security dashboard and admin: flagged IPs, active bans, traffic series.

Writes never happen here; they go through security.services.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field

from django.conf import settings
from django.db.models import QuerySet

from security import metrics
from security.detectors import REASONS
from security.models import Ban, FlaggedIP

WINDOW_HOURS = (1, 3, 6)
DEFAULT_HOURS = 3
STATUS_CHOICES = ("open", "dismissed", "banned", "all")
DEFAULT_STATUS = "open"
WAF_CAP_MARKER = "over the WAF cap"


def reason_labels() -> dict[str, str]:
    """Known reason codes -> a human label (from the detectors; empty if they are not there)."""
    return {code: getattr(reason, "label", code) for code, reason in REASONS.items()}


def describe_reasons(reasons: dict[str, int] | None) -> str:
    """{"rate": 12, "xff": 5} -> "rate x12, xff x5" (largest count first)."""
    items = sorted((reasons or {}).items(), key=lambda item: (-_as_int(item[1]), item[0]))
    return ", ".join(f"{code} x{count}" for code, count in items)


def _as_int(value: object) -> int:
    try:
        return int(value)  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return 0


def flagged_ips(*, status: str = DEFAULT_STATUS, reason: str = "", ip_prefix: str = "") -> QuerySet[FlaggedIP]:
    """Flagged IPs, highest score first. status "all" shows every status."""
    rows = FlaggedIP.objects.all()
    if status and status != "all":
        rows = rows.filter(status=status)
    if reason:
        rows = rows.filter(reasons__has_key=reason)
    if ip_prefix:
        rows = rows.filter(ip__startswith=ip_prefix.strip())
    return rows.order_by("-score", "-last_seen", "ip")


def active_bans() -> QuerySet[Ban]:
    return Ban.objects.active().select_related("created_by").order_by("-created_at", "network")


def waf_cap_bans() -> QuerySet[Ban]:
    """Active bans the WAF sync left out because the IP set is full."""
    return Ban.objects.active().filter(waf_state=Ban.WafState.SKIPPED, waf_message__icontains=WAF_CAP_MARKER)


def waf_configured() -> dict[int, bool]:
    return {4: bool(settings.WAF_IPSET_V4_ARN), 6: bool(settings.WAF_IPSET_V6_ARN)}


def waf_collector_configured() -> dict[int, bool]:
    """The optional IP set pair for bans of scope collector."""
    return {
        4: bool(getattr(settings, "WAF_COLLECTOR_IPSET_V4_ARN", "")),
        6: bool(getattr(settings, "WAF_COLLECTOR_IPSET_V6_ARN", "")),
    }


def has_collector_bans() -> bool:
    return Ban.objects.active().filter(scope=Ban.Scope.COLLECTOR).exists()


@dataclass
class Traffic:
    hours: int
    rows: list[dict[str, int]]  # per minute, oldest first (security.metrics.series)
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return sum(self.totals.values())

    @property
    def peak(self) -> int:
        return max((sum(row[o] for o in metrics.OUTCOMES) for row in self.rows), default=0)


def traffic(hours: int = DEFAULT_HOURS, now: float | None = None) -> Traffic:
    """Per-minute outcome counts for the last `hours` hours, with totals per outcome."""
    rows = metrics.series(hours * 60, now=now)
    totals = {outcome: sum(row[outcome] for row in rows) for outcome in metrics.OUTCOMES}
    return Traffic(hours=hours, rows=rows, totals=totals)


def minute_start(minute: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC)


def now_epoch() -> float:
    return time.time()

"""Writes of the security app: bans, unbans, expiry, flags. Every ban change is audited,
bumps the snapshot version and queues a WAF sync once the transaction commits."""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import re
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from security.bans import bump_version
from security.models import Ban, BanAudit, FlaggedIP, Scope, normalize_network, wider_scope
from security.waf_sync import sync_waf_task

log = logging.getLogger(__name__)

_DURATION = re.compile(r"^\s*(\d+)\s*([smhdw])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def parse_duration(text: str | None) -> dt.timedelta | None:
    """'30m', '24h', '7d', '2w' -> timedelta; '', 'forever', 'permanent' -> None."""
    if text is None or text.strip().lower() in ("", "forever", "permanent", "never"):
        return None
    match = _DURATION.match(text.lower())
    if not match or int(match.group(1)) == 0:
        raise ValidationError(f"{text!r} is not a duration like 30m, 24h or 7d.")
    return dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})


def auto_ban_duration(times_banned: int) -> dt.timedelta:
    """Escalating: the base duration times 4 for each earlier ban, capped."""
    base = dt.timedelta(minutes=settings.AUTO_BAN_BASE_MINUTES)
    return min(base * (4**times_banned), dt.timedelta(days=settings.AUTO_BAN_MAX_DAYS))


def _schedule_after_change() -> None:
    """Once per transaction, however many bans it changes."""
    if not any(func is _after_ban_change for _, func, _ in connection.run_on_commit):
        transaction.on_commit(_after_ban_change)


def _after_ban_change() -> None:
    bump_version()
    try:
        sync_waf_task.apply_async(retry=False)
    except Exception as exc:  # the every-minute schedule syncs anyway
        log.warning("could not queue the WAF sync: %s", type(exc).__name__)


def ban_network(
    *,
    network: str,
    reason: str = "",
    source: str = Ban.Source.MANUAL,
    actor: Any = None,
    duration: dt.timedelta | None = None,
    scope: str = Scope.ALL,
) -> Ban:
    """Ban an address or network (or extend an existing ban). Raises ValidationError.

    scope: `all` (every path but /healthz) or `collector` (the public collector only). Banning
    an address again keeps the wider of its scope and the new one: a collector ban can become an
    all ban, never the reverse (to narrow a ban, unban it and ban it again)."""
    if scope not in Scope.values:
        raise ValidationError(f"{scope!r} is not a ban scope; use one of: {', '.join(Scope.values)}.")
    normalized = normalize_network(network)
    now = timezone.now()
    expires_at = now + duration if duration else None
    with transaction.atomic():
        ban = Ban.objects.select_for_update().filter(network=normalized).first()
        if ban is None:
            ban = Ban.objects.create(
                network=normalized,
                reason=reason[:300],
                source=source,
                scope=scope,
                created_by=actor if getattr(actor, "pk", None) else None,
                created_at=now,
                expires_at=expires_at,
            )
            action = BanAudit.Action.BAN
        else:
            ban.reason = reason[:300] or ban.reason
            ban.expires_at = expires_at
            ban.scope = wider_scope(ban.scope, scope)
            ban.waf_state = Ban.WafState.PENDING
            ban.save(update_fields=["reason", "expires_at", "scope", "waf_state"])
            action = BanAudit.Action.EXTEND
        BanAudit.objects.create(
            action=action,
            network=normalized,
            reason=reason[:300],
            source=source,
            scope=ban.scope,
            actor=actor if getattr(actor, "pk", None) else None,
            expires_at=expires_at,
        )
        network_obj = ipaddress.ip_network(normalized)
        if network_obj.num_addresses == 1 and action == BanAudit.Action.BAN:
            FlaggedIP.objects.filter(ip=str(network_obj.network_address)).update(
                status=FlaggedIP.Status.BANNED, times_banned=F("times_banned") + 1
            )
        _schedule_after_change()
    log.info(
        "ban %s (%s, scope %s) by %s until %s",
        normalized,
        source,
        ban.scope,
        actor or "system",
        expires_at or "unbanned",
    )
    return ban


def unban_network(*, network: str, actor: Any = None) -> bool:
    normalized = normalize_network(network)
    with transaction.atomic():
        scope = Ban.objects.filter(network=normalized).values_list("scope", flat=True).first()
        deleted, _ = Ban.objects.filter(network=normalized).delete()
        if not deleted:
            return False
        BanAudit.objects.create(
            action=BanAudit.Action.UNBAN,
            network=normalized,
            scope=scope or "",
            actor=actor if getattr(actor, "pk", None) else None,
        )
        network_obj = ipaddress.ip_network(normalized)
        if network_obj.num_addresses == 1:
            FlaggedIP.objects.filter(ip=str(network_obj.network_address), status=FlaggedIP.Status.BANNED).update(
                status=FlaggedIP.Status.DISMISSED
            )
        _schedule_after_change()
    log.info("unban %s by %s", normalized, actor or "system")
    return True


def expire_bans() -> int:
    """Delete bans past their expiry (audited) and flags past theirs. Run every minute."""
    with transaction.atomic():
        expired = list(Ban.objects.expired().select_for_update())
        for ban in expired:
            BanAudit.objects.create(
                action=BanAudit.Action.EXPIRE, network=ban.network, source=ban.source, scope=ban.scope
            )
        Ban.objects.filter(pk__in=[ban.pk for ban in expired]).delete()
        single = [ban.network.split("/")[0] for ban in expired if ban.network.endswith(("/32", "/128"))]
        # Served its time: back under watch with a clean slate, so a return is banned again
        # (for longer: times_banned is kept).
        FlaggedIP.objects.filter(ip__in=single, status=FlaggedIP.Status.BANNED).update(
            status=FlaggedIP.Status.OPEN, reasons={}, score=0
        )
        FlaggedIP.objects.filter(expires_at__lte=timezone.now()).exclude(status=FlaggedIP.Status.BANNED).delete()
        if expired:
            _schedule_after_change()
    return len(expired)


def dismiss_flags(*, ips: list[str]) -> int:
    return FlaggedIP.objects.filter(ip__in=ips).update(status=FlaggedIP.Status.DISMISSED)

"""Security tables. The one place an IP address may be stored: an operator must see an
offending address to act on it, and every row here has an expiry."""

from __future__ import annotations

import ipaddress

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone

# Narrowest networks we refuse to ban in one rule: a /0 (or anything that wide) is a mistake.
MIN_PREFIX = {4: 8, 6: 16}


def normalize_network(value: str) -> str:
    """'198.51.100.7' -> '198.51.100.7/32'; host bits cleared; garbage and /0 refused."""
    text = (value or "").strip()
    if not text:
        raise ValidationError("Give an IPv4/IPv6 address or network.")
    try:
        network = ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise ValidationError(f"{text!r} is not an IPv4/IPv6 address or network.") from None
    if isinstance(network, ipaddress.IPv6Network) and network.network_address.ipv4_mapped:
        mapped = network.network_address.ipv4_mapped
        network = ipaddress.ip_network(f"{mapped}/{max(0, network.prefixlen - 96)}", strict=False)
    if network.prefixlen < MIN_PREFIX[network.version]:
        raise ValidationError(
            f"/{network.prefixlen} is too wide to ban; the widest allowed is /{MIN_PREFIX[network.version]}."
        )
    return str(network)


class BanQuerySet(models.QuerySet):
    def active(self) -> BanQuerySet:
        now = timezone.now()
        return self.filter(models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now))

    def expired(self) -> BanQuerySet:
        return self.filter(expires_at__lte=timezone.now())


class Scope(models.TextChoices):
    """Where a ban applies. Wider scopes come later in WIDTH."""

    COLLECTOR = "collector", "collector only (/api/event, /script.js)"
    ALL = "all", "everything but /healthz"


# Re-banning keeps the wider of the two scopes: a ban is never narrowed as a side effect.
WIDTH = {Scope.COLLECTOR: 0, Scope.ALL: 1}


def wider_scope(a: str, b: str) -> str:
    return a if WIDTH.get(a, 1) >= WIDTH.get(b, 1) else b


class Ban(models.Model):
    Scope = Scope

    class Source(models.TextChoices):
        MANUAL = "manual"
        AUTO = "auto"

    class WafState(models.TextChoices):
        PENDING = "pending"
        SYNCED = "synced"
        FAILED = "failed"
        SKIPPED = "skipped", "skipped (WAF not configured or over the cap)"

    network = models.CharField(max_length=49, unique=True, help_text="Address or CIDR, e.g. 203.0.113.0/24")
    version = models.PositiveSmallIntegerField(editable=False)
    reason = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.MANUAL)
    scope = models.CharField(
        max_length=10,
        choices=Scope.choices,
        default=Scope.ALL,
        help_text="collector: only the public collector is closed to it; all: every page but /healthz.",
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True, help_text="Empty: until unbanned.")
    waf_state = models.CharField(max_length=10, choices=WafState.choices, default=WafState.PENDING)
    waf_synced_at = models.DateTimeField(null=True, blank=True)
    waf_message = models.CharField(max_length=300, blank=True)

    objects = BanQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["expires_at"], name="ban_expires")]

    def __str__(self) -> str:
        return self.network

    def save(self, *args, **kwargs) -> None:
        self.network = normalize_network(self.network)
        self.version = ipaddress.ip_network(self.network).version
        super().save(*args, **kwargs)

    def clean(self) -> None:
        self.network = normalize_network(self.network)

    @property
    def is_active(self) -> bool:
        return self.expires_at is None or self.expires_at > timezone.now()


class BanAudit(models.Model):
    class Action(models.TextChoices):
        BAN = "ban"
        UNBAN = "unban"
        EXPIRE = "expire"
        EXTEND = "extend"

    action = models.CharField(max_length=10, choices=Action.choices)
    network = models.CharField(max_length=49)
    reason = models.CharField(max_length=300, blank=True)
    source = models.CharField(max_length=10, blank=True)
    scope = models.CharField(max_length=10, blank=True, help_text="the ban's scope after this change")
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL)
    expires_at = models.DateTimeField(null=True, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-at"]

    def __str__(self) -> str:
        return f"{self.action} {self.network}"


class FlaggedIPQuerySet(models.QuerySet):
    def open(self) -> FlaggedIPQuerySet:
        return self.filter(status=FlaggedIP.Status.OPEN)


class FlaggedIP(models.Model):
    """An address that tripped a detector. Ordinary traffic never gets a row."""

    class Status(models.TextChoices):
        OPEN = "open"
        DISMISSED = "dismissed"
        BANNED = "banned"

    ip = models.CharField(max_length=45, unique=True)
    reasons = models.JSONField(default=dict, help_text="reason code -> count")
    sites = models.JSONField(default=list, help_text="public ids of sites it touched (up to 50)")
    first_seen = models.DateTimeField(default=timezone.now)
    last_seen = models.DateTimeField(default=timezone.now)
    score = models.IntegerField(default=0)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.OPEN)
    times_banned = models.PositiveIntegerField(default=0)
    expires_at = models.DateTimeField(help_text="Deleted after this unless banned again.")

    objects = FlaggedIPQuerySet.as_manager()

    class Meta:
        ordering = ["-score", "-last_seen"]
        verbose_name = "flagged IP"
        indexes = [models.Index(fields=["status", "score"], name="flag_status_score")]

    def __str__(self) -> str:
        return self.ip

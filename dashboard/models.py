from __future__ import annotations

import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# No 0/O/1/l/I: ids are read aloud and typed from screenshots.
_ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"


def new_public_id() -> str:
    return "".join(secrets.choice(_ID_ALPHABET) for _ in range(8))


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"{value!r} is not a known time zone.")


def normalize_domain(value: str) -> str:
    value = value.strip().lower()
    for prefix in ("https://", "http://"):
        if value.startswith(prefix):
            value = value[len(prefix) :]
    value = value.split("/", 1)[0]
    if value.startswith("www."):
        value = value[4:]
    return value


class Site(models.Model):
    public_id = models.CharField(max_length=8, unique=True, default=new_public_id, editable=False)
    domain = models.CharField(max_length=253, unique=True, help_text="e.g. example.com, without www.")
    name = models.CharField(max_length=200, blank=True)
    timezone = models.CharField(max_length=64, default="UTC", validators=[validate_timezone])
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="owned_sites"
    )
    allowed_hostnames = models.TextField(
        blank=True,
        help_text="Extra hostnames allowed to send hits, one per line. "
        "The domain and its subdomains are always allowed. '*' allows any.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self) -> str:
        return self.name or self.domain

    def save(self, *args, **kwargs) -> None:
        self.domain = normalize_domain(self.domain)
        super().save(*args, **kwargs)

    @property
    def tz(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)

    def hostname_list(self) -> list[str]:
        return [line.strip().lower() for line in self.allowed_hostnames.splitlines() if line.strip()]


class ApiKey(models.Model):
    """A Stats API key. Only the SHA-256 of the secret is stored; the secret is shown once."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=100)
    prefix = models.CharField(max_length=8, editable=False, help_text="First characters of the key, to recognise it.")
    key_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class Role(models.TextChoices):
    """What a teammate may do on a site. The owner (Site.owner) can do everything, including delete."""

    VIEWER = "viewer", "Read-only"
    ADMIN = "admin", "Admin"


class Membership(models.Model):
    """A teammate on a site. The owner is Site.owner and has no Membership row."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="memberships")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "user"], name="membership_site_user")]
        ordering = ["site", "user"]

    def __str__(self) -> str:
        return f"{self.user} on {self.site} ({self.role})"


class Invitation(models.Model):
    """An emailed invitation to join a site. Only the SHA-256 of the token is stored."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="invitations")
    email = models.EmailField()
    role = models.CharField(max_length=10, choices=Role.choices, default=Role.VIEWER)
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    invited_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    expires_at = models.DateTimeField()
    accepted_at = models.DateTimeField(null=True, blank=True)
    accepted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.email} to {self.site} ({self.role})"


class SharedLink(models.Model):
    """A read-only public dashboard at /share/<token>/, optionally behind a password; revocable."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="shared_links")
    name = models.CharField(max_length=100, default="Shared link")
    token = models.CharField(max_length=43, unique=True, editable=False)
    password_hash = models.CharField(max_length=128, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} for {self.site}"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    @property
    def has_password(self) -> bool:
        return bool(self.password_hash)


class ReportFrequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class ReportSubscription(models.Model):
    """An opted-in email report for one person (owner or teammate) on one site."""

    site = models.ForeignKey(Site, on_delete=models.CASCADE, related_name="report_subscriptions")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="report_subscriptions")
    frequency = models.CharField(max_length=10, choices=ReportFrequency.choices)
    last_sent_at = models.DateTimeField(null=True, blank=True)
    last_period_end = models.DateField(null=True, blank=True, help_text="Last day covered by the last report sent.")

    class Meta:
        constraints = [models.UniqueConstraint(fields=["site", "user", "frequency"], name="report_site_user_frequency")]

    def __str__(self) -> str:
        return f"{self.frequency} report of {self.site} to {self.user}"

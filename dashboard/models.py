"""The read side's own tables: API keys, teammates, invitations, shared links, email reports.
The Site they hang on lives in sites/."""

from __future__ import annotations

from django.conf import settings
from django.db import models

from sites.models import Site


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

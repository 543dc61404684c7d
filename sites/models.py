"""The Site: one tracked domain, its public id, time zone and allowed hostnames.

Its own app because both sides need it: the collector (write side) looks sites up on every
hit, the dashboard (read side) shows them to their owners and teammates. The table keeps its
first name, dashboard_site (the model moved here from dashboard without a table change).
"""

from __future__ import annotations

import re
import secrets
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

# No 0/O/1/l/I: ids are read aloud and typed from screenshots.
ID_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
ID_LENGTH = 8
# What a public id can look like: the collector refuses anything else before any lookup.
PUBLIC_ID = re.compile(f"^[{ID_ALPHABET}]{{{ID_LENGTH}}}$")


def new_public_id() -> str:
    return "".join(secrets.choice(ID_ALPHABET) for _ in range(ID_LENGTH))


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
        db_table = "dashboard_site"
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

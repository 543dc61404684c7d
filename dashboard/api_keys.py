"""Stats API keys: create, revoke, look up, note use.

A key is `fk_` + 40 URL-safe random characters (240 bits). Only its SHA-256 is stored, so a
leaked database does not leak usable keys; the plaintext is shown once, when created. A plain
(unsalted) hash is enough for a random secret this long and lets a request find its key with
one indexed lookup.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from typing import Any

from django.utils import timezone

from dashboard.models import ApiKey

KEY_PREFIX = "fk_"
SHOWN_CHARS = 8  # the start of the key kept in clear, so a user can tell their keys apart
# last_used_at is for people ("used 3 minutes ago"); one write a minute per key is plenty.
TOUCH_EVERY = dt.timedelta(minutes=1)


def hash_key(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode()).hexdigest()


def apikey_create(*, user: Any, name: str) -> tuple[ApiKey, str]:
    """A new key for the user: (the row, the plaintext key to show once)."""
    plaintext = KEY_PREFIX + secrets.token_urlsafe(30)  # 30 bytes -> 40 characters
    key = ApiKey.objects.create(
        user=user, name=name.strip()[:100] or "API key", prefix=plaintext[:SHOWN_CHARS], key_hash=hash_key(plaintext)
    )
    return key, plaintext


def apikey_revoke(*, key: ApiKey) -> ApiKey:
    """Revoke a key for good (idempotent: the first revocation time is kept)."""
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        ApiKey.objects.filter(pk=key.pk, revoked_at__isnull=True).update(revoked_at=key.revoked_at)
    return key


def apikey_find(plaintext: str) -> ApiKey | None:
    """The key (revoked or not) with this plaintext, with its user, or None."""
    if not plaintext or len(plaintext) > 200:
        return None
    return ApiKey.objects.select_related("user").filter(key_hash=hash_key(plaintext)).first()


def apikey_touch(*, key: ApiKey, now: dt.datetime | None = None) -> None:
    """Record that the key was used, at most once a minute (a busy key must not write every request)."""
    now = now or timezone.now()
    if key.last_used_at is not None and now - key.last_used_at < TOUCH_EVERY:
        return
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=now)
    key.last_used_at = now

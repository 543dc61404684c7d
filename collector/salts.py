"""Daily salts: what makes a visitor hash unlinkable across days.

The salt of UTC day D is created on D, used as the current salt during D, kept as the
previous salt during D+1 (so a visit that crosses midnight goes on), and deleted from D+2.
Once deleted, nobody, the operator included, can recompute a hash from an IP and UA.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import secrets
import time

from django.core.cache import cache
from django.db import IntegrityError

from collector.models import Salt

log = logging.getLogger(__name__)

_LOCAL: dict[dt.date, tuple[float, tuple[bytes, bytes | None]]] = {}
_LOCAL_TTL = 60.0


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _salt_for(day: dt.date, create: bool) -> str | None:
    salt = Salt.objects.filter(day=day).values_list("value", flat=True).first()
    if salt is None and create:
        try:
            salt = Salt.objects.create(day=day, value=secrets.token_hex(32)).value
        except IntegrityError:  # another process created it first
            salt = Salt.objects.get(day=day).value
    return salt


def _read(today: dt.date) -> tuple[str, str | None]:
    return _salt_for(today, create=True), _salt_for(today - dt.timedelta(days=1), create=False)


def current_salts(today: dt.date | None = None) -> tuple[bytes, bytes | None]:
    """(today's salt, yesterday's salt or None). Cached: no SQL on a warm call."""
    today = today or utc_today()
    now = time.monotonic()
    local = _LOCAL.get(today)
    if local is not None and local[0] > now:
        return local[1]
    key = f"salts:{today.isoformat()}"
    try:
        cached = cache.get(key)
    except Exception as exc:  # cache down: read the database, remember locally
        log.warning("salt cache unavailable: %s", type(exc).__name__)
        cached = _read(today)
    if cached is None:
        cached = _read(today)
        try:
            cache.set(key, cached, 3600)
        except Exception as exc:
            log.warning("salt cache unavailable: %s", type(exc).__name__)
    salts = (bytes.fromhex(cached[0]), bytes.fromhex(cached[1]) if cached[1] else None)
    _LOCAL.clear()
    _LOCAL[today] = (now + _LOCAL_TTL, salts)
    return salts


def visitor_hash(salt: bytes, site_id: int, ip: str, user_agent: str) -> int:
    """A keyed 64-bit hash (BLAKE2b with the salt as key) of site + IP + UA, as a signed int."""
    digest = hashlib.blake2b(f"{site_id}|{ip}|{user_agent}".encode(), key=salt, digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


def rotate_salts(today: dt.date | None = None) -> tuple[bool, int]:
    """Make sure today's salt exists and delete those older than yesterday's.

    Returns (created today's salt, number deleted).
    """
    today = today or utc_today()
    created = not Salt.objects.filter(day=today).exists()
    _salt_for(today, create=True)
    deleted, _ = Salt.objects.filter(day__lt=today - dt.timedelta(days=1)).delete()
    cache.delete_many([f"salts:{today.isoformat()}", f"salts:{(today - dt.timedelta(days=1)).isoformat()}"])
    _LOCAL.clear()
    return created, deleted

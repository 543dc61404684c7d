"""The ban list as the request path sees it: an in-process snapshot, no SQL.

The database is the truth. Each change bumps a version key in the shared cache; a process
looks at that key at most once a second and reloads the snapshot when it moved. A lookup is
a set probe per distinct prefix length in the list, so ten thousand bans cost the same as ten.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import logging
import threading
import time
import uuid

from django.core.cache import cache
from django.utils import timezone

log = logging.getLogger(__name__)

VERSION_KEY = "bans:version"
CHECK_EVERY = 1.0  # seconds between looks at the version key


class BanSnapshot:
    def __init__(self, rows: list[tuple[str, dt.datetime | None]]) -> None:
        # (version, prefix length) -> {network as int: expiry or None}
        self.tables: dict[tuple[int, int], dict[int, dt.datetime | None]] = {}
        for network_text, expires_at in rows:
            network = ipaddress.ip_network(network_text)
            table = self.tables.setdefault((network.version, network.prefixlen), {})
            table[int(network.network_address)] = expires_at
        self.prefixes = {
            4: sorted((p for v, p in self.tables if v == 4), reverse=True),
            6: sorted((p for v, p in self.tables if v == 6), reverse=True),
        }
        self.size = len(rows)
        self.rows = rows

    def networks(self, now: dt.datetime | None = None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        moment = now or timezone.now()
        return [
            ipaddress.ip_network(text) for text, expires_at in self.rows if expires_at is None or expires_at > moment
        ]

    def is_banned(self, ip: str, now: dt.datetime | None = None) -> bool:
        if not self.size:
            return False
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return False
        bits = address.max_prefixlen
        value = int(address)
        for prefix in self.prefixes[address.version]:
            key = value >> (bits - prefix) << (bits - prefix)
            table = self.tables[(address.version, prefix)]
            if key in table:
                expires_at = table[key]
                if expires_at is None or expires_at > (now or timezone.now()):
                    return True
        return False


class _State:
    snapshot: BanSnapshot | None = None
    version: str | None = None
    checked_at = 0.0
    lock = threading.Lock()


def _load() -> BanSnapshot:
    from security.models import Ban

    return BanSnapshot(list(Ban.objects.active().values_list("network", "expires_at")))


def current_snapshot() -> BanSnapshot:
    now = time.monotonic()
    if _State.snapshot is not None and now - _State.checked_at < CHECK_EVERY:
        return _State.snapshot
    with _State.lock:
        if _State.snapshot is not None and now - _State.checked_at < CHECK_EVERY:
            return _State.snapshot
        try:
            version = cache.get(VERSION_KEY)
        except Exception as exc:  # cache down: keep serving the snapshot we have
            log.warning("ban version check failed: %s", type(exc).__name__)
            version = _State.version
        if _State.snapshot is None or version != _State.version:
            try:
                _State.snapshot = _load()
                _State.version = version
            except Exception as exc:  # database down on a cold start: serve, and retry in a second
                log.error("ban list unavailable: %s", type(exc).__name__)
                _State.snapshot = _State.snapshot or BanSnapshot([])
                _State.version = "<load failed>"  # never equal to a real version: retry next time
        _State.checked_at = now
        return _State.snapshot


def is_banned(ip: str) -> bool:
    return current_snapshot().is_banned(ip)


def bump_version() -> None:
    """Tell every process to reload its snapshot (call after a ban change commits)."""
    try:
        cache.set(VERSION_KEY, uuid.uuid4().hex, None)
    except Exception as exc:
        log.warning("could not bump the ban version: %s", type(exc).__name__)
    forget_snapshot()


def forget_snapshot() -> None:
    _State.snapshot = None
    _State.version = None
    _State.checked_at = 0.0

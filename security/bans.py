"""The ban list as the request path sees it: an in-process snapshot, no SQL.

The database is the truth. Each change bumps a version key in the shared cache; a process
looks at that key at most once a second and reloads the snapshot when it moved. A lookup is
a set probe per distinct prefix length in the list, so ten thousand bans cost the same as ten.

A cache that is not shared between processes (the local-memory cache of local runs) cannot
carry the version to another process, so there the version is also a small file
(BAN_VERSION_FILE): a bump replaces it atomically, and the once-a-second look also stats it.

Each ban has a scope: `all` closes every path but /healthz, `collector` only the public
collector (COLLECTOR_PATHS). The snapshot keeps the scope of each entry, so the answer for a
path costs the same probes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import ipaddress
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.cache import cache, caches
from django.core.cache.backends.dummy import DummyCache
from django.core.cache.backends.locmem import LocMemCache
from django.utils import timezone

from security.models import Ban, Scope

log = logging.getLogger(__name__)

VERSION_KEY = "bans:version"
CHECK_EVERY = 1.0  # seconds between looks at the version key (and the version file)

# The two scopes as plain strings, compared on every request.
ALL = Scope.ALL.value
COLLECTOR = Scope.COLLECTOR.value
HEALTH_PATH = "/healthz"  # load balancer probes: never banned, never any I/O
# The public collector: what a `collector` ban closes (every method: POST, the GET pixel, OPTIONS).
COLLECTOR_PATHS = frozenset({"/api/event", "/script.js"})

Row = tuple[str, dt.datetime | None] | tuple[str, dt.datetime | None, str]


class BanSnapshot:
    def __init__(self, rows: Iterable[Row]) -> None:
        rows = [(row[0], row[1], row[2] if len(row) > 2 else ALL) for row in rows]  # type: ignore[misc]
        # (version, prefix length) -> {network as int: (expiry or None, closes every path)}
        self.tables: dict[tuple[int, int], dict[int, tuple[dt.datetime | None, bool]]] = {}
        for network_text, expires_at, scope in rows:
            network = ipaddress.ip_network(network_text)
            table = self.tables.setdefault((network.version, network.prefixlen), {})
            table[int(network.network_address)] = (expires_at, scope != COLLECTOR)
        self.prefixes = {
            4: sorted((p for v, p in self.tables if v == 4), reverse=True),
            6: sorted((p for v, p in self.tables if v == 6), reverse=True),
        }
        self.size = len(rows)
        self.rows = rows

    def networks(self, now: dt.datetime | None = None) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Every active banned network, whatever its scope (the worker drops queued hits for both)."""
        moment = now or timezone.now()
        return [
            ipaddress.ip_network(text) for text, expires_at, _ in self.rows if expires_at is None or expires_at > moment
        ]

    def scope_of(self, ip: str, now: dt.datetime | None = None) -> str | None:
        """The widest scope of the active bans covering this address, or None."""
        if not self.size:
            return None
        try:
            address = ipaddress.ip_address(ip)
        except ValueError:
            return None
        bits = address.max_prefixlen
        value = int(address)
        found = None
        for prefix in self.prefixes[address.version]:
            key = value >> (bits - prefix) << (bits - prefix)
            entry = self.tables[(address.version, prefix)].get(key)
            if entry is not None:
                expires_at, closes_all = entry
                if expires_at is None or expires_at > (now or timezone.now()):
                    if closes_all:
                        return ALL
                    found = COLLECTOR  # a wider network may still close everything: keep looking
        return found

    def is_banned(self, ip: str, now: dt.datetime | None = None) -> bool:
        """Banned from somewhere (either scope)."""
        return self.scope_of(ip, now) is not None

    def blocks(self, ip: str, path: str, now: dt.datetime | None = None) -> bool:
        """Whether a request from `ip` to `path` gets the bare 403."""
        if path == HEALTH_PATH:
            return False
        scope = self.scope_of(ip, now)
        return scope == ALL or (scope == COLLECTOR and path in COLLECTOR_PATHS)


class _State:
    snapshot: BanSnapshot | None = None
    version: Any = None
    checked_at = 0.0
    lock = threading.Lock()


def _load() -> BanSnapshot:
    return BanSnapshot(list(Ban.objects.active().values_list("network", "expires_at", "scope")))


# ---- the version ------------------------------------------------------------------------------


def cache_is_local() -> bool:
    """A cache other processes cannot see: the version must also go through the file."""
    return isinstance(caches["default"], LocMemCache | DummyCache)


def version_file() -> Path | None:
    path = getattr(settings, "BAN_VERSION_FILE", "")
    return Path(path) if path else None


def _file_version() -> tuple[int, int, int] | None:
    """The version file's identity: a bump replaces the file, so its inode and mtime change."""
    path = version_file()
    if path is None:
        return None
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None  # no ban change yet
    except OSError as exc:
        log.warning("ban version file unreadable: %s", type(exc).__name__)
        return None
    return (stat.st_ino, stat.st_mtime_ns, stat.st_size)


def _write_version_file(token: str) -> None:
    """Replace the file atomically: a reader sees the old file or the new one, never half of one."""
    path = version_file()
    if path is None:
        return
    temporary = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
        with os.fdopen(fd, "w") as handle:
            handle.write(token)
        os.replace(temporary, path)
        temporary = None
    except OSError as exc:
        log.warning("could not write the ban version file: %s", type(exc).__name__)
    finally:
        if temporary is not None:
            with contextlib.suppress(OSError):
                os.unlink(temporary)


def _current_version() -> Any:
    shared = cache.get(VERSION_KEY)
    if cache_is_local():
        return (shared, _file_version())
    return shared


def current_snapshot() -> BanSnapshot:
    now = time.monotonic()
    if _State.snapshot is not None and now - _State.checked_at < CHECK_EVERY:
        return _State.snapshot
    with _State.lock:
        if _State.snapshot is not None and now - _State.checked_at < CHECK_EVERY:
            return _State.snapshot
        try:
            version = _current_version()
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
    """Banned from somewhere (either scope)."""
    return current_snapshot().is_banned(ip)


def blocks(ip: str, path: str) -> bool:
    """The middleware's question: does this request get the bare 403? /healthz never looks."""
    if path == HEALTH_PATH:
        return False
    return current_snapshot().blocks(ip, path)


def bump_version() -> None:
    """Tell every process to reload its snapshot (call after a ban change commits)."""
    token = uuid.uuid4().hex
    try:
        cache.set(VERSION_KEY, token, None)
    except Exception as exc:
        log.warning("could not bump the ban version: %s", type(exc).__name__)
    if cache_is_local():
        _write_version_file(token)
    forget_snapshot()


def forget_snapshot() -> None:
    _State.snapshot = None
    _State.version = None
    _State.checked_at = 0.0

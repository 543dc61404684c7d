"""Site lookups, cached so that a warm collector request runs no SQL.

Two layers: a small in-process dict (no network at all) in front of the shared cache
(Redis in production). Unknown ids and domains are cached too, for a shorter time, so a
flood of hits for a made-up site cannot reach the database.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from django.conf import settings
from django.core.cache import cache

from sites.models import Site

log = logging.getLogger(__name__)

_LOCAL: dict[str, tuple[float, SiteInfo | None]] = {}
_LOCAL_TTL = 30.0
_LOCAL_MISS_TTL = 5.0
_LOCAL_MAX = 10_000
_MISSING = "missing"


@dataclass(frozen=True)
class SiteInfo:
    id: int
    public_id: str
    domain: str
    timezone: str
    hostnames: tuple[str, ...]

    def allows_hostname(self, hostname: str) -> bool:
        if hostname == self.domain or hostname.endswith("." + self.domain):
            return True
        return "*" in self.hostnames or hostname in self.hostnames


def _key(kind: str, value: str) -> str:
    return f"site:{kind}:{value}"


def _load(kind: str, value: str) -> SiteInfo | None:
    lookup = {"public_id": value} if kind == "id" else {"domain": value}
    site = Site.objects.filter(**lookup).first()
    if site is None:
        return None
    return SiteInfo(site.id, site.public_id, site.domain, site.timezone, tuple(site.hostname_list()))


def get_site(kind: str, value: str) -> SiteInfo | None:
    """Find a site by public id (kind="id") or by domain (kind="domain")."""
    key = _key(kind, value)
    now = time.monotonic()
    local = _LOCAL.get(key)
    if local is not None and local[0] > now:
        return local[1]
    try:
        cached = cache.get(key)
    except Exception as exc:  # cache down: the database answers, and this process remembers
        log.warning("site cache unavailable: %s", type(exc).__name__)
        cached, cache_ok = None, False
    else:
        cache_ok = True
    if cached is None:
        info = _load(kind, value)
        timeout = settings.COLLECTOR_SITE_CACHE_SECONDS if info else 60
        if cache_ok:
            cache.set(key, info if info else _MISSING, timeout)
    else:
        info = None if cached == _MISSING else cached
    if len(_LOCAL) >= _LOCAL_MAX:
        _LOCAL.clear()
    _LOCAL[key] = (now + (_LOCAL_TTL if info else _LOCAL_MISS_TTL), info)
    return info


def forget_site(site: Site) -> None:
    """Drop a site's cache entries after it changed (other processes' local copies expire in 30 s)."""
    keys = [_key("id", site.public_id), _key("domain", site.domain)]
    try:
        cache.delete_many(keys)
    except Exception as exc:
        log.warning("site cache unavailable, entries expire by themselves: %s", type(exc).__name__)
    for key in keys:
        _LOCAL.pop(key, None)


def clear_local_cache() -> None:
    _LOCAL.clear()

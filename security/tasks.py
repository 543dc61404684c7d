from __future__ import annotations

import contextlib
from typing import Any

from celery import shared_task
from django.core.cache import cache

LOCK_KEY = "waf-sync-lock"


@shared_task(bind=True, ignore_result=True, max_retries=3)
def sync_waf_task(self: Any) -> dict[str, Any]:
    """Make the WAF IP sets equal the active bans (queued after each ban change, and every minute).

    One sync at a time: two overlapping syncs could write each other's stale reads back.
    A sync that finds the lock taken asks to run again shortly instead.
    """
    from security.waf import sync_waf

    try:
        acquired = cache.add(LOCK_KEY, 1, 120)
    except Exception:  # no cache: run unlocked rather than not at all
        acquired = True
    if not acquired:
        if not self.request.is_eager:
            raise self.retry(countdown=5)
        return {"skipped": "another sync is running"}
    try:
        return sync_waf().as_dict()
    finally:
        with contextlib.suppress(Exception):  # the lock expires by itself
            cache.delete(LOCK_KEY)


@shared_task(ignore_result=True)
def expire_bans_task() -> int:
    from security.services import expire_bans

    return expire_bans()

"""The WAF sync task: queued by services after every ban change, and every minute by the schedule.

Its own module, below services.py (which queues it) and apart from tasks.py (whose tasks call
services), so that the two do not import each other. Its name stays `security.tasks.sync_waf_task`:
the schedule, the queue routes and messages already queued carry that name.
"""

from __future__ import annotations

import contextlib
from typing import Any

from celery import shared_task
from django.core.cache import cache

LOCK_KEY = "waf-sync-lock"


@shared_task(name="security.tasks.sync_waf_task", bind=True, ignore_result=True, max_retries=3)
def sync_waf_task(self: Any) -> dict[str, Any]:
    """Make the WAF IP sets equal the active bans (queued after each ban change, and every minute).

    One sync at a time: two overlapping syncs could write each other's stale reads back.
    A sync that finds the lock taken asks to run again shortly instead.
    """
    # Imported here, not at the top: security.waf loads boto3 (about half a second), and this
    # module is imported by every web process (services.py), where no sync ever runs.
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

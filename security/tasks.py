"""Celery tasks of the security app. The WAF sync task is in waf_sync.py: services.py queues it,
and the task here calls services.py, so the two modules would otherwise import each other."""

from __future__ import annotations

from celery import shared_task

import security.waf_sync  # noqa: F401  (workers' autodiscovery imports tasks.py only: registers sync_waf_task)
from security.services import expire_bans


@shared_task(ignore_result=True)
def expire_bans_task() -> int:
    return expire_bans()

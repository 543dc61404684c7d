from __future__ import annotations

from typing import Any

from celery import shared_task


@shared_task(bind=True, ignore_result=True, max_retries=3)
def sync_waf_task(self: Any) -> dict[str, Any]:
    """Make the WAF IP sets equal the active bans (queued after each ban change, and every minute)."""
    from security.waf import sync_waf

    return sync_waf().as_dict()

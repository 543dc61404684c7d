from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from security.waf import sync_waf


class Command(BaseCommand):
    help = "Make the AWS WAF IP sets (WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN) equal to the active bans."

    def handle(self, *args: Any, **options: Any) -> None:
        result = sync_waf()
        for line in result.summary_lines():
            self.stdout.write(line)
        if any(result.over_cap.values()):
            self.stderr.write(
                "warning: some bans are over the WAF cap (WAF_MAX_ADDRESSES) and are not blocked by the WAF"
            )
        if result.failed:
            raise CommandError(f"WAF sync failed: {result.error}")

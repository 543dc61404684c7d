from __future__ import annotations

import json
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from security.waf import COLLECTOR_ARN_SETTING, ConfigError, collector_rule, sync_waf


class Command(BaseCommand):
    help = (
        "Make the AWS WAF IP sets equal to the active bans: WAF_IPSET_V4_ARN / WAF_IPSET_V6_ARN hold the bans "
        "of scope all, WAF_COLLECTOR_IPSET_V4_ARN / WAF_COLLECTOR_IPSET_V6_ARN (optional) those of scope collector."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--collector-rule",
            action="store_true",
            help="print the web ACL rule (JSON) that blocks the collector IP sets on the collector paths, and stop",
        )

    def handle(self, *args: Any, collector_rule: bool = False, **options: Any) -> None:
        if collector_rule:
            self._print_collector_rule()
            return
        result = sync_waf()
        for line in result.summary_lines():
            self.stdout.write(line)
        if any(result.over_cap.values()):
            self.stderr.write(
                "warning: some bans are over the WAF cap (WAF_MAX_ADDRESSES) and are not blocked by the WAF"
            )
        if result.failed:
            raise CommandError(f"WAF sync failed: {result.error}")

    def _print_collector_rule(self) -> None:
        arns = [getattr(settings, name, "") or "" for name in COLLECTOR_ARN_SETTING.values()]
        try:
            rule = collector_rule(arns)
        except ConfigError as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(json.dumps(rule, indent=2))

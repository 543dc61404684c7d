from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard import reports
from dashboard.selectors.periods import parse_date


class Command(BaseCommand):
    help = (
        "Email the weekly / monthly reports whose period has ended and not been sent yet. "
        "Safe to run as often as you like (the scheduler runs it hourly): nobody gets a report twice."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--frequency",
            choices=reports.FREQUENCIES,
            default=reports.DUE,
            help="weekly, monthly, or due (both; the default).",
        )
        parser.add_argument(
            "--as-of",
            dest="as_of",
            help="YYYY-MM-DD: act as if this were today in every site's time zone "
            "(default: now, in each site's time zone).",
        )
        parser.add_argument("--dry-run", action="store_true", help="List what would be sent; send and record nothing.")

    def handle(self, *args: Any, frequency: str, as_of: str | None, dry_run: bool, **options: Any) -> None:
        today: dt.date | None = None
        if as_of:
            try:
                today = parse_date(as_of)
            except ValueError as exc:
                raise CommandError(str(exc))
        summary = reports.send_reports(frequency, today=today, dry_run=dry_run)
        verbosity = options.get("verbosity", 1)
        for line in summary.lines:
            if verbosity > 1 or dry_run or line.startswith("FAILED"):
                self.stdout.write(line)
        if dry_run:
            self.stdout.write(f"dry run: would send {summary.sent}, skipped {summary.skipped}, failed {summary.failed}")
        else:
            self.stdout.write(str(summary))
        if summary.failed:
            raise CommandError(f"{summary.failed} report(s) failed; see the log. They are retried on the next run.")

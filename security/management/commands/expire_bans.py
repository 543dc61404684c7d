from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from security.services import expire_bans


class Command(BaseCommand):
    help = "Delete bans and flags past their expiry (the scheduler runs it every minute)."

    def handle(self, *args: Any, **options: Any) -> None:
        self.stdout.write(f"{expire_bans()} ban(s) expired")

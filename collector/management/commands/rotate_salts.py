from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from collector.salts import rotate_salts


class Command(BaseCommand):
    help = "Create today's visitor salt and delete salts older than yesterday's (run daily)."

    def handle(self, *args: Any, **options: Any) -> None:
        created, deleted = rotate_salts()
        self.stdout.write(f"today's salt {'created' if created else 'present'}; {deleted} old salt(s) deleted")

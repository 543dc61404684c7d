from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from security.services import unban_network


class Command(BaseCommand):
    help = "Lift the ban on an IP address or network."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("network")

    def handle(self, *args: Any, network: str, **options: Any) -> None:
        try:
            removed = unban_network(network=network)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        if not removed:
            raise CommandError(f"{network} is not banned")
        self.stdout.write(f"unbanned {network}")

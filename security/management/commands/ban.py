from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser

from security.models import Scope
from security.services import ban_network, parse_duration


class Command(BaseCommand):
    help = "Ban an IP address or network (CIDR). The ban reaches every process within a second."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("network", help="e.g. 203.0.113.7 or 203.0.113.0/24 or 2001:db8::/64")
        parser.add_argument("--reason", default="")
        parser.add_argument("--for", dest="duration", default="", help="e.g. 30m, 24h, 7d; default: until unbanned")
        parser.add_argument(
            "--scope",
            choices=Scope.values,
            default=Scope.ALL,
            help="all (default): every path but /healthz; collector: only /api/event and /script.js",
        )

    def handle(self, *args: Any, network: str, reason: str, duration: str, scope: str, **options: Any) -> None:
        try:
            ban = ban_network(network=network, reason=reason, duration=parse_duration(duration), scope=scope)
        except ValidationError as exc:
            raise CommandError(" ".join(exc.messages)) from exc
        until = ban.expires_at.isoformat(timespec="seconds") if ban.expires_at else "unbanned"
        self.stdout.write(f"banned {ban.network} until {until}, scope {ban.scope}")
        if ban.scope != scope:
            self.stderr.write(f"note: {ban.network} already had a ban of scope {ban.scope}, which it keeps")

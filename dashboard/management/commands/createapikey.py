from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError, CommandParser

from dashboard.api_keys import apikey_create


class Command(BaseCommand):
    help = "Create a Stats API key for a user and print it (it is shown only this once)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("user", help="username of the key's owner")
        parser.add_argument("--name", default="API key", help="a label to recognise the key by")

    def handle(self, *args: Any, user: str, name: str, **options: Any) -> None:
        owner = get_user_model().objects.filter(username=user).first()
        if owner is None:
            raise CommandError(f"no user named {user!r}")
        _key, plaintext = apikey_create(user=owner, name=name)
        self.stdout.write(plaintext)

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.urls import reverse

from sites.models import Site, normalize_domain


class Command(BaseCommand):
    help = "Create a site and print its id (the data-site value of the snippet)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("domain")
        parser.add_argument("--timezone", default="UTC")
        parser.add_argument("--owner", help="username of the owner")
        parser.add_argument("--name", default="")

    def handle(self, *args: Any, domain: str, timezone: str, owner: str | None, name: str, **options: Any) -> None:
        user = None
        if owner:
            user = get_user_model().objects.filter(username=owner).first()
            if user is None:
                raise CommandError(f"no user named {owner!r}")
        domain = normalize_domain(domain)
        if Site.objects.filter(domain=domain).exists():
            raise CommandError(f"a site for {domain} already exists")
        site = Site(domain=domain, timezone=timezone, owner=user, name=name or domain)
        try:
            site.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from exc
        site.save()
        self.stdout.write(site.public_id)  # alone on stdout: scripts read the id from it
        if user is None:
            # Only an owner or a teammate sees a site (dashboard/access.py), staff included.
            opts = site._meta
            admin = settings.BASE_URL + reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[site.pk])
            self.stderr.write(
                f"No owner: nobody sees {site.domain} on the dashboard until it has one. Give it an owner at\n"
                f"  {admin}\n(or next time: createsite {site.domain} --owner USERNAME)",
                style_func=self.style.WARNING,
            )

"""What the owner-facing pages change: sites, teammates, invitations, shared links, report
subscriptions. Views stay thin: they check access (dashboard.access), call one function here and
show the result. Functions raise django.core.exceptions.ValidationError for input a person can fix.

Secrets: an invitation token and a shared-link password are never stored in clear (only the
SHA-256 of the token, and a Django password hash); neither is ever logged.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import re
import secrets
import unicodedata
import zoneinfo
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import idna
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.core.exceptions import ValidationError
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from analytics import store as analytics_store
from collector.models import DailyBreakdown, Event, HourlyTotal, MonthlyBreakdown, Visit
from dashboard.models import Invitation, Membership, ReportFrequency, ReportSubscription, Role, SharedLink
from sites.models import Site, normalize_domain

log = logging.getLogger(__name__)

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
DELETE_BATCH = 5_000  # rows per DELETE when a site's stats go: bounded statements, bounded undo log
MAX_HOSTNAMES = 100


# -- names ------------------------------------------------------------------------------------


def _to_ascii(value: str) -> str:
    """A name as browsers put it in location.href and Origin: IDNA 2008 / UTS-46, non-transitional
    (`bücher.de` -> `xn--bcher-kva.de`, `ß.de` -> `xn--zca.de`, never `ss.de`). ValueError for a
    name that cannot be one (emoji, invalid punycode like `xn--zz`).

    Plain ASCII labels are left to is_hostname: browsers accept labels such as `r3---sn-abc`
    (the URL standard does not check hyphens), so they must not be refused here."""
    try:
        mapped = idna.uts46_remap(value, std3_rules=False, transitional=False)  # case, width, 。
        labels = [
            label
            if label.isascii() and not label.startswith("xn--")
            else idna.encode(label, uts46=True, transitional=False).decode("ascii")
            for label in mapped.split(".")
        ]
    except (idna.IDNAError, UnicodeError) as exc:
        raise ValueError(str(exc)) from exc
    return ".".join(labels)


def is_hostname(value: str, *, need_dot: bool = False) -> bool:
    if not value or len(value) > 253:
        return False
    labels = value.split(".")
    if need_dot and len(labels) < 2:
        return False
    if labels[-1].isdigit():  # an IPv4 address, or a numeric top-level domain: not a site
        return False
    return all(_LABEL.match(label) for label in labels)


def clean_domain(value: str) -> str:
    """What a person typed (`https://www.Example.com/page`) -> `example.com`, or ValidationError."""
    domain = normalize_domain(value or "")
    if ":" in domain:
        raise ValidationError("Leave out the port: enter the domain only, like example.com.")
    try:
        domain = _to_ascii(domain)
    except ValueError:
        raise ValidationError(
            "This is not a valid domain name (emoji, symbols and malformed xn-- names cannot be used). "
            "Enter a domain like example.com or bücher.de."
        )
    if not is_hostname(domain, need_dot=True):
        raise ValidationError("Enter a domain like example.com.")
    return domain


def clean_hostnames(text: str) -> str:
    """The allowed-hostnames textarea -> one lower-case hostname (or '*') per line, deduplicated.
    Every bad line is reported at once."""
    seen: list[str] = []
    errors: list[str] = []
    for raw in (text or "").splitlines():
        line = raw.strip().lower()
        if not line:
            continue
        if line != "*":
            try:
                line = _to_ascii(line)
            except ValueError:
                line = ""
            if line.startswith("www."):  # the collector drops "www." from every hit's hostname
                line = line[4:]
            if not is_hostname(line):
                if raw.strip().startswith("*."):
                    errors.append(
                        f"{raw.strip()!r}: wildcards like *.example.com are not supported. Subdomains of the "
                        "site's domain are always allowed; use '*' alone to allow any hostname."
                    )
                else:
                    errors.append(f"{raw.strip()[:100]!r} is not a hostname (one per line, like shop.example.net).")
                continue
        if line not in seen:
            seen.append(line)
    if len(seen) > MAX_HOSTNAMES:
        errors.append(f"At most {MAX_HOSTNAMES} hostnames.")
    if errors:
        raise ValidationError(errors)
    return "\n".join(seen)


# Line breaks and other control characters (C0/C1, U+2028/2029) and the bidi embedding,
# override and isolate characters: a site name is one line of plain text, in pages and in email
# subjects (a newline there is a BadHeaderError).
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
SUBJECT_NAME_MAX = 60


def _is_control(char: str) -> bool:
    return unicodedata.category(char) in ("Cc", "Zl", "Zp") or char in _BIDI_CONTROLS


def clean_site_name(value: str) -> str:
    """A site name as typed -> stripped, or ValidationError if it holds control characters."""
    value = (value or "").strip()
    if any(_is_control(char) for char in value):
        raise ValidationError(
            "The name must be a single line of text, without tabs, line breaks or control characters."
        )
    return value


def one_line(value: str, limit: int = SUBJECT_NAME_MAX) -> str:
    """Text safe for an email header: control characters and runs of spaces become one space, and
    at most `limit` characters (an ellipsis marks a cut). For names saved before they were checked."""
    text = " ".join("".join(" " if _is_control(char) else char for char in value or "").split())
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"


def timezone_choices() -> list[tuple[str, str]]:
    """UTC first, then every IANA zone by name (what zoneinfo knows; legacy aliases left out)."""
    names = sorted(
        name
        for name in zoneinfo.available_timezones()
        if "/" in name and not name.startswith(("Etc/", "SystemV/", "US/", "posix/", "right/"))
    )
    return [("UTC", "UTC"), *((name, name.replace("_", " ")) for name in names)]


# -- sites ------------------------------------------------------------------------------------


def create_site(*, owner: Any, domain: str, name: str = "", timezone_name: str = "UTC") -> Site:
    """A new site owned by `owner`. ValidationError (keyed by field) for a bad or taken domain."""
    domain = clean_domain(domain)
    if Site.objects.filter(domain=domain).exists():
        raise ValidationError({"domain": "A site with this domain already exists."})
    try:
        name = clean_site_name(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages})
    site = Site(domain=domain, name=name[:200] or domain, timezone=timezone_name, owner=owner)
    site.full_clean(exclude=["domain"])
    try:
        with transaction.atomic():
            site.save()
    except IntegrityError:  # a second request for the same domain won the race
        raise ValidationError({"domain": "A site with this domain already exists."})
    return site


def update_site(site: Site, *, name: str, timezone_name: str, allowed_hostnames: str) -> Site:
    try:
        name = clean_site_name(name)
    except ValidationError as exc:
        raise ValidationError({"name": exc.messages})
    site.name = name[:200] or site.domain
    site.timezone = timezone_name
    site.allowed_hostnames = clean_hostnames(allowed_hostnames)
    site.full_clean()
    site.save(update_fields=["name", "timezone", "allowed_hostnames"])  # sites.signals forgets the cache
    return site


def delete_site(site: Site) -> None:
    """Delete a site and everything recorded for it. The collector's tables reference the site
    without a database constraint, so their rows go first, in bounded batches (and, with the
    ClickHouse store, its events and visits there); teammates, invitations, shared links and
    report subscriptions cascade."""
    with transaction.atomic():
        for model in (Event, Visit, HourlyTotal, DailyBreakdown, MonthlyBreakdown):
            while True:
                ids = list(model.objects.filter(site_id=site.pk).values_list("pk", flat=True)[:DELETE_BATCH])
                if not ids:
                    break
                model.objects.filter(pk__in=ids).delete()
        if analytics_store.kind() == analytics_store.CLICKHOUSE:
            # Before the site row: if ClickHouse is unreachable the deletion fails as a whole
            # and can be retried, rather than leaving stats nobody can reach or delete.
            analytics_store.delete_site_rows(site.pk)
        site.delete()  # sites.signals forgets the cached site: hits on their way are dropped


# -- teammates --------------------------------------------------------------------------------


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass
class Teammates:
    owner: Any
    members: list[Membership]
    invitations: list[Invitation]


def teammates(site: Site) -> Teammates:
    return Teammates(
        owner=site.owner,
        members=list(site.memberships.select_related("user").order_by("user__username")),
        invitations=list(
            site.invitations.filter(accepted_at__isnull=True, expires_at__gt=timezone.now()).select_related(
                "invited_by"
            )
        ),
    )


def _is_on_site(site: Site, email: str) -> bool:
    users = get_user_model().objects.filter(email__iexact=email)
    if site.owner_id and users.filter(pk=site.owner_id).exists():
        return True
    return Membership.objects.filter(site=site, user__in=users).exists()


def invite(*, site: Site, email: str, role: str, invited_by: Any, accept_url: Any) -> Invitation:
    """Invite `email` to the site with `role` and email them a link. `accept_url(token)` makes the
    link's absolute URL. A pending invitation to the same address is replaced (a resend)."""
    email = get_user_model().objects.normalize_email((email or "").strip())
    if role not in Role.values:
        raise ValidationError({"role": "Choose a role."})
    if _is_on_site(site, email):
        raise ValidationError({"email": f"{email} is already on this site."})
    token = secrets.token_urlsafe(32)
    with transaction.atomic():
        site.invitations.filter(email__iexact=email, accepted_at__isnull=True).delete()
        invitation = Invitation.objects.create(
            site=site,
            email=email,
            role=role,
            token_hash=hash_token(token),
            invited_by=invited_by,
            expires_at=timezone.now() + dt.timedelta(days=settings.INVITATION_DAYS),
        )
    context = {
        "site": site,
        "invitation": invitation,
        "inviter": invited_by,
        "role_label": Role(role).label,
        "url": accept_url(token),
        "days": settings.INVITATION_DAYS,
    }
    subject = f"You are invited to {one_line(site.name) or site.domain} on Fathom"
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string("dashboard/email/invitation.txt", context),
        to=[email],
    )
    message.attach_alternative(render_to_string("dashboard/email/invitation.html", context), "text/html")
    try:
        message.send()
    except Exception as exc:  # no email, no invitation: the person can try again
        log.warning("invitation email for site %s not sent: %s", site.pk, type(exc).__name__)
        invitation.delete()
        raise ValidationError("The invitation email could not be sent. Please try again in a moment.")
    return invitation


class InvitationProblem(Exception):
    def __init__(self, reason: str, invitation: Invitation | None = None) -> None:
        super().__init__(reason)
        self.reason = reason  # "unknown", "expired" or "used"
        self.invitation = invitation


def find_invitation(*, token: str | None = None, token_hash: str | None = None) -> Invitation:
    """The pending invitation for this token (or its hash), or InvitationProblem."""
    if token is not None:
        token_hash = hash_token(token) if 0 < len(token) <= 200 else None
    invitation = (
        Invitation.objects.select_related("site", "invited_by").filter(token_hash=token_hash).first()
        if token_hash
        else None
    )
    if invitation is None:
        raise InvitationProblem("unknown")
    if invitation.accepted_at is not None:
        raise InvitationProblem("used", invitation)
    if invitation.expires_at <= timezone.now():
        raise InvitationProblem("expired", invitation)
    return invitation


def accept_invitation(invitation: Invitation, user: Any) -> str:
    """Make `user` a teammate. Returns "joined", "already_member" or "owner". A person already on
    the site keeps their role (an invitation never silently changes it). The invitation is used up."""
    with transaction.atomic():
        used = Invitation.objects.filter(pk=invitation.pk, accepted_at__isnull=True).update(
            accepted_at=timezone.now(), accepted_by=user
        )
        if not used:
            raise InvitationProblem("used", invitation)
        site = invitation.site
        if site.owner_id == user.pk:
            return "owner"
        _membership, created = Membership.objects.get_or_create(
            site=site, user=user, defaults={"role": invitation.role}
        )
    return "joined" if created else "already_member"


def cancel_invitation(invitation: Invitation) -> None:
    invitation.delete()


def change_role(membership: Membership, role: str) -> Membership:
    if role not in Role.values:
        raise ValidationError("Choose a role.")
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


def remove_member(membership: Membership) -> None:
    """Remove a teammate (or let one leave): their membership and their email reports of the site."""
    with transaction.atomic():
        ReportSubscription.objects.filter(site_id=membership.site_id, user_id=membership.user_id).delete()
        membership.delete()


# -- shared links -----------------------------------------------------------------------------


def create_shared_link(*, site: Site, name: str, password: str = "") -> SharedLink:
    return SharedLink.objects.create(
        site=site,
        name=(name or "").strip()[:100] or "Shared link",
        token=secrets.token_urlsafe(32),
        password_hash=make_password(password) if password else "",
    )


def revoke_shared_link(link: SharedLink) -> SharedLink:
    """Revoke for good (idempotent: the first revocation time is kept)."""
    if link.revoked_at is None:
        link.revoked_at = timezone.now()
        SharedLink.objects.filter(pk=link.pk, revoked_at__isnull=True).update(revoked_at=link.revoked_at)
    return link


# -- email reports ----------------------------------------------------------------------------


def report_frequencies(site: Site, user: Any) -> set[str]:
    return set(ReportSubscription.objects.filter(site=site, user=user).values_list("frequency", flat=True))


def set_report_subscriptions(*, site: Site, user: Any, frequencies: Iterable[str]) -> set[str]:
    """Opt `user` in to exactly these report frequencies for the site. Existing rows are kept (with
    their last-sent bookkeeping), missing ones created, the others deleted."""
    wanted = {f for f in frequencies if f in ReportFrequency.values}
    with transaction.atomic():
        ReportSubscription.objects.filter(site=site, user=user).exclude(frequency__in=wanted).delete()
        for frequency in wanted:
            ReportSubscription.objects.get_or_create(site=site, user=user, frequency=frequency)
    return wanted

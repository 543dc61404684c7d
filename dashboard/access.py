"""Who may do what on a site. Every page, API view and export asks here, and nowhere else.

- owner (Site.owner): everything, including deleting the site and transferring nothing else.
- admin (Membership role admin): read stats, change settings, shared links and teammates.
- viewer (Membership role viewer): read stats only.
- anyone else: nothing. Views answer 404 (never 403) so an outsider cannot even learn that a
  site id exists.

A site is found by its public id (pages, links) or, for the Stats API, also by its domain
(site_by_id, as Plausible's site_id).

Staff users get no special access to owners' stats here: they have the Django admin.
"""

from __future__ import annotations

from typing import Any

from django.db.models import Q, QuerySet
from django.http import Http404

from dashboard.models import Membership, Role
from sites.models import Site, normalize_domain

OWNER = "owner"
ADMIN = Role.ADMIN.value
VIEWER = Role.VIEWER.value
_RANK = {VIEWER: 1, ADMIN: 2, OWNER: 3}


def role_for(user: Any, site: Site) -> str | None:
    """'owner', 'admin', 'viewer' or None."""
    if user is None or not user.is_authenticated:
        return None
    if site.owner_id is not None and site.owner_id == user.pk:
        return OWNER
    return Membership.objects.filter(site=site, user_id=user.pk).values_list("role", flat=True).first()


def has_role(user: Any, site: Site, needed: str) -> bool:
    role = role_for(user, site)
    return role is not None and _RANK[role] >= _RANK[needed]


def user_can_view(user: Any, site: Site) -> bool:
    return has_role(user, site, VIEWER)


def user_can_admin(user: Any, site: Site) -> bool:
    return has_role(user, site, ADMIN)


def user_is_owner(user: Any, site: Site) -> bool:
    return has_role(user, site, OWNER)


def sites_for(user: Any) -> QuerySet[Site]:
    """The sites this user owns or is a teammate on."""
    if user is None or not user.is_authenticated:
        return Site.objects.none()
    return Site.objects.filter(Q(owner_id=user.pk) | Q(memberships__user_id=user.pk)).distinct()


def get_site_or_404(user: Any, public_id: str, needed: str = VIEWER) -> tuple[Site, str]:
    """The site with this public id and the user's role on it, or Http404 for anyone below `needed`."""
    site = Site.objects.filter(public_id=public_id).first()
    if site is None:
        raise Http404("No such site.")
    role = role_for(user, site)
    if role is None or _RANK[role] < _RANK[needed]:
        raise Http404("No such site.")
    return site, role


def site_by_id(site_id: str) -> Site | None:
    """A site by its public id or its domain (as Plausible's site_id), or None."""
    site_id = (site_id or "").strip()
    if not site_id:
        return None
    domain = normalize_domain(site_id)
    # Compared again here, exactly: MySQL's collation also matches a public id in lower case,
    # a domain in fullwidth letters, or one with a trailing NUL or a zero-width space.
    for site in Site.objects.filter(Q(public_id=site_id) | Q(domain=domain))[:2]:
        if site.public_id == site_id or site.domain == domain:
            return site
    return None

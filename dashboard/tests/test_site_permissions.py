"""Who may open or do what on the sites pages: owner, admin teammate, viewer teammate, outsider
(signed in, no role) and anonymous, for every page and action of views/sites.py.

The rule, the same everywhere (see dashboard/views/sites.py):
- anonymous -> 302 to the login page, identical whether or not the site exists;
- outsider -> 404, and the body never names the site;
- a teammate whose role is below what an action needs -> a friendly 403 page, nothing changed;
- otherwise the page (200) or the action's redirect (302).
A refused request never changes anything (a snapshot of the site's rows is compared).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from dashboard.api_keys import apikey_create
from dashboard.models import ApiKey, Invitation, Membership, ReportSubscription, Role, SharedLink
from sites.models import Site

pytestmark = pytest.mark.django_db

User = get_user_model()
DOMAIN, NAME = "secret-site.example", "Secret Project"
WHO = ("owner", "admin", "viewer", "outsider", "anonymous")


@dataclass
class World:
    site: Site
    users: dict[str, Any]
    mate: Membership  # a third teammate, the target of role changes and removals
    link: SharedLink
    invitation: Invitation

    def client(self, who: str) -> Client:
        client = Client()
        if who != "anonymous":
            client.force_login(self.users[who])
        return client


@pytest.fixture
def world(db: Any) -> World:
    users = {name: User.objects.create_user(name, email=f"{name}@example.org") for name in WHO[:4]}
    site = Site.objects.create(domain=DOMAIN, name=NAME, owner=users["owner"])
    Membership.objects.create(site=site, user=users["admin"], role=Role.ADMIN)
    Membership.objects.create(site=site, user=users["viewer"], role=Role.VIEWER)
    mate = Membership.objects.create(site=site, user=User.objects.create_user("mate"), role=Role.VIEWER)
    link = SharedLink.objects.create(site=site, name="Investors", token="t" * 43)
    invitation = Invitation.objects.create(
        site=site,
        email="new@example.org",
        role=Role.VIEWER,
        token_hash="h" * 64,
        invited_by=users["owner"],
        expires_at=timezone.now() + dt.timedelta(days=7),
    )
    return World(site, users, mate, link, invitation)


def snapshot(world: World) -> Any:
    site = Site.objects.filter(pk=world.site.pk).values("name", "timezone", "allowed_hostnames").first()
    return (
        site,
        sorted(Membership.objects.filter(site_id=world.site.pk).values_list("user_id", "role")),
        sorted(SharedLink.objects.values_list("pk", "revoked_at")),
        sorted(Invitation.objects.values_list("pk", "email")),
        sorted(ReportSubscription.objects.values_list("user_id", "frequency")),
        sorted(ApiKey.objects.values_list("pk", "revoked_at")),
    )


# (name, method, path under /sites/<id>/ (or absolute), data, expected for owner/admin/viewer/outsider/anonymous)
PAGES = [
    ("snippet", "get", "snippet/", None, (200, 200, 200, 404, 302)),
    ("settings", "get", "settings/", None, (200, 200, 200, 404, 302)),
    ("delete page", "get", "settings/delete/", None, (200, 403, 403, 404, 302)),
]
ACTIONS = [
    (
        "save settings",
        "post",
        "settings/",
        {"name": "Renamed", "timezone": "UTC", "allowed_hostnames": ""},
        (302, 302, 403, 404, 302),
    ),
    ("delete site", "post", "settings/delete/", {"confirm": DOMAIN}, (302, 403, 403, 404, 302)),
    (
        "create shared link",
        "post",
        "settings/shared-links/",
        {"name": "New", "password": ""},
        (302, 302, 403, 404, 302),
    ),
    ("revoke shared link", "post", "settings/shared-links/{link}/revoke/", {}, (302, 302, 403, 404, 302)),
    (
        "invite",
        "post",
        "settings/teammates/invite/",
        {"email": "x@example.org", "role": "admin"},
        (302, 302, 403, 404, 302),
    ),
    ("change role", "post", "settings/teammates/{mate}/role/", {"role": "admin"}, (302, 302, 403, 404, 302)),
    ("remove teammate", "post", "settings/teammates/{mate}/remove/", {}, (302, 302, 403, 404, 302)),
    ("cancel invitation", "post", "settings/invitations/{invitation}/cancel/", {}, (302, 302, 403, 404, 302)),
    ("email reports", "post", "settings/reports/", {"frequencies": ["weekly"]}, (302, 302, 302, 404, 302)),
    ("create API key", "post", "settings/api-keys/", {"name": "k"}, (200, 200, 200, 404, 302)),
    ("revoke API key", "post", "settings/api-keys/{key}/revoke/", {}, (302, 302, 302, 404, 302)),
    ("leave", "post", "settings/leave/", {}, (302, 302, 302, 404, 302)),
]
CASES = [
    pytest.param(name, method, path, data, who, expected[i], id=f"{name}-{who}")
    for name, method, path, data, expected in PAGES + ACTIONS
    for i, who in enumerate(WHO)
]


def url_for(world: World, who: str, path: str) -> str:
    key = ApiKey.objects.filter(user=world.users.get(who)).first() if who != "anonymous" else None
    path = path.format(link=world.link.pk, mate=world.mate.pk, invitation=world.invitation.pk, key=key.pk if key else 0)
    return f"/sites/{world.site.public_id}/{path}"


@pytest.mark.parametrize(("name", "method", "path", "data", "who", "expected"), CASES)
def test_matrix(world, name, method, path, data, who, expected):
    for person in WHO[:4]:
        apikey_create(user=world.users[person], name=f"{person}'s key")
    before = snapshot(world)
    client = world.client(who)
    url = url_for(world, who, path)
    response = getattr(client, method)(url, data) if method == "post" else client.get(url)

    assert response.status_code == expected, (name, who, response.status_code)
    html = response.content.decode()
    if expected == 404:
        assert DOMAIN not in html
        assert NAME not in html
    if expected == 302 and who == "anonymous":
        assert response["Location"].startswith("/accounts/login/?next=")
    if expected == 403:
        assert "You cannot do that on this site" in html
        assert "Back to the site" in html
    refused = expected in (403, 404) or who == "anonymous" or (name == "leave" and who == "owner")
    if refused:  # (the owner cannot leave their own site: told so, nothing changes)
        assert snapshot(world) == before, f"{name} by {who} changed something"
    elif method == "post":
        assert snapshot(world) != before, f"{name} by {who} did nothing"


@pytest.mark.parametrize("who", ["owner", "outsider", "anonymous"])
def test_unknown_site_looks_like_a_forbidden_one(world, who):
    client = world.client(who)
    for path in ("snippet/", "settings/", "settings/delete/"):
        known = client.get(f"/sites/{world.site.public_id}/{path}")
        unknown = client.get(f"/sites/ZZZZZZZZ/{path}")
        assert unknown.status_code == (302 if who == "anonymous" else 404)
        if who != "owner":
            assert known.status_code == unknown.status_code
            if who == "anonymous":
                assert known["Location"].replace(world.site.public_id, "X") == unknown["Location"].replace(
                    "ZZZZZZZZ", "X"
                )


@pytest.mark.parametrize("who", WHO)
def test_the_list_shows_only_my_sites(world, who):
    response = world.client(who).get("/")
    if who == "anonymous":
        assert response.status_code == 302
        assert response["Location"] == "/accounts/login/?next=/"
        return
    assert response.status_code == 200
    html = response.content.decode()
    assert (DOMAIN in html) == (who != "outsider")
    assert (NAME in html) == (who != "outsider")


@pytest.mark.parametrize(("who", "expected"), [("owner", 200), ("outsider", 200), ("anonymous", 302)])
def test_add_site_page(world, who, expected):
    assert world.client(who).get("/sites/new/").status_code == expected
    if who == "anonymous":
        world.client(who).post("/sites/new/", {"domain": "sneaky.example", "timezone": "UTC"})
        assert not Site.objects.filter(domain="sneaky.example").exists()


def test_viewer_sees_only_their_sections(world):
    html = world.client("viewer").get(f"/sites/{world.site.public_id}/settings/").content.decode()
    assert 'id="reports"' in html
    assert 'id="api-keys"' in html
    assert "Leave this site" in html
    assert 'id="shared-links"' not in html
    assert 'id="teammates"' not in html
    assert world.link.token not in html
    assert "new@example.org" not in html  # pending invitations are for admins
    assert 'name="allowed_hostnames"' not in html
    assert "read-only access" in html


def test_admin_cannot_see_the_delete_button_and_owner_can(world):
    admin = world.client("admin").get(f"/sites/{world.site.public_id}/settings/").content.decode()
    owner = world.client("owner").get(f"/sites/{world.site.public_id}/settings/").content.decode()
    assert "Delete this site" not in admin
    assert "Leave this site" in admin
    assert "Delete this site" in owner
    assert "Leave this site" not in owner


def test_actions_refuse_get(world):
    client = world.client("owner")
    for path in ("settings/shared-links/", "settings/teammates/invite/", "settings/api-keys/", "settings/leave/"):
        assert client.get(f"/sites/{world.site.public_id}/{path}").status_code == 405


def test_csrf_is_enforced(world):
    client = Client(enforce_csrf_checks=True)
    client.force_login(world.users["owner"])
    response = client.post(f"/sites/{world.site.public_id}/settings/shared-links/", {"name": "x"})
    assert response.status_code == 403
    assert SharedLink.objects.count() == 1


def test_the_invitation_page_of_one_site_acts_on_that_site_only(world):
    """Ids in action URLs are looked up within the site of the URL: an admin of one site cannot
    touch another site's rows by changing the id."""
    other_owner = User.objects.create_user("other-owner")
    other = Site.objects.create(domain="other.example", owner=other_owner)
    their_mate = Membership.objects.create(site=other, user=User.objects.create_user("their-mate"))
    their_link = SharedLink.objects.create(site=other, token="o" * 43)
    client = world.client("admin")
    base = f"/sites/{world.site.public_id}/settings"
    assert client.post(f"{base}/teammates/{their_mate.pk}/remove/").status_code == 404
    assert client.post(f"{base}/teammates/{their_mate.pk}/role/", {"role": "admin"}).status_code == 404
    assert client.post(f"{base}/shared-links/{their_link.pk}/revoke/").status_code == 404
    assert Membership.objects.filter(pk=their_mate.pk, role="viewer").exists()
    their_link.refresh_from_db()
    assert their_link.revoked_at is None

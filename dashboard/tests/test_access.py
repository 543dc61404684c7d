"""Who may read a site: the owner and teammates (admin or read-only); nobody else.

The access module is the one place every page, export and Stats API view asks; here it is
checked directly and through the Stats API (Bearer key and session), for each kind of user.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.http import Http404
from django.test import Client

from dashboard import access
from dashboard.api_keys import apikey_create
from dashboard.models import Membership, Role
from sites.models import Site

pytestmark = pytest.mark.django_db


@pytest.fixture
def people(db: Any) -> dict[str, Any]:
    users = get_user_model().objects
    return {
        name: users.create_user(name, password=f"{name}-password") for name in ("owner", "admin", "viewer", "other")
    }


@pytest.fixture
def team_site(people: dict[str, Any]) -> Site:
    site = Site.objects.create(domain="team.example", owner=people["owner"])
    Membership.objects.create(site=site, user=people["admin"], role=Role.ADMIN)
    Membership.objects.create(site=site, user=people["viewer"], role=Role.VIEWER)
    # Someone else's site, where our teammates are nobody.
    Site.objects.create(domain="elsewhere.example", owner=people["other"])
    return site


def test_roles(people, team_site):
    assert access.role_for(people["owner"], team_site) == "owner"
    assert access.role_for(people["admin"], team_site) == "admin"
    assert access.role_for(people["viewer"], team_site) == "viewer"
    assert access.role_for(people["other"], team_site) is None
    assert access.role_for(None, team_site) is None

    assert [access.user_can_view(people[n], team_site) for n in ("owner", "admin", "viewer", "other")] == [
        True,
        True,
        True,
        False,
    ]
    assert [access.user_can_admin(people[n], team_site) for n in ("owner", "admin", "viewer", "other")] == [
        True,
        True,
        False,
        False,
    ]
    assert [access.user_is_owner(people[n], team_site) for n in ("owner", "admin", "viewer", "other")] == [
        True,
        False,
        False,
        False,
    ]


def test_sites_for_lists_owned_and_team_sites_once(people, team_site):
    assert [s.domain for s in access.sites_for(people["viewer"])] == ["team.example"]
    assert [s.domain for s in access.sites_for(people["owner"])] == ["team.example"]
    assert [s.domain for s in access.sites_for(people["other"])] == ["elsewhere.example"]
    assert list(access.sites_for(None)) == []


def test_get_site_or_404_hides_sites_below_the_needed_role(people, team_site):
    assert access.get_site_or_404(people["viewer"], team_site.public_id) == (team_site, "viewer")
    with pytest.raises(Http404):
        access.get_site_or_404(people["viewer"], team_site.public_id, needed=access.ADMIN)
    with pytest.raises(Http404):
        access.get_site_or_404(people["admin"], team_site.public_id, needed=access.OWNER)
    with pytest.raises(Http404):
        access.get_site_or_404(people["other"], team_site.public_id)
    with pytest.raises(Http404):
        access.get_site_or_404(people["owner"], "NOSUCHID")


@pytest.mark.parametrize(("who", "status"), [("owner", 200), ("admin", 200), ("viewer", 200), ("other", 404)])
def test_stats_api_answers_teammates_and_hides_the_site_from_others(people, team_site, who, status):
    key = apikey_create(user=people[who], name="k")[1]
    response = Client().get("/api/v1/stats/aggregate", {"site_id": "team.example"}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert response.status_code == status, response.content
    if status == 200:
        assert response.json() == {"results": {"visitors": {"value": 0}}}
    else:  # exactly what a site that does not exist answers
        assert response.json() == {"error": "site 'team.example' not found"}


def test_a_removed_teammate_loses_access_at_once(people, team_site):
    client = Client()
    client.force_login(people["viewer"])
    assert client.get("/api/v1/stats/aggregate", {"site_id": "team.example"}).status_code == 200
    Membership.objects.filter(user=people["viewer"]).delete()
    assert client.get("/api/v1/stats/aggregate", {"site_id": "team.example"}).status_code == 404

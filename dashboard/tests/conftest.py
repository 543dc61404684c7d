"""Fixtures of the dashboard's tests: a site owner, and the site of testing.replay's scripted traffic."""

from __future__ import annotations

from typing import Any

import pytest
from django.test import Client

from dashboard.api_keys import apikey_create
from sites.models import Site
from testing import replay


@pytest.fixture
def owner(django_user_model: Any) -> Any:
    """Someone who owns sites: signs in as owner / owner-password."""
    return django_user_model.objects.create_user("owner", "owner@example.com", "owner-password")


@pytest.fixture
def owner_client(owner: Any) -> Client:
    """A browser signed in as `owner`."""
    client = Client()
    client.force_login(owner)
    return client


@pytest.fixture
def key(owner: Any) -> str:
    """A Stats API key of `owner` (the plaintext, as shown once)."""
    return apikey_create(user=owner, name="tests")[1]


def _scripted_site(owner: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Site:
    site = Site.objects.create(domain="example.com", timezone="America/New_York", owner=owner)
    with monkeypatch.context() as clock:  # the collector's clock is back to now afterwards
        replay(site, clock, settings)
    return site


@pytest.fixture
def scripted_site(db: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Site:
    """example.com in America/New_York with the scripted traffic of testing.replay; nobody owns it."""
    return _scripted_site(None, monkeypatch, settings)


@pytest.fixture
def owned_scripted_site(owner: Any, monkeypatch: pytest.MonkeyPatch, settings: Any) -> Site:
    """The scripted site, owned by `owner`."""
    return _scripted_site(owner, monkeypatch, settings)

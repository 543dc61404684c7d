"""Events carry their visit's attributes (entry page, source, referrer, UTM, browser, OS, device,
country): written by the worker, and backfilled by migration 0006 for events stored before."""

from __future__ import annotations

import importlib
import types
from typing import Any

import pytest
from django.db import connection

from collector.ingest import EVENT_VISIT_FIELDS
from collector.models import Event, Visit
from testing import replay

pytestmark = pytest.mark.django_db

# Event column <- Visit field: the copied attributes and the four the event had already.
COPIED = (*EVENT_VISIT_FIELDS, ("browser", "browser"), ("os", "os"), ("device", "device"), ("country", "country"))


def visit_of(event: Event) -> Visit:
    return Visit.objects.get(site_id=event.site_id, visit_key=event.visit_key)


def attributes(event: Event) -> dict[str, Any]:
    return {column: getattr(event, column) for column, _ in COPIED}


def visit_attributes(visit: Visit) -> dict[str, Any]:
    return {column: getattr(visit, field) for column, field in COPIED}


@pytest.fixture
def replayed(site, monkeypatch, settings):
    replay(site, monkeypatch, settings)
    return site


def test_every_event_carries_its_visits_attributes(replayed):
    events = list(Event.objects.filter(site=replayed))
    assert len(events) == 18  # every scripted hit, engagement reports too
    for event in events:
        assert attributes(event) == visit_attributes(visit_of(event)), event.hit_id


def test_a_later_hit_keeps_its_own_referrer_and_carries_the_visits(replayed):
    # C came from Twitter on Friday 23:50 and went on to /docs after midnight (an internal link).
    docs = Event.objects.get(site=replayed, path="/docs")
    assert (docs.referrer_source, docs.referrer) == ("", "")  # the hit's own: an internal referrer
    assert (docs.visit_source, docs.visit_referrer, docs.entry_path) == ("Twitter", "t.co/abc", "/")
    assert (docs.browser, docs.country) == ("Firefox", "US")
    # B's custom event carries the UTM tags of the pageview that started B's visit.
    click = Event.objects.get(site=replayed, name="Outbound Link: Click")
    assert (click.utm_source, click.visit_utm_source) == ("", "newsletter")
    assert (click.visit_utm_medium, click.visit_utm_campaign, click.visit_source) == ("email", "fall", "newsletter")


def test_the_migration_backfills_events_stored_before(replayed, monkeypatch):
    before = {event.hit_id: attributes(event) for event in Event.objects.filter(site=replayed)}
    Event.objects.update(**{column: "" for column, _ in COPIED})
    assert all(not any(attributes(e).values()) for e in Event.objects.all())

    migration = importlib.import_module("collector.migrations.0006_backfill_event_visit_attributes")
    monkeypatch.setattr(migration, "CHUNK", 5)  # several chunks over the 18 events
    migration.backfill(None, types.SimpleNamespace(connection=connection))  # what it reads of the editor
    assert {event.hit_id: attributes(event) for event in Event.objects.filter(site=replayed)} == before

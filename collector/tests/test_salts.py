from __future__ import annotations

import datetime as dt

import pytest
from django.core.management import call_command

from collector.models import Salt
from collector.salts import current_salts, rotate_salts, visitor_hash

pytestmark = pytest.mark.django_db

DAY = dt.date(2026, 11, 20)


def test_it_creates_a_random_salt_per_day_and_keeps_yesterdays():
    today, previous = current_salts(DAY)
    assert previous is None
    assert len(today) == 32
    tomorrow, yesterday = current_salts(DAY + dt.timedelta(days=1))
    assert yesterday == today
    assert tomorrow != today


def test_the_visitor_hash_changes_with_the_salt_site_ip_and_agent():
    salt_a, salt_b = b"a" * 32, b"b" * 32
    base = visitor_hash(salt_a, 1, "203.0.113.1", "UA")
    assert base == visitor_hash(salt_a, 1, "203.0.113.1", "UA")
    assert base != visitor_hash(salt_b, 1, "203.0.113.1", "UA")  # next day: unlinkable
    assert base != visitor_hash(salt_a, 2, "203.0.113.1", "UA")  # another site: unlinkable
    assert base != visitor_hash(salt_a, 1, "203.0.113.2", "UA")
    assert base != visitor_hash(salt_a, 1, "203.0.113.1", "UA2")
    assert -(2**63) <= base < 2**63


def test_rotation_deletes_salts_48_hours_after_their_day_began():
    for offset in range(4):
        current_salts(DAY - dt.timedelta(days=offset))
    assert Salt.objects.count() == 4
    created, deleted = rotate_salts(DAY)
    assert (created, deleted) == (False, 2)
    assert sorted(Salt.objects.values_list("day", flat=True)) == [DAY - dt.timedelta(days=1), DAY]


def test_the_rotate_salts_command_creates_todays_salt(capsys):
    call_command("rotate_salts")
    assert "today's salt created; 0 old salt(s) deleted" in capsys.readouterr().out
    assert Salt.objects.count() == 1

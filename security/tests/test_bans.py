"""Bans: validation, the bare 403 before any work, expiry, CIDR, commands, the worker's drop."""

from __future__ import annotations

import datetime as dt
import json

import pytest
from django.core.exceptions import ValidationError
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collector.ingest import ingest_batch
from collector.models import Event
from security.bans import BanSnapshot, forget_snapshot
from security.models import Ban, BanAudit, FlaggedIP, normalize_network
from security.services import ban_network, expire_bans, parse_duration, unban_network
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db


def client_from(ip: str) -> Client:
    return Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR=ip)


def pageview(site, path="/"):
    return {"n": "pageview", "u": f"https://example.com{path}", "sid": site.public_id}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("203.0.113.7", "203.0.113.7/32"),
        ("203.0.113.77/24", "203.0.113.0/24"),
        ("2001:db8::1", "2001:db8::1/128"),
        ("2001:db8:0:0:1::/64", "2001:db8::/64"),
        ("::ffff:203.0.113.7", "203.0.113.7/32"),
    ],
)
def test_networks_are_normalized(text, expected):
    assert normalize_network(text) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0.0.0.0/0", "/0 is too wide to ban"),
        ("::/0", "/0 is too wide to ban"),
        ("10.0.0.0/7", "/7 is too wide to ban"),
        ("999.1.1.1", "is not an IPv4/IPv6 address or network"),
        ("203.0.113.7/33", "is not an IPv4/IPv6 address or network"),
        ("", "Give an IPv4/IPv6 address or network."),
    ],
)
def test_bad_networks_are_refused_with_a_clear_error(text, message):
    with pytest.raises(ValidationError, match=message):
        ban_network(network=text)
    assert not Ban.objects.exists()


def test_a_banned_client_gets_a_bare_403_with_no_query_anywhere(site):
    ban_network(network="203.0.113.7", reason="flood")
    banned = client_from("203.0.113.7")
    assert banned.get("/script.js").status_code == 403  # warms this process's snapshot
    with CaptureQueriesContext(connection) as queries:
        for response in (
            send(banned, pageview(site)),
            banned.get("/admin/"),
            banned.get("/admin/login/"),
            banned.get("/script.js"),
            banned.post("/admin/login/", {"username": "x", "password": "y"}),
        ):
            assert response.status_code == 403
            assert response.content == b""
            assert "Set-Cookie" not in response
    assert queries.captured_queries == []
    assert Event.objects.count() == 0
    assert send(client_from("203.0.113.8"), pageview(site)).status_code == 202


def test_networks_ban_every_address_inside(site):
    ban_network(network="198.51.100.0/24")
    ban_network(network="2001:db8:1::/48")
    assert send(client_from("198.51.100.200"), pageview(site)).status_code == 403
    assert send(client_from("2001:db8:1:ffff::5"), pageview(site)).status_code == 403
    assert send(client_from("198.51.101.1"), pageview(site)).status_code == 202
    assert send(client_from("2001:db8:2::5"), pageview(site)).status_code == 202


def test_bans_expire(site):
    ban = ban_network(network="203.0.113.9", duration=dt.timedelta(minutes=30))
    assert send(client_from("203.0.113.9"), pageview(site)).status_code == 403
    Ban.objects.filter(pk=ban.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    forget_snapshot()
    # Past its expiry the ban no longer applies, even before the cleanup ran...
    assert send(client_from("203.0.113.9"), pageview(site)).status_code == 202
    # ...and the cleanup deletes it with an audit line.
    assert expire_bans() == 1
    assert not Ban.objects.exists()
    assert list(BanAudit.objects.values_list("action", flat=True)) == ["expire", "ban"]


def test_the_snapshot_expires_a_ban_by_itself():
    past = timezone.now() - dt.timedelta(seconds=1)
    snapshot = BanSnapshot([("203.0.113.0/24", past), ("198.51.100.7/32", None)])
    assert not snapshot.is_banned("203.0.113.5")
    assert snapshot.is_banned("198.51.100.7")
    assert not snapshot.is_banned("garbage")


def test_unban_lifts_it_and_is_audited(site, django_user_model):
    admin = django_user_model.objects.create_user("ops", is_staff=True)
    FlaggedIP.objects.create(ip="203.0.113.7", expires_at=timezone.now() + dt.timedelta(days=1))
    ban_network(network="203.0.113.7", actor=admin, reason="spam")
    assert FlaggedIP.objects.get().status == "banned"
    assert unban_network(network="203.0.113.7", actor=admin)
    assert send(client_from("203.0.113.7"), pageview(site)).status_code == 202
    assert not unban_network(network="203.0.113.7")
    actions = list(BanAudit.objects.values_list("action", "network", "actor__username"))
    assert actions == [("unban", "203.0.113.7/32", "ops"), ("ban", "203.0.113.7/32", "ops")]
    assert FlaggedIP.objects.get().status == "dismissed"


def test_banning_again_extends_the_ban():
    ban_network(network="203.0.113.7", duration=dt.timedelta(hours=1))
    ban_network(network="203.0.113.7", duration=dt.timedelta(days=7), reason="again")
    ban = Ban.objects.get()
    assert ban.expires_at > timezone.now() + dt.timedelta(days=6)
    assert list(BanAudit.objects.values_list("action", flat=True)) == ["extend", "ban"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30m", dt.timedelta(minutes=30)), ("24h", dt.timedelta(hours=24)), ("7d", dt.timedelta(days=7)), ("", None)],
)
def test_durations(text, expected):
    assert parse_duration(text) == expected


def test_the_ban_and_unban_commands(capsys):
    call_command("ban", "203.0.113.0/24", "--reason", "botnet", "--for", "24h")
    assert "banned 203.0.113.0/24 until 20" in capsys.readouterr().out
    assert Ban.objects.get().reason == "botnet"
    with pytest.raises(CommandError, match="too wide"):
        call_command("ban", "0.0.0.0/0")
    with pytest.raises(CommandError, match="not a duration"):
        call_command("ban", "203.0.113.1", "--for", "soon")
    call_command("unban", "203.0.113.0/24")
    assert "unbanned 203.0.113.0/24" in capsys.readouterr().out
    with pytest.raises(CommandError, match="is not banned"):
        call_command("unban", "203.0.113.0/24")


def test_the_worker_drops_hits_from_an_address_banned_while_they_were_queued(
    site, monkeypatch, django_capture_on_commit_callbacks
):
    queued = []
    monkeypatch.setattr("collector.views.enqueue_hits", queued.extend)
    for ip in ("203.0.113.7", "203.0.113.8", "198.51.100.1", "2001:db8:5::1"):
        assert send(client_from(ip), pageview(site)).status_code == 202
    assert "203.0.113.7" not in json.dumps(queued)  # tokens, not addresses
    with django_capture_on_commit_callbacks(execute=True):  # the version bump happens on commit
        ban_network(network="203.0.113.7")
        ban_network(network="198.51.100.0/24")
        ban_network(network="2001:db8:5::/64")
    result = ingest_batch(queued)
    assert (result.written, result.dropped) == (1, 3)
    assert Event.objects.count() == 1


def test_other_processes_pick_up_a_ban_when_the_version_key_moves(site, monkeypatch):
    from django.core.cache import cache

    from security import bans

    assert send(client_from("203.0.113.50"), pageview(site)).status_code == 202  # snapshot loaded
    Ban.objects.create(network="203.0.113.50")  # as if written by another process
    assert send(client_from("203.0.113.50"), pageview(site)).status_code == 202  # not seen yet
    cache.set(bans.VERSION_KEY, "moved")
    monkeypatch.setattr(bans._State, "checked_at", 0.0)  # a second has passed
    assert send(client_from("203.0.113.50"), pageview(site)).status_code == 403


def test_a_ban_list_that_cannot_be_loaded_fails_open_and_is_retried(site, monkeypatch, caplog):
    from security import bans

    ban_network(network="203.0.113.90")

    def broken():
        raise RuntimeError("database down")

    monkeypatch.setattr(bans, "_load", broken)
    assert send(client_from("203.0.113.90"), pageview(site)).status_code == 202
    assert "ban list unavailable: RuntimeError" in caplog.text
    monkeypatch.undo()
    monkeypatch.setattr(bans._State, "checked_at", 0.0)
    assert send(client_from("203.0.113.90"), pageview(site)).status_code == 403


def test_a_bulk_ban_commits_once_and_announces_once(django_capture_on_commit_callbacks):
    from security.forms import ban_flagged_ips

    ips = ["203.0.113.1", "203.0.113.2", "203.0.113.3"]
    for ip in ips:
        FlaggedIP.objects.create(ip=ip, expires_at=timezone.now() + dt.timedelta(days=1))
    with django_capture_on_commit_callbacks() as callbacks:
        result = ban_flagged_ips(ips=ips, duration=dt.timedelta(hours=24), actor=None)
    assert result.banned == ["203.0.113.1/32", "203.0.113.2/32", "203.0.113.3/32"]
    assert len(callbacks) == 1  # one snapshot bump and one WAF sync, not three
    assert list(FlaggedIP.objects.values_list("times_banned", flat=True)) == [1, 1, 1]

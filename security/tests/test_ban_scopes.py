"""Ban scopes: a `collector` ban closes only the public collector, an `all` ban every path but
/healthz. Auto-bans (collector evidence) are collector bans, so one abusive device behind an
office NAT or a VPN does not lock the site owners behind the same address out of their pages."""

from __future__ import annotations

import datetime as dt
import json
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collector.ingest import ingest_batch
from collector.models import Event
from dashboard.api_keys import apikey_create
from security.bans import BanSnapshot, bump_version
from security.models import Ban, BanAudit, FlaggedIP
from security.services import ban_network, expire_bans, unban_network
from sites.models import Site
from testing import CHROME_UA, flashes, send

pytestmark = pytest.mark.django_db

OFFICE = "198.51.100.20"  # one address for everybody in the office


def client_from(ip: str, **extra: Any) -> Client:
    return Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR=ip, **extra)


def pageview(site: Site, path: str = "/") -> dict[str, str]:
    return {"n": "pageview", "u": f"https://{site.domain}{path}", "sid": site.public_id}


@pytest.fixture
def owner(db: Any) -> Any:
    return get_user_model().objects.create_user("olivia", "olivia@example.com", "olivia-password-1")


@pytest.fixture
def owned_site(owner: Any) -> Site:
    return Site.objects.create(domain="office.example", name="Office", timezone="UTC", owner=owner)


def sign_in(ip: str) -> tuple[Client, Any]:
    """A real sign-in through the form, CSRF token and all, from this address."""
    browser = client_from(ip, enforce_csrf_checks=True)
    page = browser.get("/accounts/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode())
    response = browser.post(
        "/accounts/login/",
        {"username": "olivia", "password": "olivia-password-1", "csrfmiddlewaretoken": token.group(1) if token else ""},
    )
    return browser, response


def assert_bare_403(response: Any) -> None:
    assert (response.status_code, response.content) == (403, b"")
    assert "Set-Cookie" not in response


# -- end to end ----------------------------------------------------------------------------------


def test_an_address_sending_invalid_bodies_is_banned_from_the_collector_only(
    owner, owned_site, django_capture_on_commit_callbacks, frozen_clock
):
    sender = client_from(OFFICE)
    with django_capture_on_commit_callbacks(execute=True):  # the ban is announced when it commits
        statuses = [send(sender, "{not json").status_code for _ in range(400)]
    assert set(statuses) == {400}
    flag = FlaggedIP.objects.get(ip=OFFICE)
    assert (flag.reasons, flag.status) == ({"malformed": 400}, "banned")

    # The collector is closed to the address: every method of /api/event, and the script.
    assert_bare_403(send(sender, pageview(owned_site)))
    assert_bare_403(sender.get("/api/event", {"n": "pageview", "u": "https://office.example/"}))
    assert_bare_403(sender.options("/api/event"))
    assert_bare_403(sender.get("/script.js"))

    # The owner behind the same address still signs in and reads the site.
    assert client_from(OFFICE).get("/accounts/login/").status_code == 200
    browser, signed_in = sign_in(OFFICE)
    assert (signed_in.status_code, signed_in["Location"]) == (302, "/")
    dashboard = browser.get(f"/sites/{owned_site.public_id}/")
    assert dashboard.status_code == 200
    assert b"office.example" in dashboard.content
    key = apikey_create(user=owner, name="office")[1]
    api = client_from(OFFICE).get(
        "/api/v1/stats/aggregate", {"site_id": "office.example"}, HTTP_AUTHORIZATION=f"Bearer {key}"
    )
    assert (api.status_code, api.json()) == (200, {"results": {"visitors": {"value": 0}}})
    assert client_from(OFFICE).get("/healthz").status_code == 200

    # Others are not affected at all.
    assert send(client_from("198.51.100.21"), pageview(owned_site)).status_code == 202

    ban = Ban.objects.get()
    assert (ban.network, ban.source, ban.scope) == (f"{OFFICE}/32", "auto", "collector")
    assert list(BanAudit.objects.values_list("action", "source", "scope")) == [("ban", "auto", "collector")]


def test_a_manual_ban_closes_every_path_but_healthz(owner, owned_site, django_capture_on_commit_callbacks):
    key = apikey_create(user=owner, name="office")[1]
    signed_in_before, _ = sign_in(OFFICE)
    with django_capture_on_commit_callbacks(execute=True):
        call_command("ban", OFFICE, "--reason", "abuse", stdout=None)
    assert Ban.objects.get().scope == "all"

    visitor = client_from(OFFICE)
    for response in (
        send(visitor, pageview(owned_site)),
        visitor.get("/script.js"),
        visitor.get("/accounts/login/"),
        visitor.post("/accounts/login/", {"username": "olivia", "password": "olivia-password-1"}),
        signed_in_before.get(f"/sites/{owned_site.public_id}/"),
        visitor.get("/api/v1/stats/aggregate", {"site_id": "office.example"}, HTTP_AUTHORIZATION=f"Bearer {key}"),
        visitor.get("/admin/"),
        visitor.get("/security/"),
    ):
        assert_bare_403(response)
    health = visitor.get("/healthz")
    assert health.status_code == 200


def test_a_collector_ban_costs_no_query_on_the_collector_and_lets_owner_pages_through(owned_site):
    ban_network(network="203.0.113.0/24", scope="collector")
    banned = client_from("203.0.113.7")
    assert banned.get("/script.js").status_code == 403  # warms this process's snapshot
    with CaptureQueriesContext(connection) as queries:
        for response in (send(banned, pageview(owned_site)), banned.get("/script.js"), banned.options("/api/event")):
            assert_bare_403(response)
    assert queries.captured_queries == []
    assert banned.get("/accounts/signup/").status_code == 200
    assert Event.objects.count() == 0


# -- the snapshot ------------------------------------------------------------------------------


def test_the_widest_covering_ban_decides_what_is_closed():
    soon = timezone.now() + dt.timedelta(hours=1)
    gone = timezone.now() - dt.timedelta(seconds=1)
    snapshot = BanSnapshot(
        [
            ("203.0.113.7/32", None, "collector"),  # inside an all-paths /24
            ("203.0.113.0/24", soon, "all"),
            ("198.51.100.0/24", None, "collector"),  # around an all-paths /32
            ("198.51.100.9/32", None, "all"),
            ("192.0.2.0/24", None, "collector"),  # around an expired all-paths /32
            ("192.0.2.5/32", gone, "all"),
            ("2001:db8::/64", None, "collector"),
        ]
    )
    assert snapshot.scope_of("203.0.113.7") == "all"
    assert snapshot.scope_of("198.51.100.9") == "all"
    assert snapshot.scope_of("198.51.100.10") == "collector"
    assert snapshot.scope_of("192.0.2.5") == "collector"
    assert snapshot.scope_of("2001:db8::1") == "collector"
    assert snapshot.scope_of("2001:db8:1::1") is None
    assert snapshot.scope_of("not an address") is None
    assert snapshot.blocks("198.51.100.10", "/api/event")
    assert snapshot.blocks("198.51.100.10", "/script.js")
    assert not snapshot.blocks("198.51.100.10", "/accounts/login/")
    assert not snapshot.blocks("198.51.100.10", "/api/v1/stats/aggregate")
    assert snapshot.blocks("198.51.100.9", "/accounts/login/")
    assert not snapshot.blocks("198.51.100.9", "/healthz")
    # A row without a scope (an older caller) closes everything, as bans always did.
    assert BanSnapshot([("203.0.113.7/32", None)]).scope_of("203.0.113.7") == "all"


# -- re-banning, the audit log ---------------------------------------------------------------


def test_banning_again_widens_the_scope_and_never_narrows_it(site):
    def ban(**kwargs: Any) -> Ban:
        done = ban_network(network="203.0.113.7", **kwargs)
        bump_version()  # what each ban's commit does (the test's own transaction never commits)
        return done

    ban(scope="collector", source="auto", duration=dt.timedelta(hours=1))
    assert send(client_from("203.0.113.7"), pageview(site)).status_code == 403
    assert client_from("203.0.113.7").get("/accounts/login/").status_code == 200

    widened = ban(scope="all", reason="seen it")
    assert widened.scope == "all"
    assert client_from("203.0.113.7").get("/accounts/login/").status_code == 403

    kept = ban(scope="collector", source="auto", duration=dt.timedelta(hours=4))
    assert kept.scope == "all"
    assert Ban.objects.get().scope == "all"
    assert client_from("203.0.113.7").get("/accounts/login/").status_code == 403
    assert list(BanAudit.objects.order_by("at", "pk").values_list("action", "source", "scope")) == [
        ("ban", "auto", "collector"),
        ("extend", "manual", "all"),
        ("extend", "auto", "all"),
    ]


def test_unban_and_expiry_are_audited_with_the_scope():
    ban_network(network="203.0.113.7", scope="collector")
    ban_network(network="203.0.113.8", scope="collector", duration=dt.timedelta(minutes=5))
    Ban.objects.filter(network="203.0.113.8/32").update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    assert unban_network(network="203.0.113.7")
    assert expire_bans() == 1
    audits = set(BanAudit.objects.exclude(action="ban").values_list("action", "network", "scope"))
    assert audits == {("unban", "203.0.113.7/32", "collector"), ("expire", "203.0.113.8/32", "collector")}


def test_an_unknown_scope_is_refused():
    from django.core.exceptions import ValidationError

    with pytest.raises(ValidationError, match="is not a ban scope"):
        ban_network(network="203.0.113.7", scope="everything")
    assert not Ban.objects.exists()


def test_the_ban_command_takes_a_scope(capsys):
    call_command("ban", "203.0.113.0/24", "--scope", "collector", "--for", "24h")
    out = capsys.readouterr().out
    assert out.startswith("banned 203.0.113.0/24 until 20")
    assert out.strip().endswith("scope collector")
    assert Ban.objects.get().scope == "collector"
    call_command("ban", "198.51.100.7")
    assert "scope all" in capsys.readouterr().out
    call_command("ban", "198.51.100.7", "--scope", "collector")
    captured = capsys.readouterr()
    assert "scope all" in captured.out
    assert "already had a ban of scope all, which it keeps" in captured.err
    with pytest.raises(CommandError, match="invalid choice"):
        call_command("ban", "192.0.2.1", "--scope", "login")


# -- the worker --------------------------------------------------------------------------------


def test_the_worker_drops_queued_hits_of_both_scopes(site, monkeypatch, django_capture_on_commit_callbacks):
    queued: list[Any] = []
    monkeypatch.setattr("collector.views.enqueue_hits", queued.extend)
    for ip in ("203.0.113.7", "198.51.100.1", "2001:db8:5::1", "192.0.2.1"):
        assert send(client_from(ip), pageview(site)).status_code == 202
    assert "203.0.113.7" not in json.dumps(queued)
    with django_capture_on_commit_callbacks(execute=True):
        ban_network(network="203.0.113.7", scope="collector")
        ban_network(network="198.51.100.0/24", scope="all")
        ban_network(network="2001:db8:5::/64", scope="collector")
    result = ingest_batch(queued)
    assert (result.written, result.dropped) == (1, 3)
    assert Event.objects.count() == 1


# -- the security dashboard and the admin -----------------------------------------------------


def test_the_dashboard_bans_from_the_collector_and_shows_each_scope(staff_client):
    response = staff_client.post(
        "/security/ban/",
        {"network": "203.0.113.0/24", "reason": "shared VPN", "duration": "24h", "scope": "collector"},
        follow=True,
    )
    assert "Banned 203.0.113.0/24 from the collector for 24h." in flashes(response)
    staff_client.post("/security/ban/", {"network": "198.51.100.7", "duration": "1h"})  # no scope: everything
    assert dict(Ban.objects.values_list("network", "scope")) == {
        "203.0.113.0/24": "collector",
        "198.51.100.7/32": "all",
    }

    page = staff_client.get("/security/").content.decode()
    rows = dict(re.findall(r'<tr data-network="([^"]+)">(.*?)</tr>', page, re.S))
    assert "collector only" in rows["203.0.113.0/24"]
    assert "everything" in rows["198.51.100.7/32"]
    assert '<option value="collector">collector only</option>' in page
    assert '<option value="all" selected>everything</option>' in page

    narrowing = staff_client.post(
        "/security/ban/", {"network": "198.51.100.7", "duration": "1h", "scope": "collector"}, follow=True
    )
    assert (
        "Banned 198.51.100.7/32 for 1h. 198.51.100.7/32 already had a ban on every path, which it keeps "
        "(unban first to narrow it)." in flashes(narrowing)
    )
    assert Ban.objects.get(network="198.51.100.7/32").scope == "all"


def test_flagged_rows_can_be_banned_from_the_collector(staff_client):
    FlaggedIP.objects.create(
        ip="203.0.113.9", reasons={"malformed": 40}, expires_at=timezone.now() + dt.timedelta(days=1)
    )
    response = staff_client.post(
        "/security/flagged/",
        {"action": "ban", "ip": "203.0.113.9", "duration": "7d", "scope": "collector"},
        follow=True,
    )
    assert "Banned 203.0.113.9/32 from the collector for 7d." in flashes(response)
    ban = Ban.objects.get()
    assert (ban.scope, ban.source) == ("collector", "manual")
    response = staff_client.post(
        "/security/flagged/", {"action": "ban", "ip": "203.0.113.9", "scope": "nope"}, follow=True
    )
    assert any("nope" in message for message in flashes(response))
    assert Ban.objects.get().scope == "collector"


def test_the_dashboard_says_when_collector_bans_have_no_waf_set(staff_client, settings):
    settings.WAF_IPSET_V4_ARN = "arn:aws:wafv2:us-east-1:1:regional/ipset/v4/1"
    settings.WAF_IPSET_V6_ARN = "arn:aws:wafv2:us-east-1:1:regional/ipset/v6/2"
    settings.WAF_COLLECTOR_IPSET_V4_ARN = settings.WAF_COLLECTOR_IPSET_V6_ARN = ""
    assert 'id="waf-collector-note"' not in staff_client.get("/security/").content.decode()  # no collector ban
    ban_network(network="203.0.113.9", scope="collector")
    page = staff_client.get("/security/").content.decode()
    assert "No collector WAF IP set for IPv4 and IPv6" in page
    settings.WAF_COLLECTOR_IPSET_V4_ARN = "arn:aws:wafv2:us-east-1:1:regional/ipset/c4/3"
    settings.WAF_COLLECTOR_IPSET_V6_ARN = "arn:aws:wafv2:us-east-1:1:regional/ipset/c6/4"
    assert 'id="waf-collector-note"' not in staff_client.get("/security/").content.decode()


@pytest.fixture
def admin_client_(db: Any) -> Client:
    root = get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123456")
    client = Client()
    client.force_login(root)
    return client


def test_the_admin_adds_a_collector_ban_shows_scopes_and_refuses_to_narrow(admin_client_):
    response = admin_client_.post(
        "/admin/security/ban/add/", {"network": "203.0.113.77", "reason": "vpn", "scope": "collector"}
    )
    assert response.status_code == 302
    collector = Ban.objects.get()
    assert collector.scope == "collector"
    assert BanAudit.objects.get().scope == "collector"
    everywhere = ban_network(network="198.51.100.7")

    listing = admin_client_.get("/admin/security/ban/").content.decode()
    cells = re.findall(r'<td class="field-scope">([^<]*)</td>', listing)
    assert sorted(cells) == ["collector only (/api/event, /script.js)", "everything but /healthz"]

    narrowing = admin_client_.post(
        f"/admin/security/ban/{everywhere.pk}/change/", {"reason": "x", "scope": "collector"}
    )
    assert narrowing.status_code == 200
    assert "cannot be narrowed to the collector: unban it and ban it again" in narrowing.content.decode()
    assert Ban.objects.get(pk=everywhere.pk).scope == "all"

    widening = admin_client_.post(f"/admin/security/ban/{collector.pk}/change/", {"reason": "vpn", "scope": "all"})
    assert widening.status_code == 302
    assert Ban.objects.get(pk=collector.pk).scope == "all"
    assert BanAudit.objects.filter(action="extend").values_list("scope", flat=True).get() == "all"

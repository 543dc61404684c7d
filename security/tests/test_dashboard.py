"""The security dashboard (/security/): access, reads, and every action through the services."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from security import metrics
from security.models import Ban, BanAudit, FlaggedIP
from security.services import ban_network
from testing import flashes

URL = "/security/"


def make_flag(ip: str, score: int = 10, status: str = "open", **fields: Any) -> FlaggedIP:
    now = timezone.now()
    fields.setdefault("reasons", {"rate": 2})
    fields.setdefault("sites", ["abc123"])
    return FlaggedIP.objects.create(
        ip=ip,
        score=score,
        status=status,
        first_seen=now - dt.timedelta(hours=2),
        last_seen=now - dt.timedelta(minutes=5),
        expires_at=now + dt.timedelta(days=7),
        **fields,
    )


def page_ips(response: Any) -> list[str]:
    return [row["flag"].ip for row in response.context["flagged_rows"]]


# -- access --------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_the_admin_login(db):
    response = Client().get(URL)
    assert response.status_code == 302
    assert response.url == "/admin/login/?next=/security/"


def test_a_signed_in_non_staff_user_gets_a_403_page(db):
    user = get_user_model().objects.create_user("visitor", "v@example.com", "pw-visitor-123")
    client = Client()
    client.force_login(user)
    response = client.get(URL)
    assert response.status_code == 403
    assert b"Staff only" in response.content
    # ...and cannot act either.
    response = client.post("/security/ban/", {"network": "203.0.113.7", "duration": "24h"})
    assert response.status_code == 403
    assert not Ban.objects.exists()


def test_staff_see_the_page(staff_client):
    response = staff_client.get(URL)
    assert response.status_code == 200
    content = response.content.decode()
    for heading in ("Traffic, last 3 h", "Flagged IPs", "Active bans", "Ban an IP or CIDR"):
        assert heading in content
    assert "<svg" in content


def test_anonymous_posts_change_nothing(db):
    response = Client().post("/security/ban/", {"network": "203.0.113.7", "duration": "24h"})
    assert response.status_code == 302
    assert response.url.startswith("/admin/login/")
    assert not Ban.objects.exists()


def test_actions_are_post_only(staff_client):
    for path in ("/security/ban/", "/security/flagged/", "/security/unban/"):
        assert staff_client.get(path).status_code == 405


def test_actions_need_the_csrf_token(staff):
    client = Client(enforce_csrf_checks=True)
    client.force_login(staff)
    response = client.post("/security/ban/", {"network": "203.0.113.7", "duration": "24h"})
    assert response.status_code == 403
    assert not Ban.objects.exists()


# -- flagged IPs ---------------------------------------------------------------------------------


def test_flagged_ips_are_sorted_by_score_with_their_evidence(staff_client):
    make_flag("198.51.100.1", score=5)
    make_flag("198.51.100.2", score=50, reasons={"rate": 40, "many_sites": 6}, sites=["s1", "s2"], times_banned=2)
    make_flag("198.51.100.3", score=20)
    make_flag("198.51.100.4", score=99, status="dismissed")

    response = staff_client.get(URL)
    assert page_ips(response) == ["198.51.100.2", "198.51.100.3", "198.51.100.1"]  # open only, by score
    content = response.content.decode()
    assert content.index("198.51.100.2") < content.index("198.51.100.3") < content.index("198.51.100.1")
    row = response.context["flagged_rows"][0]
    assert [(r["code"], r["count"]) for r in row["reasons"]] == [("rate", 40), ("many_sites", 6)]
    assert row["sites"] == ["s1", "s2"]
    assert "many_sites <b>\u00d76</b>" in content  # the multiplication sign
    assert "198.51.100.4" not in content


def test_flagged_ips_filter_by_status_reason_and_prefix(staff_client):
    make_flag("198.51.100.1", score=5, reasons={"rate": 3})
    make_flag("198.51.100.2", score=50, reasons={"xff": 5})
    make_flag("203.0.113.9", score=30, reasons={"xff": 10, "rate": 1})
    make_flag("203.0.113.10", score=70, status="dismissed", reasons={"xff": 5})
    make_flag("2001:db8::1", score=40, status="banned", reasons={"hostname": 5})

    assert page_ips(staff_client.get(URL, {"status": "dismissed"})) == ["203.0.113.10"]
    assert page_ips(staff_client.get(URL, {"status": "banned"})) == ["2001:db8::1"]
    assert page_ips(staff_client.get(URL, {"status": "all"})) == [
        "203.0.113.10",
        "198.51.100.2",
        "2001:db8::1",
        "203.0.113.9",
        "198.51.100.1",
    ]
    assert page_ips(staff_client.get(URL, {"reason": "xff"})) == ["198.51.100.2", "203.0.113.9"]
    assert page_ips(staff_client.get(URL, {"reason": "rate", "status": "all"})) == ["203.0.113.9", "198.51.100.1"]
    assert page_ips(staff_client.get(URL, {"q": "203.0.113."})) == ["203.0.113.9"]
    assert page_ips(staff_client.get(URL, {"q": "203.0.113.", "status": "all"})) == ["203.0.113.10", "203.0.113.9"]
    assert page_ips(staff_client.get(URL, {"status": "nonsense"})) == ["198.51.100.2", "203.0.113.9", "198.51.100.1"]


def test_flagged_ips_are_paginated_by_50(staff_client):
    FlaggedIP.objects.bulk_create(
        FlaggedIP(ip=f"198.51.100.{n}", score=n, expires_at=timezone.now() + dt.timedelta(days=1)) for n in range(60)
    )
    first = staff_client.get(URL)
    assert len(page_ips(first)) == 50
    assert page_ips(first)[0] == "198.51.100.59"
    second = staff_client.get(URL, {"page": 2})
    assert page_ips(second) == [f"198.51.100.{n}" for n in range(9, -1, -1)]
    assert "Page 2 of 2" in second.content.decode()


def test_one_click_ban_of_a_flagged_ip(staff_client, staff):
    make_flag("203.0.113.7", score=60, reasons={"rate": 12})
    response = staff_client.post(
        "/security/flagged/",
        {"action": "ban", "ip": "203.0.113.7", "duration": "24h", "next": "/security/?reason=rate"},
    )
    assert response.status_code == 302
    assert response.url == "/security/?reason=rate"

    ban = Ban.objects.get()
    assert ban.network == "203.0.113.7/32"
    assert ban.created_by == staff
    assert ban.source == "manual"
    assert "rate x12" in ban.reason
    expected = timezone.now() + dt.timedelta(hours=24)
    assert abs((ban.expires_at - expected).total_seconds()) < 60
    audit = BanAudit.objects.get()
    assert (audit.action, audit.network, audit.actor) == ("ban", "203.0.113.7/32", staff)
    assert FlaggedIP.objects.get(ip="203.0.113.7").status == "banned"

    page = staff_client.get(response.url)
    assert "Banned 203.0.113.7/32 for 24h." in flashes(page)
    assert 'data-network="203.0.113.7/32"' in page.content.decode()


def test_permanent_ban_and_dismiss_of_single_rows(staff_client):
    make_flag("203.0.113.7")
    make_flag("203.0.113.8")
    response = staff_client.post(
        "/security/flagged/", {"action": "ban", "ip": "203.0.113.7", "duration": "permanent"}, follow=True
    )
    assert "Banned 203.0.113.7/32 permanently." in flashes(response)
    assert Ban.objects.get().expires_at is None

    response = staff_client.post("/security/flagged/", {"action": "dismiss", "ip": "203.0.113.8"}, follow=True)
    assert response.redirect_chain == [("/security/", 302)]
    assert "Dismissed 203.0.113.8." in flashes(response)
    assert FlaggedIP.objects.get(ip="203.0.113.8").status == "dismissed"
    assert Ban.objects.count() == 1


def test_bulk_ban_and_bulk_dismiss(staff_client, staff):
    for n in range(1, 5):
        make_flag(f"203.0.113.{n}", score=n)
    response = staff_client.post(
        "/security/flagged/", {"action": "ban", "ip": ["203.0.113.1", "203.0.113.2"], "duration": "7d"}, follow=True
    )
    assert "Banned 2 IPs for 7d: 203.0.113.1/32, 203.0.113.2/32." in flashes(response)
    assert set(Ban.objects.values_list("network", flat=True)) == {"203.0.113.1/32", "203.0.113.2/32"}
    assert BanAudit.objects.filter(action="ban", actor=staff).count() == 2
    for ban in Ban.objects.all():
        assert abs((ban.expires_at - timezone.now() - dt.timedelta(days=7)).total_seconds()) < 60

    response = staff_client.post(
        "/security/flagged/", {"action": "dismiss", "ip": ["203.0.113.3", "203.0.113.4"]}, follow=True
    )
    assert "Dismissed 2 IPs." in flashes(response)
    statuses = dict(FlaggedIP.objects.values_list("ip", "status"))
    assert statuses == {
        "203.0.113.1": "banned",
        "203.0.113.2": "banned",
        "203.0.113.3": "dismissed",
        "203.0.113.4": "dismissed",
    }


def test_bulk_action_with_nothing_selected_or_garbage_says_so(staff_client):
    make_flag("203.0.113.1")
    response = staff_client.post("/security/flagged/", {"action": "ban", "duration": "24h"}, follow=True)
    assert "Select at least one IP." in flashes(response)
    response = staff_client.post("/security/flagged/", {"action": "ban", "ip": "0.0.0.0/0"}, follow=True)
    assert any("is not an IP address" in message for message in flashes(response))
    response = staff_client.post("/security/flagged/", {"action": "ban", "ip": "203.0.113.1", "duration": "99y"})
    assert response.status_code == 302
    assert not Ban.objects.exists()
    assert FlaggedIP.objects.get().status == "open"


def test_next_never_leaves_the_dashboard(staff_client):
    make_flag("203.0.113.1")
    for target in ("https://evil.example/security/", "//evil.example/", "/admin/"):
        response = staff_client.post("/security/flagged/", {"action": "dismiss", "ip": "203.0.113.1", "next": target})
        assert response.url == "/security/"


# -- bans ----------------------------------------------------------------------------------------


def test_unban(staff_client, staff):
    ban_network(network="203.0.113.7", reason="test", duration=dt.timedelta(hours=1))
    response = staff_client.post("/security/unban/", {"network": "203.0.113.7/32", "next": "/security/?hours=6"})
    assert response.url == "/security/?hours=6"
    assert not Ban.objects.exists()
    audit = BanAudit.objects.filter(action="unban").get()
    assert (audit.network, audit.actor) == ("203.0.113.7/32", staff)
    page = staff_client.get(response.url)
    assert "Unbanned 203.0.113.7/32." in flashes(page)

    response = staff_client.post("/security/unban/", {"network": "203.0.113.7/32"}, follow=True)
    assert "203.0.113.7/32 was not banned." in flashes(response)


def test_manual_ban_of_a_cidr(staff_client, staff):
    response = staff_client.post(
        "/security/ban/",
        {"network": " 198.51.100.77/24 ", "reason": "scraper farm", "duration": "permanent", "next": "/security/"},
    )
    assert response.status_code == 302
    ban = Ban.objects.get()
    assert (ban.network, ban.reason, ban.expires_at, ban.created_by) == (
        "198.51.100.0/24",
        "scraper farm",
        None,
        staff,
    )
    assert BanAudit.objects.get().action == "ban"
    page = staff_client.get(response.url)
    assert "Banned 198.51.100.0/24 permanently." in flashes(page)
    content = page.content.decode()
    assert "scraper farm" in content
    assert "never" in content


def test_manual_ban_for_one_hour(staff_client):
    response = staff_client.post("/security/ban/", {"network": "2001:db8::7", "duration": "1h"}, follow=True)
    assert "Banned 2001:db8::7/128 for 1h." in flashes(response)
    ban = Ban.objects.get()
    assert abs((ban.expires_at - timezone.now() - dt.timedelta(hours=1)).total_seconds()) < 60


@pytest.mark.parametrize(
    ("network", "error"),
    [
        ("0.0.0.0/0", "/0 is too wide to ban; the widest allowed is /8."),
        ("::/0", "/0 is too wide to ban; the widest allowed is /16."),
        ("garbage", "is not an IPv4/IPv6 address or network."),
        ("", "This field is required."),
    ],
)
def test_manual_ban_refuses_wide_networks_and_garbage_clearly(staff_client, network, error):
    response = staff_client.post("/security/ban/", {"network": network, "reason": "x", "duration": "24h"})
    assert response.status_code == 400
    content = response.content.decode()
    assert error in content
    assert 'class="field-error"' in content
    assert "The ban was not created" in content
    assert f'value="{network}"' in content  # the input is kept for correction
    assert not Ban.objects.exists()
    assert not BanAudit.objects.exists()


def test_active_bans_list_shows_waf_state_and_who(staff_client, staff):
    ban_network(network="203.0.113.7", reason="by hand", actor=staff, duration=dt.timedelta(hours=24))
    ban_network(network="198.51.100.9", reason="auto: score 120 (rate)", source="auto", duration=dt.timedelta(hours=1))
    Ban.objects.filter(network="203.0.113.7/32").update(
        waf_state="synced", waf_synced_at=timezone.now() - dt.timedelta(minutes=3)
    )
    Ban.objects.create(network="192.0.2.1", expires_at=timezone.now() - dt.timedelta(minutes=1))  # expired
    response = staff_client.get(URL)
    bans = list(response.context["bans_page"].object_list)
    assert {ban.network for ban in bans} == {"203.0.113.7/32", "198.51.100.9/32"}
    content = response.content.decode()
    assert "badge waf-synced" in content
    assert "badge waf-pending" in content
    assert "badge source-auto" in content
    assert ">ops<" in content
    assert "192.0.2.1" not in content


# -- warnings ------------------------------------------------------------------------------------


def test_waf_cap_warning(staff_client):
    Ban.objects.create(network="203.0.113.1", waf_state="synced")
    assert 'id="waf-cap-warning"' not in staff_client.get(URL).content.decode()
    Ban.objects.create(network="203.0.113.2", waf_state="skipped", waf_message="over the WAF cap of 10000 addresses")
    content = staff_client.get(URL).content.decode()
    assert 'id="waf-cap-warning"' in content
    assert "over the WAF cap of 10000 addresses" in content


def test_waf_not_configured_note(staff_client, settings):
    settings.WAF_IPSET_V4_ARN = ""
    settings.WAF_IPSET_V6_ARN = ""
    assert "bans are enforced in the app only" in staff_client.get(URL).content.decode()
    settings.WAF_IPSET_V4_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/v4/abc"
    assert "No WAF IP set for IPv6" in staff_client.get(URL).content.decode()
    settings.WAF_IPSET_V6_ARN = "arn:aws:wafv2:us-east-1:123456789012:regional/ipset/v6/def"
    assert 'id="waf-note"' not in staff_client.get(URL).content.decode()


# -- chart ---------------------------------------------------------------------------------------


def test_the_chart_shows_recorded_outcomes(staff_client):
    now = time.time()
    for _ in range(5):
        metrics.record("accepted", now=now - 37 * 60)
    for _ in range(3):
        metrics.record("banned", now=now - 36 * 60)
    metrics.record("rate_limited", now=now - 36 * 60)
    metrics.record("rate_limited", now=now - 36 * 60)
    metrics.record("dropped", now=now - 36 * 60)
    metrics.record("banned", now=now - 4 * 3600)  # outside 3 h, inside 6 h

    response = staff_client.get(URL)
    assert response.context["traffic"].totals == {"accepted": 5, "dropped": 1, "rate_limited": 2, "banned": 3}
    content = response.content.decode()
    assert 'id="total-all">11<' in content
    assert 'id="total-accepted">5<' in content
    assert 'id="total-banned">3<' in content
    assert 'id="total-rate_limited">2<' in content
    assert 'id="total-dropped">1<' in content
    chart = response.context["chart"]
    assert len(chart["hovers"]) == 2  # two minutes with traffic
    assert {hover["detail"] for hover in chart["hovers"]} == {
        "accepted 5",
        "dropped 1, rate-limited 2, banned 3",
    }
    assert all(series["d"] for series in chart["series"])  # each outcome drew a bar
    assert "No requests recorded" not in content

    wide = staff_client.get(URL, {"hours": 6})
    assert wide.context["traffic"].totals["banned"] == 4
    assert "Traffic, last 6 h" in wide.content.decode()
    assert len(wide.context["traffic"].rows) == 360


def test_the_chart_says_when_there_is_no_traffic(staff_client):
    response = staff_client.get(URL, {"hours": 1})
    content = response.content.decode()
    assert "No requests recorded in this window" in content
    assert len(response.context["traffic"].rows) == 60
    assert len(response.context["chart"]["x_ticks"]) == 6  # one label every 10 minutes


# -- cost ----------------------------------------------------------------------------------------


def test_the_page_runs_a_bounded_number_of_queries(staff_client, staff, django_assert_max_num_queries):
    now = timezone.now()
    FlaggedIP.objects.bulk_create(
        FlaggedIP(ip=f"198.51.100.{n}", score=n, reasons={"rate": n}, expires_at=now + dt.timedelta(days=1))
        for n in range(80)
    )
    Ban.objects.bulk_create(
        Ban(network=f"203.0.{n // 250}.{n % 250}/32", version=4, created_by=staff, waf_state="skipped")
        for n in range(150)
    )
    Ban.objects.filter(pk=Ban.objects.first().pk).update(waf_message="over the WAF cap of 100 addresses")
    with django_assert_max_num_queries(15):
        response = staff_client.get(URL, {"status": "all", "reason": "rate"})
    assert response.status_code == 200
    assert len(page_ips(response)) == 50
    assert len(response.context["bans_page"].object_list) == 100


def test_staff_cannot_ban_their_own_address(staff_client):
    """The test client's address is 127.0.0.1: banning it would lock the operator out."""
    response = staff_client.post("/security/ban/", {"network": "127.0.0.0/8", "duration": "1h"})
    assert response.status_code == 400
    assert "contains your own address (127.0.0.1)" in response.content.decode()
    make_flag("127.0.0.1")
    response = staff_client.post("/security/flagged/", {"action": "ban", "ip": "127.0.0.1"}, follow=True)
    assert any("your own address" in message for message in flashes(response))
    assert not Ban.objects.exists()

"""The security admin: ban changes go through the services (audited), actions never crash."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone

from security.models import Ban, BanAudit, FlaggedIP
from security.services import ban_network
from testing import flashes

BAN_LIST = "/admin/security/ban/"
FLAG_LIST = "/admin/security/flaggedip/"


@pytest.fixture
def superuser(db: Any) -> Any:
    return get_user_model().objects.create_superuser("root", "root@example.com", "pw-root-123456")


@pytest.fixture
def admin(superuser: Any) -> Client:
    client = Client()
    client.force_login(superuser)
    return client


def make_flag(ip: str, score: int = 10) -> FlaggedIP:
    return FlaggedIP.objects.create(
        ip=ip, score=score, reasons={"rate": 3}, expires_at=timezone.now() + dt.timedelta(days=7)
    )


def act(client: Client, url: str, action: str, pks: list[Any]) -> Any:
    return client.post(url, {"action": action, "_selected_action": [str(pk) for pk in pks]}, follow=True)


def test_the_changelists_and_forms_render(admin):
    ban_network(network="203.0.113.7", reason="x", duration=dt.timedelta(hours=1))
    make_flag("198.51.100.1")
    for url in (BAN_LIST, FLAG_LIST, "/admin/security/banaudit/", f"{BAN_LIST}add/"):
        assert admin.get(url).status_code == 200, url
    assert admin.get(f"{BAN_LIST}?q=203.0.113&source=manual&waf_state=pending").status_code == 200
    assert admin.get(f"{FLAG_LIST}?q=198.51&status=open").status_code == 200
    ban = Ban.objects.get()
    assert admin.get(f"{BAN_LIST}{ban.pk}/change/").status_code == 200
    flag = FlaggedIP.objects.get()
    assert admin.get(f"{FLAG_LIST}{flag.pk}/change/").status_code == 200


def test_ban_selected_flags_for_24h_and_7d(admin, superuser):
    first, second, third = make_flag("203.0.113.1", 30), make_flag("203.0.113.2", 20), make_flag("2001:db8::5")
    response = act(admin, FLAG_LIST, "ban_24h", [first.pk, second.pk])
    assert any(message.startswith("Banned 2 for 24h") for message in flashes(response))
    bans = {ban.network: ban for ban in Ban.objects.all()}
    assert set(bans) == {"203.0.113.1/32", "203.0.113.2/32"}
    for ban in bans.values():
        assert ban.created_by == superuser
        assert abs((ban.expires_at - timezone.now() - dt.timedelta(hours=24)).total_seconds()) < 60
        assert "rate x3" in ban.reason
    assert BanAudit.objects.filter(action="ban", actor=superuser).count() == 2
    assert set(FlaggedIP.objects.filter(status="banned").values_list("ip", flat=True)) == {
        "203.0.113.1",
        "203.0.113.2",
    }

    act(admin, FLAG_LIST, "ban_7d", [third.pk])
    ban = Ban.objects.get(network="2001:db8::5/128")
    assert abs((ban.expires_at - timezone.now() - dt.timedelta(days=7)).total_seconds()) < 60


def test_dismiss_selected_flags(admin):
    first, second = make_flag("203.0.113.1"), make_flag("203.0.113.2")
    response = act(admin, FLAG_LIST, "dismiss_selected", [first.pk, second.pk])
    assert "Dismissed 2 flagged IPs." in flashes(response)
    assert set(FlaggedIP.objects.values_list("status", flat=True)) == {"dismissed"}
    assert not Ban.objects.exists()


def test_unban_selected(admin, superuser):
    one = ban_network(network="203.0.113.7", duration=dt.timedelta(hours=1))
    two = ban_network(network="198.51.100.0/24")
    keep = ban_network(network="192.0.2.9")
    response = act(admin, BAN_LIST, "unban_selected", [one.pk, two.pk])
    assert any(message.startswith("Unbanned 2") for message in flashes(response))
    assert list(Ban.objects.values_list("network", flat=True)) == [keep.network]
    audits = BanAudit.objects.filter(action="unban")
    assert set(audits.values_list("network", flat=True)) == {"203.0.113.7/32", "198.51.100.0/24"}
    assert {audit.actor for audit in audits} == {superuser}


def test_bulk_delete_is_replaced_by_unban(admin):
    response = admin.get(BAN_LIST)
    actions = dict(response.context["action_form"].fields["action"].choices)
    assert "delete_selected" not in actions
    assert {"unban_selected", "sync_waf_now"} <= set(actions)


def test_sync_to_waf_now_does_not_crash_without_a_waf(admin, settings):
    settings.WAF_IPSET_V4_ARN = ""
    settings.WAF_IPSET_V6_ARN = ""
    ban = ban_network(network="203.0.113.7", duration=dt.timedelta(hours=1))
    response = act(admin, BAN_LIST, "sync_waf_now", [ban.pk])
    assert response.status_code == 200
    messages = flashes(response)
    assert len(messages) == 1
    assert "WAF sync" in messages[0]
    assert Ban.objects.filter(pk=ban.pk).exists()


def test_sync_to_waf_now_without_the_waf_module_still_answers(admin, monkeypatch):
    """If security.waf cannot be imported, the task fails inline, and the fallback says so."""
    import sys

    monkeypatch.setitem(sys.modules, "security.waf", None)  # makes `import security.waf` raise ImportError
    ban = ban_network(network="203.0.113.7", duration=dt.timedelta(hours=1))
    response = act(admin, BAN_LIST, "sync_waf_now", [ban.pk])
    assert response.status_code == 200
    assert any("not available" in message for message in flashes(response))


def test_add_form_bans_through_the_service(admin, superuser):
    expires = (timezone.now() + dt.timedelta(days=2)).replace(microsecond=0)
    response = admin.post(
        f"{BAN_LIST}add/",
        {
            "network": "203.0.113.77",
            "reason": "seen in the logs",
            "expires_at_0": expires.strftime("%Y-%m-%d"),
            "expires_at_1": expires.strftime("%H:%M:%S"),
        },
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    ban = Ban.objects.get()
    assert (ban.network, ban.reason, ban.source, ban.created_by) == (
        "203.0.113.77/32",
        "seen in the logs",
        "manual",
        superuser,
    )
    assert abs((ban.expires_at - expires).total_seconds()) < 5
    audit = BanAudit.objects.get()
    assert (audit.action, audit.network, audit.actor) == ("ban", "203.0.113.77/32", superuser)


def test_add_form_shows_errors_for_wide_or_garbage_networks(admin):
    for network, error in (("0.0.0.0/0", "too wide to ban"), ("garbage", "is not an IPv4/IPv6")):
        response = admin.post(f"{BAN_LIST}add/", {"network": network, "reason": ""})
        assert response.status_code == 200
        assert error in response.content.decode()
    past = timezone.now() - dt.timedelta(hours=1)
    response = admin.post(
        f"{BAN_LIST}add/",
        {
            "network": "203.0.113.5",
            "expires_at_0": past.strftime("%Y-%m-%d"),
            "expires_at_1": past.strftime("%H:%M:%S"),
        },
    )
    assert "must be in the future" in response.content.decode()
    assert not Ban.objects.exists()
    assert not BanAudit.objects.exists()


def test_change_form_extends_through_the_service(admin, superuser):
    ban = ban_network(network="203.0.113.7", reason="first", duration=dt.timedelta(hours=1))
    response = admin.post(
        f"{BAN_LIST}{ban.pk}/change/", {"reason": "longer now", "expires_at_0": "", "expires_at_1": ""}
    )
    assert response.status_code == 302
    ban.refresh_from_db()
    assert (ban.reason, ban.expires_at, ban.network) == ("longer now", None, "203.0.113.7/32")
    assert BanAudit.objects.filter(action="extend", actor=superuser).count() == 1


def test_delete_view_unbans_through_the_service(admin, superuser):
    ban = ban_network(network="203.0.113.7")
    response = admin.post(f"{BAN_LIST}{ban.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    assert not Ban.objects.exists()
    assert BanAudit.objects.filter(action="unban", actor=superuser).exists()


def test_audit_log_is_read_only(admin):
    ban_network(network="203.0.113.7")
    audit = BanAudit.objects.get()
    assert admin.get("/admin/security/banaudit/add/").status_code == 403
    assert admin.post(f"/admin/security/banaudit/{audit.pk}/delete/", {"post": "yes"}).status_code == 403
    assert BanAudit.objects.count() == 1

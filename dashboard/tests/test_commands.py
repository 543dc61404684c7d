from __future__ import annotations

from io import StringIO

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from collector.models import Event, HourlyTotal
from sites.models import Site

pytestmark = pytest.mark.django_db


def test_createsite_prints_the_new_sites_id(capsys):
    user = get_user_model().objects.create_user("owner")
    call_command("createsite", "https://www.Example.org/", "--timezone", "Europe/Paris", "--owner", "owner")
    site_id = capsys.readouterr().out.strip()
    site = Site.objects.get(public_id=site_id)
    assert (site.domain, site.timezone, site.owner) == ("example.org", "Europe/Paris", user)
    assert len(site_id) == 8


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["example.org", "--timezone", "Mars/Olympus"], "not a known time zone"),
        (["example.org", "--owner", "nobody"], "no user named 'nobody'"),
    ],
)
def test_createsite_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("createsite", *args)


def test_createsite_refuses_a_duplicate_domain():
    call_command("createsite", "example.org")
    with pytest.raises(CommandError, match="already exists"):
        call_command("createsite", "www.example.org")


def test_seed_demo_fills_the_demo_site_once(capsys):
    call_command("seed_demo", "--days", "3", "--visitors-per-day", "20")
    site = Site.objects.get(domain="demo.fathom.test")
    events = Event.objects.filter(site=site).count()
    assert events > 50
    assert sum(HourlyTotal.objects.filter(site=site).values_list("pageviews", flat=True)) > 20
    assert get_user_model().objects.get(username="demo").check_password("demo-password")
    call_command("seed_demo", "--days", "3", "--visitors-per-day", "20")
    assert "already has data" in capsys.readouterr().out
    assert Event.objects.filter(site=site).count() == events


def test_seed_demo_fills_the_demo_site_on_clickhouse_once(clickhouse_store, capsys):
    call_command("seed_demo", "--days", "3", "--visitors-per-day", "20")
    site = Site.objects.get(domain="demo.fathom.test")
    count = "SELECT count() FROM events WHERE site_id = %(s)s"
    events = clickhouse_store.query(count, parameters={"s": site.id}).result_rows[0][0]
    assert events > 50
    assert Event.objects.count() == HourlyTotal.objects.count() == 0
    call_command("seed_demo", "--days", "3", "--visitors-per-day", "20")
    assert "already has data" in capsys.readouterr().out
    assert clickhouse_store.query(count, parameters={"s": site.id}).result_rows[0][0] == events
    call_command("seed_demo", "--days", "1", "--visitors-per-day", "5", "--reset")
    assert 0 < clickhouse_store.query(count, parameters={"s": site.id}).result_rows[0][0] < events


def test_the_demo_user_is_a_superuser_who_can_open_the_security_dashboard(client):
    call_command("seed_demo", "--days", "1", "--visitors-per-day", "5", stdout=StringIO())
    assert get_user_model().objects.get(username="demo").is_superuser
    assert client.login(username="demo", password="demo-password")
    assert client.get("/security/").status_code == 200
    assert client.get("/admin/").status_code == 200


def test_the_admin_lists_and_revokes_api_keys(client, django_user_model):
    from dashboard.api_keys import apikey_create
    from dashboard.models import ApiKey

    admin = django_user_model.objects.create_superuser("root", "root@example.com", "pw")
    key, secret = apikey_create(user=admin, name="CI")
    client.force_login(admin)
    page = client.get("/admin/dashboard/apikey/")
    assert page.status_code == 200
    assert key.prefix in page.content.decode()
    assert secret not in page.content.decode()
    response = client.post("/admin/dashboard/apikey/", {"action": "revoke", "_selected_action": [key.pk]})
    assert response.status_code == 302
    assert ApiKey.objects.get().revoked_at is not None


def test_createsite_without_an_owner_says_how_to_give_it_one(client, django_user_model):
    out, err = StringIO(), StringIO()
    call_command("createsite", "example.org", stdout=out, stderr=err)
    site = Site.objects.get(public_id=out.getvalue().strip())
    assert site.owner is None
    hint = err.getvalue()
    assert "No owner: nobody sees example.org on the dashboard" in hint
    assert "createsite example.org --owner USERNAME" in hint
    # The page the hint names is where a superuser sets the owner.
    (url,) = [line.strip() for line in hint.splitlines() if line.strip().startswith("http")]
    path = url.removeprefix(settings.BASE_URL)
    client.force_login(django_user_model.objects.create_superuser("root", "root@example.com", "pw"))
    page = client.get(path)
    assert page.status_code == 200
    assert b"example.org" in page.content


def test_createsite_with_an_owner_prints_only_the_id():
    get_user_model().objects.create_user("owner")
    out, err = StringIO(), StringIO()
    call_command("createsite", "example.org", "--owner", "owner", stdout=out, stderr=err)
    assert len(out.getvalue().strip()) == 8
    assert err.getvalue() == ""

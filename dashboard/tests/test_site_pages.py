"""The sites pages as a signed-in owner sees them: the list, adding a site and its snippet, the
settings sections (general, hostnames, shared links, teammates and invitations, email reports,
API keys) and deleting a site with everything recorded for it.

Traffic is sent through the real collector (/api/event, ingest inline), as testing.replay does."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import check_password
from django.core import mail
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from collector.models import DailyBreakdown, Event, HourlyTotal, Visit
from dashboard.models import ApiKey, Invitation, Membership, ReportSubscription, Role, SharedLink
from dashboard.site_services import hash_token
from sites.models import Site
from testing import CHROME_UA, send

pytestmark = pytest.mark.django_db

User = get_user_model()


@pytest.fixture
def owned_site(owner: Any) -> Site:
    """conftest's `site`, owned by `owner`."""
    return Site.objects.create(domain="example.com", name="Example", timezone="UTC", owner=owner)


def visit(site: Site, ip: str, path: str = "/", *, at: dt.datetime | None = None, monkeypatch: Any = None) -> None:
    """One pageview from `ip` (a distinct visitor per address) through the collector."""
    if at is not None:
        monkeypatch.setattr("collector.views.now_ms", lambda: int(at.timestamp() * 1000))
    response = send(
        Client(HTTP_USER_AGENT=CHROME_UA),
        {"n": "pageview", "u": f"https://{site.domain}{path}", "sid": site.public_id},
        REMOTE_ADDR="10.0.0.2",
        HTTP_X_FORWARDED_FOR=ip,
    )
    assert response.status_code == 202
    assert not response.has_header("X-Dropped")


def body(response: Any) -> str:
    return response.content.decode()


def settings_url(site: Site, rest: str = "") -> str:
    return f"/sites/{site.public_id}/settings/{rest}"


# -- the list ---------------------------------------------------------------------------------


def test_list_shows_todays_visitors_and_a_sparkline(owner_client, owned_site, owner, monkeypatch, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    now = timezone.now()
    for n in range(3):
        visit(owned_site, f"198.51.100.{n + 1}", at=now, monkeypatch=monkeypatch)
    visit(owned_site, "198.51.100.1", "/pricing", at=now, monkeypatch=monkeypatch)  # same visitor again
    for n in range(2):
        visit(owned_site, f"198.51.100.{n + 50}", at=now - dt.timedelta(days=2), monkeypatch=monkeypatch)
    quiet = Site.objects.create(domain="quiet.example", name="Quiet", owner=owner)

    response = owner_client.get("/")
    assert response.status_code == 200
    html = body(response)
    card = re.search(rf'<li class="card site-card" data-site="{owned_site.public_id}">(.*?)</li>', html, re.S).group(1)
    assert "Example" in card
    assert "example.com" in card
    assert re.search(r'data-stat="today">3</span> <span class="stat-label">visitors today', card)
    assert 'data-stat="total">5</span> visitors in the last 30 days' in card
    assert '<svg class="sparkline"' in card
    assert 'aria-label="Visitors per day over the last 30 days, 5 in all"' in card
    points = re.search(r'<polyline class="sparkline-line" points="([^"]+)"', card).group(1).split()
    assert len(points) == 30
    ys = [float(p.split(",")[1]) for p in points]
    assert ys[-1] == min(ys)  # today is the highest point (SVG y grows downwards)
    assert ys[-3] < ys[0]  # two days ago is above the baseline
    assert "Owner" in card

    quiet_card = re.search(rf'data-site="{quiet.public_id}">(.*?)</li>', html, re.S).group(1)
    assert 'data-stat="today">0</span>' in quiet_card
    assert "No visitors in the last 30 days" in quiet_card


def test_list_reads_one_rollup_query_per_site(owner_client, owner):
    for n in range(6):
        Site.objects.create(domain=f"site{n}.example", owner=owner)
    owner_client.get("/")  # warm: the first request of a process loads the ban list
    with CaptureQueriesContext(connection) as few:
        assert owner_client.get("/").status_code == 200
    Site.objects.create(domain="site6.example", owner=owner)
    with CaptureQueriesContext(connection) as more:
        assert owner_client.get("/").status_code == 200
    assert len(more) - len(few) == 1
    assert len(more) == 5 + 7  # session, user, count, sites, roles, and one per site


def test_list_empty_state_and_teammate_sites(owner_client, owner):
    html = body(owner_client.get("/"))
    assert "Add your first site" in html
    other = User.objects.create_user("other")
    theirs = Site.objects.create(domain="theirs.example", name="Theirs", owner=other)
    Site.objects.create(domain="hidden.example", name="Hidden", owner=other)
    Membership.objects.create(site=theirs, user=owner, role=Role.VIEWER)
    html = body(owner_client.get("/"))
    assert "theirs.example" in html
    assert "Read-only" in html
    assert "hidden.example" not in html
    assert "Hidden" not in html


def test_list_search_and_pagination(owner_client, owner, monkeypatch):
    monkeypatch.setattr("dashboard.views.sites.SITES_PER_PAGE", 3)
    for n in range(8):
        Site.objects.create(domain=f"s{n}.example", name=f"Site {n}", owner=owner)
    html = body(owner_client.get("/"))
    assert "Page 1 of 3" in html
    assert html.count('class="card site-card"') == 3
    html = body(owner_client.get("/", {"q": "s7.example"}))
    assert "s7.example" in html
    assert "s1.example" not in html
    assert "No site matches" in body(owner_client.get("/", {"q": "zzz"}))
    assert owner_client.get("/", {"page": "999"}).status_code == 200
    assert owner_client.get("/", {"page": "x"}).status_code == 200


# -- add a site -------------------------------------------------------------------------------


def test_add_site_shows_the_snippet(owner_client, owner):
    page = owner_client.get("/sites/new/")
    assert page.status_code == 200
    assert '<option value="Europe/Paris">Europe/Paris</option>' in body(page)
    response = owner_client.post(
        "/sites/new/", {"domain": "https://www.Shop.Example.net/landing", "name": "", "timezone": "Europe/Paris"}
    )
    site = Site.objects.get(domain="shop.example.net")
    assert site.owner == owner
    assert site.name == "shop.example.net"
    assert site.timezone == "Europe/Paris"
    assert response["Location"] == f"/sites/{site.public_id}/snippet/"
    snippet = owner_client.get(response["Location"])
    html = body(snippet)
    expected = f"&lt;script defer src=&quot;http://testserver/script.js&quot; data-site=&quot;{site.public_id}&quot;&gt;&lt;/script&gt;"
    assert expected in html
    assert 'data-copy-target="snippet"' in html
    assert "shop.example.net is added" in html
    assert 'data-status="waiting"' in html


def test_snippet_says_when_pageviews_arrive(owner_client, owned_site, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    visit(owned_site, "198.51.100.9")
    assert 'data-status="receiving"' in body(owner_client.get(f"/sites/{owned_site.public_id}/snippet/"))


@pytest.mark.parametrize(
    ("domain", "error"),
    [
        ("", "This field is required."),
        ("not a domain", "Enter a domain like example.com."),
        ("localhost", "Enter a domain like example.com."),
        ("192.168.0.1", "Enter a domain like example.com."),
        ("example.com:8080", "Leave out the port"),
        ("-bad-.example", "Enter a domain like example.com."),
        ("EXAMPLE.com", "A site with this domain already exists."),
        ("www.example.com", "A site with this domain already exists."),
    ],
)
def test_add_site_refuses_bad_or_taken_domains(owner_client, owned_site, domain, error):
    response = owner_client.post("/sites/new/", {"domain": domain, "timezone": "UTC"})
    assert response.status_code == 200
    assert error in body(response)
    assert Site.objects.count() == 1


def test_add_site_refuses_an_unknown_time_zone(owner_client):
    response = owner_client.post("/sites/new/", {"domain": "new.example", "timezone": "Mars/Olympus"})
    assert response.status_code == 200
    assert "Select a valid choice" in body(response)
    assert not Site.objects.filter(domain="new.example").exists()


def test_international_domain_is_stored_as_punycode(owner_client):
    owner_client.post("/sites/new/", {"domain": "bücher.example", "timezone": "UTC"})
    assert Site.objects.filter(domain="xn--bcher-kva.example").exists()


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("ß.example", "xn--zca.example"),  # IDNA 2008 / UTS-46, as browsers: not "ss.example"
        ("Bücher.Example", "xn--bcher-kva.example"),
        ("例え.テスト", "xn--r8jz45g.xn--zckzah"),
        ("\uff45\uff58\uff41\uff4d\uff50\uff4c\uff45\u3002org", "example.org"),  # full-width letters and dot are mapped
        ("xn--nxasmq6b.example", "xn--nxasmq6b.example"),  # valid punycode stays
        ("r3---sn-ab5l6n67.example", "r3---sn-ab5l6n67.example"),  # browsers accept such labels
    ],
)
def test_international_domains_are_stored_as_browsers_send_them(owner_client, typed, stored):
    response = owner_client.post("/sites/new/", {"domain": typed, "timezone": "UTC"})
    assert response.status_code == 302, body(response)
    assert Site.objects.filter(domain=stored).exists()


@pytest.mark.parametrize("domain", ["xn--zz.com", "xn--.com", "\N{GRINNING FACE}.com", "a\N{SNOWMAN}b.example"])
def test_add_site_refuses_names_idna_refuses(owner_client, domain):
    response = owner_client.post("/sites/new/", {"domain": domain, "timezone": "UTC"})
    assert response.status_code == 200
    assert "This is not a valid domain name" in body(response)
    assert not Site.objects.exists()


def test_a_sharp_s_site_counts_the_pageviews_browsers_send(owner_client, settings):
    """The collector compares the hit's hostname (punycode, from location.href) with the stored
    domain: the two must be written the same way."""
    settings.TRUSTED_PROXY_HOPS = 1
    owner_client.post("/sites/new/", {"domain": "straße.example", "timezone": "UTC"})
    site = Site.objects.get()
    hit = {"n": "pageview", "u": "https://www.xn--strae-oqa.example/", "sid": site.public_id}
    response = send(Client(HTTP_USER_AGENT=CHROME_UA), hit, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert response.status_code == 202
    assert not response.has_header("X-Dropped")


@pytest.mark.parametrize(
    "name", ["Shop\nBlog", "Shop\r\nBcc: x@evil.example", "Tab\there", "Line\u2028sep", "\u202eliam"]
)
def test_add_site_refuses_control_characters_in_the_name(owner_client, name):
    response = owner_client.post("/sites/new/", {"domain": "new.example", "name": name, "timezone": "UTC"})
    assert response.status_code == 200
    assert "The name must be a single line of text" in body(response)
    assert not Site.objects.exists()


# -- general settings -------------------------------------------------------------------------


def test_settings_page_ids_are_unique_and_every_input_is_labelled(owner_client, owned_site):
    owner_client.post(settings_url(owned_site, "api-keys/"), {"name": "k"})  # the page with every section filled
    SharedLink.objects.create(site=owned_site, token="s" * 43)
    Membership.objects.create(site=owned_site, user=User.objects.create_user("mate"))
    html = body(owner_client.get(settings_url(owned_site)))
    ids = re.findall(r'\sid="([^"]+)"', html)
    assert len(ids) == len(set(ids)), sorted(i for i in ids if ids.count(i) > 1)
    for tag in re.findall(r"<(?:input|select|textarea)\b[^>]*>", html):
        if 'type="hidden"' in tag or 'type="submit"' in tag:
            continue
        input_id = re.search(r'\sid="([^"]+)"', tag)
        assert input_id, tag
        assert f'for="{input_id.group(1)}"' in html, tag


def test_settings_edits_persist(owner_client, owned_site):
    page = owner_client.get(settings_url(owned_site))
    assert page.status_code == 200
    html = body(page)
    for section in ("general", "shared-links", "teammates", "reports", "api-keys", "danger"):
        assert f'id="{section}"' in html
    response = owner_client.post(
        settings_url(owned_site),
        {"name": "Example Inc.", "timezone": "America/New_York", "allowed_hostnames": "Shop.Example.NET\n\n*\n"},
    )
    assert response["Location"] == settings_url(owned_site) + "#general"
    owned_site.refresh_from_db()
    assert (owned_site.name, owned_site.timezone) == ("Example Inc.", "America/New_York")
    assert owned_site.hostname_list() == ["shop.example.net", "*"]
    assert "Settings saved." in body(owner_client.get(response["Location"]))


def test_settings_change_reaches_the_collector_at_once(owner_client, owned_site, settings):
    """A hostname added in settings is accepted by the next hit, not after the site cache expires."""
    settings.TRUSTED_PROXY_HOPS = 1
    hit = {"n": "pageview", "u": "https://blog.other.org/", "sid": owned_site.public_id}
    first = send(Client(HTTP_USER_AGENT=CHROME_UA), hit, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert first["X-Dropped"] == "hostname"
    owner_client.post(
        settings_url(owned_site), {"name": "Example", "timezone": "UTC", "allowed_hostnames": "blog.other.org"}
    )
    second = send(Client(HTTP_USER_AGENT=CHROME_UA), hit, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
    assert second.status_code == 202
    assert not second.has_header("X-Dropped")


@pytest.mark.parametrize(
    ("lines", "error"),
    [
        ("good.example\nnot a host", "&#x27;not a host&#x27; is not a hostname"),
        ("*.example.org", "&#x27;*.example.org&#x27;: wildcards like *.example.com are not supported"),
        ("http://x.example/path", "is not a hostname"),
        ("a" * 64 + ".example", "is not a hostname"),
    ],
)
def test_settings_hostnames_are_validated(owner_client, owned_site, lines, error):
    response = owner_client.post(
        settings_url(owned_site), {"name": "Changed", "timezone": "UTC", "allowed_hostnames": lines}
    )
    assert response.status_code == 200
    assert error in body(response)
    owned_site.refresh_from_db()
    assert owned_site.name == "Example"
    assert owned_site.allowed_hostnames == ""
    # the page header still shows the saved name, not the refused input
    assert "<h1>Example " in body(response)


@pytest.mark.parametrize("name", ["Shop\nBlog", "Shop\rBlog", "x\x1b[31m", "a\x85b"])
def test_settings_refuse_control_characters_in_the_name(owner_client, owned_site, name):
    response = owner_client.post(settings_url(owned_site), {"name": name, "timezone": "UTC", "allowed_hostnames": ""})
    assert response.status_code == 200
    assert "The name must be a single line of text" in body(response)
    owned_site.refresh_from_db()
    assert owned_site.name == "Example"


def test_settings_hostnames_idna_and_www(owner_client, owned_site, settings):
    response = owner_client.post(
        settings_url(owned_site),
        {
            "name": "Example",
            "timezone": "UTC",
            "allowed_hostnames": "ß.example\nwww.Shop.example.net\nshop.example.net",
        },
    )
    assert response.status_code == 302
    owned_site.refresh_from_db()
    # "www." goes: the collector drops it from every hit's hostname before comparing
    assert owned_site.hostname_list() == ["xn--zca.example", "shop.example.net"]
    settings.TRUSTED_PROXY_HOPS = 1
    for url in ("https://www.shop.example.net/", "https://xn--zca.example/"):
        hit = {"n": "pageview", "u": url, "sid": owned_site.public_id}
        sent = send(Client(HTTP_USER_AGENT=CHROME_UA), hit, REMOTE_ADDR="10.0.0.2", HTTP_X_FORWARDED_FOR="198.51.100.7")
        assert not sent.has_header("X-Dropped"), url
    for bad in ("xn--zz.example", "\N{GRINNING FACE}.example"):
        response = owner_client.post(
            settings_url(owned_site), {"name": "Example", "timezone": "UTC", "allowed_hostnames": bad}
        )
        assert response.status_code == 200
        assert "is not a hostname" in body(response)


def test_settings_bad_time_zone(owner_client, owned_site):
    response = owner_client.post(settings_url(owned_site), {"name": "Example", "timezone": "Nowhere/Land"})
    assert response.status_code == 200
    assert "Select a valid choice" in body(response)


# -- delete -----------------------------------------------------------------------------------


def test_delete_needs_the_domain_typed_and_removes_every_row(owner_client, owned_site, owner, settings):
    settings.TRUSTED_PROXY_HOPS = 1
    visit(owned_site, "198.51.100.1")
    visit(owned_site, "198.51.100.2", "/about")
    other = Site.objects.create(domain="other.example", owner=owner)
    visit(other, "198.51.100.3")
    Membership.objects.create(site=owned_site, user=User.objects.create_user("mate"), role=Role.VIEWER)
    SharedLink.objects.create(site=owned_site, token="t" * 43)
    ReportSubscription.objects.create(site=owned_site, user=owner, frequency="weekly")
    for model in (Event, Visit, HourlyTotal, DailyBreakdown):
        assert model.objects.filter(site_id=owned_site.pk).exists()

    page = owner_client.get(settings_url(owned_site, "delete/"))
    assert "Type example.com to confirm" in body(page)
    wrong = owner_client.post(settings_url(owned_site, "delete/"), {"confirm": "example.org"})
    assert wrong.status_code == 200
    assert "That is not example.com. Nothing was deleted." in body(wrong)
    assert Site.objects.filter(pk=owned_site.pk).exists()

    response = owner_client.post(settings_url(owned_site, "delete/"), {"confirm": " Example.com "})
    assert response["Location"] == "/"
    assert "example.com and all its stats are deleted." in body(owner_client.get("/"))
    assert not Site.objects.filter(pk=owned_site.pk).exists()
    for model in (Event, Visit, HourlyTotal, DailyBreakdown):
        assert not model.objects.filter(site_id=owned_site.pk).exists(), model
        assert model.objects.filter(site_id=other.pk).exists(), model
    assert not Membership.objects.filter(site_id=owned_site.pk).exists()
    assert not SharedLink.objects.filter(site_id=owned_site.pk).exists()
    assert not ReportSubscription.objects.filter(site_id=owned_site.pk).exists()
    # a hit still on its way for the deleted site is refused, not counted
    gone = send(
        Client(HTTP_USER_AGENT=CHROME_UA), {"n": "pageview", "u": "https://example.com/", "sid": owned_site.public_id}
    )
    assert gone.status_code == 404


def test_delete_in_batches(owner_client, owned_site, settings, monkeypatch):
    settings.TRUSTED_PROXY_HOPS = 1
    monkeypatch.setattr("dashboard.site_services.DELETE_BATCH", 2)
    for n in range(5):
        visit(owned_site, f"198.51.100.{n + 1}", f"/p{n}")
    owner_client.post(settings_url(owned_site, "delete/"), {"confirm": "example.com"})
    assert not Event.objects.filter(site_id=owned_site.pk).exists()
    assert not DailyBreakdown.objects.filter(site_id=owned_site.pk).exists()


# -- shared links -----------------------------------------------------------------------------


def test_shared_link_create_list_and_revoke(owner_client, owned_site):
    response = owner_client.post(settings_url(owned_site, "shared-links/"), {"name": "Investors", "password": ""})
    assert response["Location"] == settings_url(owned_site) + "#shared-links"
    link = SharedLink.objects.get(site=owned_site)
    assert link.name == "Investors"
    assert link.password_hash == ""
    assert len(link.token) == 43
    html = body(owner_client.get(settings_url(owned_site)))
    assert f'value="http://testserver/share/{link.token}/"' in html
    assert f'data-copy-target="share-{link.pk}"' in html

    owner_client.post(settings_url(owned_site, "shared-links/"), {"name": "Board", "password": "s3cret-words"})
    protected = SharedLink.objects.get(site=owned_site, name="Board")
    assert protected.password_hash
    assert "s3cret-words" not in protected.password_hash
    assert check_password("s3cret-words", protected.password_hash)
    assert protected.has_password
    assert ">Password</span>" in body(owner_client.get(settings_url(owned_site)))

    response = owner_client.post(settings_url(owned_site, f"shared-links/{link.pk}/revoke/"))
    assert response["Location"] == settings_url(owned_site) + "#shared-links"
    link.refresh_from_db()
    assert link.revoked_at is not None
    html = body(owner_client.get(settings_url(owned_site)))
    assert link.token not in html
    assert protected.token in html


def test_shared_link_needs_a_name(owner_client, owned_site):
    response = owner_client.post(settings_url(owned_site, "shared-links/"), {"name": "", "password": "x"})
    assert response.status_code == 200
    assert "This field is required." in body(response)
    assert not SharedLink.objects.exists()


def test_shared_link_of_another_site_cannot_be_revoked_here(owner_client, owned_site):
    other = Site.objects.create(domain="other.example", owner=User.objects.create_user("other"))
    theirs = SharedLink.objects.create(site=other, token="x" * 43)
    assert owner_client.post(settings_url(owned_site, f"shared-links/{theirs.pk}/revoke/")).status_code == 404
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


# -- API keys ---------------------------------------------------------------------------------


def test_api_key_is_shown_once_and_stored_hashed(owner_client, owned_site, owner):
    response = owner_client.post(settings_url(owned_site, "api-keys/"), {"name": "Grafana"})
    assert response.status_code == 200
    html = body(response)
    secret = re.search(r'<pre class="snippet" id="new-key">(fk_[A-Za-z0-9_-]{40})</pre>', html).group(1)
    key = ApiKey.objects.get(user=owner)
    assert key.name == "Grafana"
    assert key.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert key.prefix == secret[:8]
    assert secret not in key.key_hash
    assert "it will not be shown again" in html
    assert "no-store" in response["Cache-Control"]
    assert f"Authorization: Bearer {secret}" in html
    assert "/api/v1/stats/aggregate?site_id=example.com" in html
    # the key works against the Stats API
    api = Client().get("/api/v1/stats/aggregate", {"site_id": "example.com"}, HTTP_AUTHORIZATION=f"Bearer {secret}")
    assert api.status_code == 200

    later = body(owner_client.get(settings_url(owned_site)))
    assert secret not in later
    assert f"{secret[:8]}…" in later
    assert "Grafana" in later


def test_api_key_revoke(owner_client, owned_site, owner):
    owner_client.post(settings_url(owned_site, "api-keys/"), {"name": "Script"})
    key = ApiKey.objects.get(user=owner)
    response = owner_client.post(settings_url(owned_site, f"api-keys/{key.pk}/revoke/"))
    assert response["Location"] == settings_url(owned_site) + "#api-keys"
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert "You have no API keys." in body(owner_client.get(settings_url(owned_site)))


def test_someone_elses_api_key_cannot_be_revoked(owner_client, owned_site):
    other = User.objects.create_user("other")
    from dashboard.api_keys import apikey_create

    key, _ = apikey_create(user=other, name="theirs")
    assert owner_client.post(settings_url(owned_site, f"api-keys/{key.pk}/revoke/")).status_code == 404
    key.refresh_from_db()
    assert key.revoked_at is None


def test_api_key_needs_a_name(owner_client, owned_site):
    response = owner_client.post(settings_url(owned_site, "api-keys/"), {"name": "  "})
    assert response.status_code == 200
    assert "This field is required." in body(response)
    assert not ApiKey.objects.exists()


# -- teammates and invitations ----------------------------------------------------------------


def invite(client: Client, site: Site, email: str, role: str = "viewer") -> Any:
    return client.post(settings_url(site, "teammates/invite/"), {"email": email, "role": role})


def link_in(message: Any) -> str:
    return re.search(r"http://testserver(/invitations/[A-Za-z0-9_-]+/)", message.body).group(1)


def test_invitation_end_to_end_for_a_new_person(owner_client, owned_site, owner):
    response = invite(owner_client, owned_site, "grace@example.org", "admin")
    assert response["Location"] == settings_url(owned_site) + "#teammates"
    assert len(mail.outbox) == 1
    message = mail.outbox[0]
    assert message.to == ["grace@example.org"]
    assert "example.com" in message.subject or "Example" in message.subject
    assert "owner invited you" in message.body
    assert message.alternatives
    assert "Accept the invitation" in message.alternatives[0][0]
    path = link_in(message)
    token = path.split("/")[2]
    invitation = Invitation.objects.get(site=owned_site)
    assert invitation.token_hash == hash_token(token)
    assert token not in invitation.token_hash
    assert (invitation.email, invitation.role) == ("grace@example.org", "admin")
    assert (invitation.expires_at - timezone.now()).days in (6, 7)
    html = body(owner_client.get(settings_url(owned_site)))
    assert "grace@example.org" in html
    assert "Pending" in html

    grace = Client()
    page = grace.get(path)
    assert page.status_code == 200
    assert "Join Example" in body(page)
    assert "Sign up and join" in body(page)
    signup_page = grace.get("/accounts/signup/")
    assert 'value="grace@example.org"' in body(signup_page)
    sent = grace.post("/accounts/signup/", {"username": "grace", "email": "grace@example.org"})
    assert sent["Location"] == "/accounts/signup/done/"
    confirm = re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", mail.outbox[-1].body).group(1)
    assert grace.get(confirm).status_code == 200
    done = grace.post(confirm, {"username": "grace", "password1": "Gr4ce-hopper!", "password2": "Gr4ce-hopper!"})
    assert done.status_code == 302
    user = User.objects.get(username="grace")
    membership = Membership.objects.get(site=owned_site, user=user)
    assert membership.role == "admin"
    invitation.refresh_from_db()
    assert invitation.accepted_by == user
    assert invitation.accepted_at is not None
    home = body(grace.get("/"))
    assert "example.com" in home
    assert "Admin" in home
    assert "You joined Example (admin)." in home

    # used: a friendly page, not a second membership
    again = Client().get(path)
    assert again.status_code == 410
    assert "already used" in body(again)


def test_invitation_accepted_by_logging_in(owner_client, owned_site):
    User.objects.create_user("lin", email="lin@example.org", password="Lin-password-1")
    invite(owner_client, owned_site, "lin@example.org")
    path = link_in(mail.outbox[0])
    lin = Client()
    assert lin.get(path).status_code == 200
    response = lin.post("/accounts/login/", {"username": "lin", "password": "Lin-password-1"})
    assert response.status_code == 302
    assert Membership.objects.get(site=owned_site, user__username="lin").role == "viewer"


def test_invitation_accepted_when_signed_in_with_a_click(owner_client, owned_site):
    lin = User.objects.create_user("lin", email="lin@example.org")
    invite(owner_client, owned_site, "lin@example.org")
    path = link_in(mail.outbox[0])
    browser = Client()
    browser.force_login(lin)
    page = browser.get(path)
    assert "Accept the invitation" in body(page)
    assert not Membership.objects.filter(user=lin).exists()  # a GET changes nothing
    browser.post(path)
    assert Membership.objects.filter(site=owned_site, user=lin, role="viewer").exists()


def test_invitation_for_someone_already_on_the_site_changes_nothing(owner_client, owned_site):
    lin = User.objects.create_user("lin", email="lin@example.org")
    Membership.objects.create(site=owned_site, user=lin, role=Role.ADMIN)
    response = invite(owner_client, owned_site, "LIN@example.org", "viewer")
    assert response.status_code == 200
    assert "LIN@example.org is already on this site." in body(response)
    assert mail.outbox == []
    # an invitation accepted by a member who joined meanwhile keeps their role, and says so
    other = User.objects.create_user("max", email="max@example.org")
    invite(owner_client, owned_site, "max@example.org", "admin")
    Membership.objects.create(site=owned_site, user=other, role=Role.VIEWER)
    browser = Client()
    browser.force_login(other)
    response = browser.post(link_in(mail.outbox[0]), follow=True)
    assert "your role did not change" in body(response)
    assert Membership.objects.get(site=owned_site, user=other).role == "viewer"


def test_invitation_expired_or_unknown_is_a_friendly_4xx(owner_client, owned_site):
    invite(owner_client, owned_site, "late@example.org")
    path = link_in(mail.outbox[0])
    Invitation.objects.update(expires_at=timezone.now() - dt.timedelta(minutes=1))
    response = Client().get(path)
    assert response.status_code == 410
    assert "This invitation has expired" in body(response)
    unknown = Client().get("/invitations/not-a-real-token/")
    assert unknown.status_code == 404
    assert "This invitation link does not work" in body(unknown)
    assert "example.com" not in body(unknown)
    long = Client().get("/invitations/" + "x" * 500 + "/")
    assert long.status_code == 404


def test_reinviting_replaces_the_pending_invitation(owner_client, owned_site):
    invite(owner_client, owned_site, "grace@example.org")
    first = link_in(mail.outbox[0])
    invite(owner_client, owned_site, "grace@example.org", "admin")
    assert Invitation.objects.filter(site=owned_site).count() == 1
    assert Client().get(first).status_code == 404
    assert Client().get(link_in(mail.outbox[1])).status_code == 200


def test_cancel_invitation(owner_client, owned_site):
    invite(owner_client, owned_site, "grace@example.org")
    path = link_in(mail.outbox[0])
    invitation = Invitation.objects.get()
    owner_client.post(settings_url(owned_site, f"invitations/{invitation.pk}/cancel/"))
    assert not Invitation.objects.exists()
    assert Client().get(path).status_code == 404


def test_invite_bad_email(owner_client, owned_site):
    response = invite(owner_client, owned_site, "not-an-email")
    assert response.status_code == 200
    assert "Enter a valid email address." in body(response)
    assert mail.outbox == []


def test_invite_refuses_an_address_longer_than_the_column(owner_client, owned_site):
    """Invitation.email holds 254 characters (Django's form EmailField would take 320: a DataError
    on MariaDB's strict mode)."""
    too_long = "x" * 64 + "@" + ".".join(["y" * 63] * 3) + ".com"  # 260 characters, else valid
    response = invite(owner_client, owned_site, too_long)
    assert response.status_code == 200
    assert "Ensure this value has at most 254 characters" in body(response)
    assert not Invitation.objects.exists()
    assert mail.outbox == []
    longest = "x" * 58 + "@" + ".".join(["y" * 63] * 3) + ".com"
    assert len(longest) == 254
    assert invite(owner_client, owned_site, longest).status_code == 302
    assert Invitation.objects.get().email == longest


def test_invitation_subject_is_one_line_whatever_the_name(owner_client, owned_site):
    """A name saved before names were checked (or by another path) must not break the email."""
    Site.objects.filter(pk=owned_site.pk).update(name="Shop\nBlog\r\n" + "n" * 180)
    response = invite(owner_client, owned_site, "grace@example.org")
    assert response.status_code == 302
    (message,) = mail.outbox
    assert "\n" not in message.subject
    assert "\r" not in message.subject
    assert message.subject.startswith("You are invited to Shop Blog nnn")
    assert len(message.subject) < 100
    assert message.message()["Subject"]  # the headers can be built


def test_invitation_email_failure_is_a_form_error(owner_client, owned_site, monkeypatch):
    def boom(*args: Any, **kwargs: Any) -> None:
        raise OSError("smtp down")

    monkeypatch.setattr("django.core.mail.EmailMultiAlternatives.send", boom)
    response = invite(owner_client, owned_site, "grace@example.org")
    assert response.status_code == 200
    assert "could not be sent" in body(response)
    assert not Invitation.objects.exists()


def test_change_role_remove_and_leave(owner_client, owned_site, owner):
    mate = User.objects.create_user("mate", email="mate@example.org")
    membership = Membership.objects.create(site=owned_site, user=mate, role=Role.VIEWER)
    ReportSubscription.objects.create(site=owned_site, user=mate, frequency="weekly")
    html = body(owner_client.get(settings_url(owned_site)))
    assert "mate@example.org" in html
    owner_client.post(settings_url(owned_site, f"teammates/{membership.pk}/role/"), {"role": "admin"})
    membership.refresh_from_db()
    assert membership.role == "admin"
    assert (
        owner_client.post(settings_url(owned_site, f"teammates/{membership.pk}/role/"), {"role": "god"}).status_code
        == 302
    )
    membership.refresh_from_db()
    assert membership.role == "admin"

    owner_client.post(settings_url(owned_site, f"teammates/{membership.pk}/remove/"))
    assert not Membership.objects.filter(pk=membership.pk).exists()
    assert not ReportSubscription.objects.filter(user=mate).exists()

    # a teammate leaves by themselves
    Membership.objects.create(site=owned_site, user=mate, role=Role.VIEWER)
    browser = Client()
    browser.force_login(mate)
    assert "Leave this site" in body(browser.get(settings_url(owned_site)))
    response = browser.post(settings_url(owned_site, "leave/"))
    assert response["Location"] == "/"
    assert not Membership.objects.filter(site=owned_site, user=mate).exists()
    assert browser.get(settings_url(owned_site)).status_code == 404

    # the owner cannot leave
    owner_client.post(settings_url(owned_site, "leave/"))
    owned_site.refresh_from_db()
    assert owned_site.owner == owner


def test_admin_cannot_change_their_own_role(owned_site):
    boss = User.objects.create_user("boss")
    membership = Membership.objects.create(site=owned_site, user=boss, role=Role.ADMIN)
    browser = Client()
    browser.force_login(boss)
    response = browser.post(
        settings_url(owned_site, f"teammates/{membership.pk}/role/"), {"role": "viewer"}, follow=True
    )
    assert "You cannot change your own role." in body(response)
    membership.refresh_from_db()
    assert membership.role == "admin"


# -- email reports ----------------------------------------------------------------------------


def test_report_subscription_toggles(owner_client, owned_site, owner):
    html = body(owner_client.get(settings_url(owned_site)))
    assert 'name="frequencies" value="weekly"' in html
    owner_client.post(settings_url(owned_site, "reports/"), {"frequencies": ["weekly", "monthly"]})
    assert set(ReportSubscription.objects.filter(site=owned_site, user=owner).values_list("frequency", flat=True)) == {
        "weekly",
        "monthly",
    }
    weekly = ReportSubscription.objects.get(frequency="weekly")
    weekly.last_period_end = dt.date(2026, 1, 4)
    weekly.save()
    response = owner_client.post(settings_url(owned_site, "reports/"), {"frequencies": ["weekly"]})
    assert response["Location"] == settings_url(owned_site) + "#reports"
    assert list(ReportSubscription.objects.values_list("frequency", flat=True)) == ["weekly"]
    assert ReportSubscription.objects.get().last_period_end == dt.date(2026, 1, 4)  # bookkeeping kept
    html = body(owner_client.get(settings_url(owned_site)))
    assert re.search(r'value="weekly"[^>]*checked', html)
    assert not re.search(r'value="monthly"[^>]*checked', html)
    owner_client.post(settings_url(owned_site, "reports/"), {})
    assert not ReportSubscription.objects.exists()
    response = owner_client.post(settings_url(owned_site, "reports/"), {"frequencies": ["daily"]})
    assert response.status_code == 200
    assert "Select a valid choice" in body(response)


def test_viewer_can_opt_in_to_reports(owned_site):
    viewer = User.objects.create_user("viewer", email="v@example.org")
    Membership.objects.create(site=owned_site, user=viewer, role=Role.VIEWER)
    browser = Client()
    browser.force_login(viewer)
    browser.post(settings_url(owned_site, "reports/"), {"frequencies": ["monthly"]})
    assert ReportSubscription.objects.filter(site=owned_site, user=viewer, frequency="monthly").exists()

"""Shared links: /share/<token>/ serves the site's dashboard read-only, without an account."""

from __future__ import annotations

import io
import secrets
import zipfile

import pytest
from django.contrib.auth.hashers import make_password
from django.test import Client
from django.utils import timezone

from dashboard.models import SharedLink
from sites.models import Site
from testing import CHROME_UA, chip_texts, headline, html, panel_rows, row_link, send

pytestmark = [pytest.mark.django_db, pytest.mark.analytics]  # on both stores (make test-chdb)

FRIDAY = "2026-11-20"
DAY = {"period": "day", "date": FRIDAY}


def make_link(site: Site, password: str = "") -> SharedLink:
    return SharedLink.objects.create(
        site=site,
        name="For the board",
        token=secrets.token_urlsafe(32),
        password_hash=make_password(password) if password else "",
    )


@pytest.fixture
def link(owned_scripted_site: Site) -> SharedLink:
    return make_link(owned_scripted_site)


def test_an_active_link_shows_the_dashboard_logged_out(owned_scripted_site, link):
    response = Client().get(f"/share/{link.token}/", DAY)
    assert response.status_code == 200
    doc = html(response)
    assert doc.one("h1").text() == "example.com"
    assert headline(doc)["Unique visitors"] == ("4", "↑100%")
    assert panel_rows(doc, "pages")[0] == ["/", "4", "4"]
    assert "Shared dashboard · read-only" in doc.one("header", "topbar").text()


def test_a_shared_dashboard_shows_nothing_of_the_owner_nor_settings(owned_scripted_site, link):
    body = Client().get(f"/share/{link.token}/", DAY).content.decode()
    assert "owner@example.com" not in body
    assert ">owner<" not in body
    assert "Site settings" not in body
    assert "Log out" not in body
    assert f"/sites/{owned_scripted_site.public_id}/" not in body  # every link stays under the share URL


def test_filters_and_periods_stay_on_the_shared_link(owned_scripted_site, link):
    client = Client()
    doc = html(client.get(f"/share/{link.token}/", DAY))
    href = row_link(doc, "sources", "Google")
    assert href.startswith(f"/share/{link.token}/?")
    doc = html(client.get(href))
    assert chip_texts(doc) == ["Source is Google"]
    assert headline(doc)["Unique visitors"][0] == "1"
    for a in doc.one("div", "picker-menu").all("a"):
        assert a.attrs["href"].startswith(f"/share/{link.token}/?")


def test_a_password_protected_link_asks_for_the_password(owned_scripted_site):
    link = make_link(owned_scripted_site, "open sesame")
    client = Client()
    response = client.get(f"/share/{link.token}/", DAY)
    assert response.status_code == 200
    doc = html(response)
    assert doc.one("input", type="password")
    assert not doc.all("a", "metric")
    assert b"example.com" not in response.content

    wrong = client.post(f"/share/{link.token}/", {"password": "guess"})
    assert wrong.status_code == 403
    assert b"That password is not right." in wrong.content
    assert not html(wrong).all("a", "metric")
    assert client.get(f"/share/{link.token}/realtime").status_code == 404
    assert client.get(f"/share/{link.token}/export.zip").status_code == 302  # back to the password form

    right = client.post(f"/share/{link.token}/", {"password": "open sesame"})
    assert right.status_code == 302
    assert right["Location"] == f"/share/{link.token}/"
    doc = html(client.get(f"/share/{link.token}/", DAY))
    assert headline(doc)["Unique visitors"][0] == "4"
    # Remembered for this session only.
    assert not html(Client().get(f"/share/{link.token}/", DAY)).all("a", "metric")


def test_changing_the_password_locks_unlocked_sessions(owned_scripted_site):
    link = make_link(owned_scripted_site, "first")
    client = Client()
    client.post(f"/share/{link.token}/", {"password": "first"})
    assert html(client.get(f"/share/{link.token}/", DAY)).all("a", "metric")
    link.password_hash = make_password("second")
    link.save()
    assert not html(client.get(f"/share/{link.token}/", DAY)).all("a", "metric")


def test_password_guessing_is_rate_limited(owned_scripted_site, settings):
    settings.LOGIN_RATE = "3/m"
    link = make_link(owned_scripted_site, "right")
    client = Client()
    statuses = [client.post(f"/share/{link.token}/", {"password": f"guess {n}"}).status_code for n in range(4)]
    assert statuses == [403, 403, 403, 429]


def test_password_guessing_from_one_address_does_not_lock_out_others(owned_scripted_site, settings, frozen_clock):
    settings.LOGIN_RATE = "3/m"
    link = make_link(owned_scripted_site, "right")
    other_link = make_link(owned_scripted_site, "other")
    guesser = Client(REMOTE_ADDR="203.0.113.66")
    statuses = [guesser.post(f"/share/{link.token}/", {"password": f"guess {n}"}).status_code for n in range(4)]
    assert statuses == [403, 403, 403, 429]
    # The guesser's limit is theirs, on this link: another visitor still gets in...
    visitor = Client(REMOTE_ADDR="198.51.100.20")
    assert visitor.post(f"/share/{link.token}/", {"password": "right"}).status_code == 302
    assert headline(html(visitor.get(f"/share/{link.token}/", DAY)))["Unique visitors"][0] == "4"
    # ...and the guesser's tries on another link count apart.
    assert guesser.post(f"/share/{other_link.token}/", {"password": "guess"}).status_code == 403


def test_filtered_views_and_exports_are_rate_limited_per_address(owned_scripted_site, link, settings, frozen_clock):
    settings.SHARE_RATE = "3/m"
    client = Client(REMOTE_ADDR="203.0.113.77")
    base = f"/share/{link.token}/"
    filtered = {**DAY, "filters": "visit:source==Google"}
    assert client.get(base, filtered).status_code == 200
    assert client.get(f"{base}export.zip", DAY).status_code == 200
    assert client.get(f"{base}export.zip", filtered).status_code == 200
    for path, params in ((base, filtered), (f"{base}export.zip", DAY)):
        response = client.get(path, params)
        assert response.status_code == 429
        retry = int(response["Retry-After"])  # the rest of this key's one-minute window
        assert 1 <= retry <= 60
        doc = html(response)
        assert doc.one("h1").text() == "Too many requests"
        assert f"try again in {retry} second" in doc.one("p", role="alert").text()
        assert not doc.all("a", "metric")
    # The unfiltered dashboard reads only the rollups: not limited.
    assert client.get(base, DAY).status_code == 200
    # Another address has its own allowance, whichever link it reads.
    assert Client(REMOTE_ADDR="198.51.100.21").get(base, filtered).status_code == 200
    # A new minute, a new allowance.
    frozen_clock[0] += 60
    assert client.get(base, filtered).status_code == 200


def test_the_rate_limit_defaults_to_60_a_minute(owned_scripted_site, link, settings, frozen_clock):
    if hasattr(settings, "SHARE_RATE"):
        del settings.SHARE_RATE
    client = Client(REMOTE_ADDR="203.0.113.78")
    path = f"/share/{link.token}/"
    statuses = [
        client.get(path, {**DAY, "filters": "visit:source==Google", "metric": "visits"}).status_code for _ in range(61)
    ]
    assert statuses == [200] * 60 + [429]


def test_a_revoked_link_is_gone(owned_scripted_site, link):
    link.revoked_at = timezone.now()
    link.save()
    client = Client()
    for path in ("", "export.zip", "realtime"):
        response = client.get(f"/share/{link.token}/{path}")
        assert response.status_code == 404
        assert b"example.com" not in response.content
    assert b"does not exist or has been revoked" in client.get(f"/share/{link.token}/").content


def test_an_unknown_token_is_a_friendly_404(db):
    response = Client().get("/share/not-a-token/")
    assert response.status_code == 404
    assert b"does not exist or has been revoked" in response.content


def test_a_token_reads_only_its_own_site(owned_scripted_site, link, django_user_model):
    other = Site.objects.create(domain="other.example", timezone="UTC")
    send(
        Client(HTTP_USER_AGENT=CHROME_UA),
        {"n": "pageview", "u": "https://other.example/secret", "sid": other.public_id},
    )
    other_link = make_link(other)
    client = Client()
    body = client.get(f"/share/{link.token}/").content.decode()
    assert "other.example" not in body
    assert "/secret" not in body
    # No parameter switches the site: site_id and friends are ignored.
    body = client.get(f"/share/{link.token}/", {"site_id": other.public_id, "site": other.domain}).content.decode()
    assert "/secret" not in body
    assert "/secret" in client.get(f"/share/{other_link.token}/", {"period": "day"}).content.decode()
    # And a share session gives no access to the owner's pages.
    assert client.get(f"/sites/{owned_scripted_site.public_id}/").status_code == 302


def test_realtime_and_export_through_a_shared_link(owned_scripted_site, link):
    client = Client()
    assert client.get(f"/share/{link.token}/realtime").json() == {"visitors": 0}
    send(
        Client(HTTP_USER_AGENT=CHROME_UA),
        {"n": "pageview", "u": "https://example.com/", "sid": owned_scripted_site.public_id},
    )
    assert client.get(f"/share/{link.token}/realtime").json() == {"visitors": 1}

    response = client.get(f"/share/{link.token}/export.zip", DAY)
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert "visitors.csv" in archive.namelist()
        assert "unique_visitors" not in archive.read("visitors.csv").decode()
        assert archive.read("visitors.csv").decode().splitlines()[1] == "visitors,4,100"
    doc = html(client.get(f"/share/{link.token}/", DAY))
    assert doc.one("p", "realtime").attrs["data-realtime-url"] == f"/share/{link.token}/realtime"


def test_a_password_link_unlocked_exports(owned_scripted_site):
    link = make_link(owned_scripted_site, "pw")
    client = Client()
    client.post(f"/share/{link.token}/", {"password": "pw"})
    assert client.get(f"/share/{link.token}/export.zip", DAY).status_code == 200
    assert client.get(f"/share/{link.token}/realtime").status_code == 200


def test_bad_parameters_on_a_shared_link_are_a_400(owned_scripted_site, link):
    response = Client().get(f"/share/{link.token}/", {"period": "nope"})
    assert response.status_code == 400
    assert "Unknown period" in html(response).one("div", "stats-error").text()


def test_odd_parameters_on_a_shared_link_are_a_400_page_never_a_crash(owned_scripted_site, link):
    client = Client(raise_request_exception=False)
    too_many = "&".join(f"x{i}=1" for i in range(1500))
    pages = {f"/share/{link.token}/": "This view cannot be shown.", f"/share/{link.token}/export.zip": "Cannot export"}
    for path, friendly in pages.items():
        for query in (too_many, "filters=" + ";".join(["visit:source==Google"] * 250)):
            response = client.get(f"{path}?{query}")
            assert response.status_code == 400, (path, query[:40])
            assert friendly in response.content.decode()  # the site's own page, not a bare one


def test_a_shared_site_without_data_says_so_without_install_details(db):
    fresh = Site.objects.create(domain="fresh.example", timezone="UTC")
    link = make_link(fresh)
    doc = html(Client().get(f"/share/{link.token}/"))
    assert "not recorded any visits yet" in doc.one("section", "empty-state").text()
    assert not doc.all("pre", id="install-snippet")

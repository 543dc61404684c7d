"""Accounts: sign up, log in and out, reset and change a password (console email backend locally;
Django's locmem backend in tests, so mail.outbox holds what would be sent)."""

from __future__ import annotations

import io
import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core import mail
from django.core.management import call_command
from django.test import Client

from dashboard.models import Invitation, Membership
from dashboard.site_services import invite
from dashboard.views.sites import site_home_url
from sites.models import Site

pytestmark = pytest.mark.django_db

User = get_user_model()
STRONG = "c0rrect-Horse-battery"


def signup(client: Client, **overrides: Any) -> Any:
    data = {"username": "ada", "email": "ada@example.org", **overrides}
    return client.post("/accounts/signup/", data)


def confirmation_link(to: str = "ada@example.org") -> str:
    """The path of the confirmation link in the last sign-up email sent to `to`."""
    sent = [message for message in mail.outbox if message.to == [to]]
    assert sent, f"no email to {to}"
    assert sent[-1].subject == "Confirm your email address for Fathom"
    return re.search(r"http://testserver(/accounts/signup/confirm/\S+/)", sent[-1].body).group(1)


def confirm(client: Client, link: str, **overrides: Any) -> Any:
    page = client.get(link)
    assert page.status_code == 200
    username = re.search(r'name="username"[^>]*value="([^"]*)"', page.content.decode())
    data = {"username": username.group(1) if username else "", "password1": STRONG, "password2": STRONG, **overrides}
    next_field = re.search(r'name="next" value="([^"]*)"', page.content.decode())
    if next_field:
        data.setdefault("next", next_field.group(1))
    return client.post(link, data)


def test_the_pages_name_an_svg_favicon_from_the_static_files(client):
    page = client.get("/accounts/login/").content.decode()
    (href,) = re.findall(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert href == "/static/dashboard/favicon.svg"  # same origin: the Content-Security-Policy allows it
    icon = finders.find("dashboard/favicon.svg")
    assert icon is not None
    with open(icon) as svg:
        assert svg.read().startswith('<svg xmlns="http://www.w3.org/2000/svg"')


def test_signup_page_has_labelled_fields(client):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("username", "email"):
        assert f'<label for="id_{name}">' in body
    assert "csrfmiddlewaretoken" in body


def test_signup_emails_a_link_and_confirming_it_signs_in_and_lands_on_add_your_first_site(client):
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/accounts/signup/done/"
    assert "Check your inbox" in client.get(response["Location"]).content.decode()
    assert not User.objects.exists()  # nothing is created before the address is confirmed
    assert "_auth_user_id" not in client.session

    link = confirmation_link()
    page = client.get(link)
    assert "ada@example.org" in page.content.decode()
    assert not User.objects.exists()  # opening the link (a mail scanner may) changes nothing

    response = confirm(client, link)
    assert response.status_code == 302
    assert response["Location"] == "/sites/new/"
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.org"
    assert user.is_active
    assert user.check_password(STRONG)
    page = client.get("/sites/new/")
    assert page.status_code == 200
    assert "Add your first site" in page.content.decode()
    assert "Welcome, ada! Your account is ready." in page.content.decode()
    assert page.context["user"] == user


def test_the_confirmation_link_also_works_in_another_browser(client):
    signup(client)
    phone = Client()
    assert confirm(phone, confirmation_link())["Location"] == "/sites/new/"
    assert phone.session["_auth_user_id"] == str(User.objects.get(username="ada").pk)


def test_signup_with_an_email_that_has_an_account_answers_the_same_and_mails_its_owner(client):
    User.objects.create_user("ada", email="ada@example.org", password=STRONG)
    fresh = signup(Client(), username="grace", email="grace@example.org")
    taken = signup(client, username="grace", email="ADA@example.org")
    assert (taken.status_code, taken["Location"]) == (fresh.status_code, fresh["Location"])
    assert client.get(taken["Location"]).content == Client().get(fresh["Location"]).content
    assert "already exists" not in client.get(taken["Location"]).content.decode()
    assert User.objects.count() == 1

    note = mail.outbox[-1]
    assert note.to == ["ada@example.org"]
    assert note.subject == "You already have a Fathom account"
    assert "username: ada" in note.body
    assert "http://testserver/accounts/login/" in note.body
    assert "http://testserver/accounts/password_reset/" in note.body
    assert "/accounts/signup/confirm/" not in note.body


def test_signup_duplicate_username_is_refused_usernames_are_public_handles(client):
    User.objects.create_user("ada", email="ada@example.org", password=STRONG)
    response = signup(client, username="Ada", email="other@example.org")
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert mail.outbox == []


def test_an_unconfirmed_signup_does_not_block_the_owner_of_the_address(client):
    signup(Client(), username="ada", email="ada@example.org")  # someone else, never confirmed
    squatters_link = confirmation_link()
    response = signup(client, username="ada", email="ada@example.org")
    assert response["Location"] == "/accounts/signup/done/"
    assert confirm(client, confirmation_link())["Location"] == "/sites/new/"
    assert User.objects.get(email="ada@example.org").username == "ada"
    # The other link is dead now that the address has an account.
    assert Client().get(squatters_link).status_code == 410


def test_whoever_types_an_address_cannot_choose_its_password(client):
    """The password is chosen by whoever opens the link in the mailbox, never at sign-up."""
    response = signup(client, password1="Mallory-knows-1", password2="Mallory-knows-1")
    assert response["Location"] == "/accounts/signup/done/"
    confirm(Client(), confirmation_link())
    assert User.objects.get(username="ada").check_password(STRONG)


def test_the_confirmation_link_works_once(client):
    signup(client)
    link = confirmation_link()
    confirm(client, link)
    again = Client().get(link)
    assert again.status_code == 410
    assert "already used" in again.content.decode()
    late = Client().post(link, {"username": "ada2", "password1": STRONG, "password2": STRONG})
    assert late.status_code == 410
    assert User.objects.count() == 1


def test_the_confirmation_link_expires(client, settings, monkeypatch):
    import time

    settings.SIGNUP_LINK_HOURS = 24
    signup(client)
    link = confirmation_link()
    now = time.time()
    monkeypatch.setattr("time.time", lambda: now + 25 * 3600)
    response = client.get(link)
    assert response.status_code == 410
    assert "expired" in response.content.decode()
    assert client.post(link, {"username": "ada", "password1": STRONG, "password2": STRONG}).status_code == 410
    assert not User.objects.exists()


@pytest.mark.parametrize("mangle", [lambda link: link[:-6] + "xxxxx/", lambda link: "/accounts/signup/confirm/nope/"])
def test_a_tampered_confirmation_link_is_refused_with_a_friendly_page(client, mangle):
    signup(client)
    response = client.get(mangle(confirmation_link()))
    assert response.status_code == 404
    assert "does not work" in response.content.decode()
    assert "Signature" not in response.content.decode()


def test_a_username_taken_before_confirming_can_be_changed_on_the_confirmation_page(client):
    signup(client)
    User.objects.create_user("ADA", email="someone@example.org")
    link = confirmation_link()
    response = confirm(client, link, username="ada")
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    assert confirm(client, link, username="ada-l")["Location"] == "/sites/new/"
    assert User.objects.get(email="ada@example.org").username == "ada-l"


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "This password is too short."),
        ("password123", "This password is too common."),
        ("12345678901", "This password is entirely numeric."),
        ("ada@example.org1", "The password is too similar to the email address."),
    ],
)
def test_confirming_with_a_weak_password_is_refused(client, password, message):
    signup(client)
    response = confirm(client, confirmation_link(), password1=password, password2=password)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.exists()
    assert "_auth_user_id" not in client.session


def test_confirming_with_mismatched_passwords(client):
    signup(client)
    response = confirm(client, confirmation_link(), password2=STRONG + "x")
    assert response.status_code == 200
    assert "The two password fields didn\N{RIGHT SINGLE QUOTATION MARK}t match." in response.content.decode()


def test_signup_emails_to_one_address_are_limited(client, settings):
    settings.ACCOUNT_EMAIL_RATE = "2/h"
    User.objects.create_user("ada", email="ada@example.org")
    for i in range(3):
        assert signup(Client(), username=f"x{i}", email="ada@example.org")["Location"] == "/accounts/signup/done/"
    for i in range(3):
        assert signup(Client(), username=f"y{i}", email="new@example.org")["Location"] == "/accounts/signup/done/"
    assert [m.to for m in mail.outbox] == [["ada@example.org"]] * 2 + [["new@example.org"]] * 2


def test_the_demo_user_logs_in_directly(client):
    call_command("seed_demo", "--days", "1", "--visitors-per-day", "1", stdout=io.StringIO())
    response = client.post("/accounts/login/", {"username": "demo", "password": "demo-password"})
    assert response.status_code == 302
    assert client.session["_auth_user_id"] == str(User.objects.get(username="demo").pk)


def test_login_and_logout(client):
    User.objects.create_user("ada", email="ada@example.org", password=STRONG)
    page = client.get("/accounts/login/")
    assert page.status_code == 200
    assert "Forgot your password?" in page.content.decode()

    wrong = client.post("/accounts/login/", {"username": "ada", "password": "nope"})
    assert wrong.status_code == 200
    assert "Please enter a correct username and password" in wrong.content.decode()

    response = client.post("/accounts/login/", {"username": "ada", "password": STRONG})
    assert response.status_code == 302
    assert response["Location"] == "/"
    home = client.get("/")
    assert home.status_code == 200
    assert "Your sites" in home.content.decode()

    # A signed-in person who opens the login page goes home.
    assert client.get("/accounts/login/")["Location"] == "/"

    out = client.post("/accounts/logout/")
    assert out.status_code == 302
    assert out["Location"] == "/accounts/login/"
    assert client.get("/")["Location"].startswith("/accounts/login/")


def test_login_honours_a_safe_next_only(client):
    User.objects.create_user("ada", password=STRONG)
    response = client.post("/accounts/login/?next=/sites/new/", {"username": "ada", "password": STRONG})
    assert response["Location"] == "/sites/new/"
    client.post("/accounts/logout/")
    response = client.post("/accounts/login/?next=https://evil.example/", {"username": "ada", "password": STRONG})
    assert response["Location"] == "/"


def test_password_reset_by_email_end_to_end(client):
    User.objects.create_user("ada", email="ada@example.org", password=STRONG)
    response = client.post("/accounts/password_reset/", {"email": "ada@example.org"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    assert "Check your email" in client.get(response["Location"]).content.decode()

    assert len(mail.outbox) == 1
    email = mail.outbox[0]
    assert email.to == ["ada@example.org"]
    assert email.subject == "Reset your Fathom password"
    link = re.search(r"http://testserver(/accounts/reset/\S+/)", email.body).group(1)

    form_page = client.get(link, follow=True)
    assert form_page.status_code == 200
    assert "Choose a new password" in form_page.content.decode()
    set_password_url = form_page.redirect_chain[-1][0]
    new = "n3w-Secret-passphrase"
    done = client.post(set_password_url, {"new_password1": new, "new_password2": new})
    assert done.status_code == 302
    assert done["Location"] == "/accounts/reset/done/"
    assert "Your password is changed" in client.get(done["Location"]).content.decode()

    fresh = Client()
    assert fresh.post("/accounts/login/", {"username": "ada", "password": STRONG}).status_code == 200  # old refused
    assert fresh.post("/accounts/login/", {"username": "ada", "password": new})["Location"] == "/"

    # The link works once.
    again = client.get(link, follow=True)
    assert "This link does not work any more" in again.content.decode()


def test_password_reset_for_an_unknown_address_sends_nothing_and_says_the_same(client):
    response = client.post("/accounts/password_reset/", {"email": "nobody@example.org"})
    assert response.status_code == 302
    assert response["Location"] == "/accounts/password_reset/done/"
    assert mail.outbox == []


def test_password_change(client):
    user = User.objects.create_user("ada", password=STRONG)
    client.force_login(user)
    assert client.get("/accounts/password_change/").status_code == 200
    new = "n3w-Secret-passphrase"
    response = client.post(
        "/accounts/password_change/", {"old_password": STRONG, "new_password1": new, "new_password2": new}
    )
    assert response["Location"] == "/accounts/password_change/done/"
    user.refresh_from_db()
    assert user.check_password(new)


def test_auth_pages_use_our_templates_not_the_admins(client):
    signup(client)
    for url in ("/accounts/login/", "/accounts/password_reset/", "/accounts/signup/", confirmation_link()):
        response = client.get(url)
        assert response.status_code == 200
        names = [t.name for t in response.templates]
        assert names[0].startswith("accounts/"), names
        assert not any(name.startswith("registration/") or name.startswith("admin/") for name in names)


# -- an invitation opened before signing in ---------------------------------------------------


def invitation_for(email: str) -> tuple[Site, str]:
    """A site whose owner invited `email`; the invitation's path (/invitations/<token>/)."""
    owner = User.objects.create_user("site-owner", email="site-owner@example.org")
    site = Site.objects.create(domain="pushed.example", name="Pushed", owner=owner)
    tokens: list[str] = []
    invite(site=site, email=email, role="viewer", invited_by=owner, accept_url=lambda t: tokens.append(t) or t)
    return site, f"/invitations/{tokens[0]}/"


def link(page: Any, view: str) -> str:
    """The invitation page's "Sign up and join" / "Log in and join" link."""
    return re.search(rf'href="(/accounts/{view}/\?next=[^"]+)"', page.content.decode()).group(1)


def test_an_invitation_opened_in_the_browser_is_not_accepted_by_another_account(client):
    """Someone opens an invitation link (sent to them, or pushed to the next person) in a browser;
    whoever logs in there next must not get the site silently."""
    victim = User.objects.create_user("victim", email="victim@example.org", password=STRONG)
    site, path = invitation_for("attacker@example.org")
    assert client.get(path).status_code == 200

    response = client.post("/accounts/login/", {"username": "victim", "password": STRONG}, follow=True)
    assert response.redirect_chain == [("/", 302)]
    assert not Membership.objects.filter(site=site, user=victim).exists()
    assert Invitation.objects.get(site=site).accepted_at is None
    html = response.content.decode()
    assert "was sent to another email address than your account" in html
    assert "so it was not accepted" in html
    assert "attacker@example.org" not in html
    # forgotten: logging in again accepts nothing either
    client.post("/accounts/logout/")
    client.post("/accounts/login/", {"username": "victim", "password": STRONG})
    assert not Membership.objects.filter(user=victim).exists()


def test_log_in_and_join_with_another_address_asks_to_confirm(client):
    lin = User.objects.create_user("lin", email="lin@example.org", password=STRONG)
    site, path = invitation_for("lin.work@example.org")
    login_url = link(client.get(path), "login")
    assert login_url == f"/accounts/login/?next={path}"
    login_page = client.get(login_url).content.decode()
    assert f'name="next" value="{path}"' in login_page
    assert f'href="/accounts/signup/?next={path}"' in login_page

    response = client.post(login_url, {"username": "lin", "password": STRONG, "next": path})
    assert response["Location"] == path
    assert not Membership.objects.filter(user=lin).exists()
    page = client.get(path).content.decode()
    assert "This invitation was sent to <strong>lin.work@example.org</strong>" in page
    assert "Accept the invitation" in page
    assert not Membership.objects.filter(user=lin).exists()  # a GET changes nothing
    client.post(path)  # the confirmation
    assert Membership.objects.filter(site=site, user=lin, role="viewer").exists()


def test_log_in_with_the_invited_address_joins_at_once(client):
    lin = User.objects.create_user("lin", email="Lin@Example.org", password=STRONG)
    site, path = invitation_for("lin@example.org")
    login_url = link(client.get(path), "login")
    response = client.post(login_url, {"username": "lin", "password": STRONG, "next": path})
    assert response["Location"] == site_home_url(site)
    assert Membership.objects.filter(site=site, user=lin, role="viewer").exists()


def test_signing_up_with_another_address_does_not_join(client):
    site, path = invitation_for("grace@example.org")
    signup_url = link(client.get(path), "signup")
    page = client.get(signup_url).content.decode()
    assert 'value="grace@example.org"' in page  # suggested, not required
    assert f'name="next" value="{path}"' in page
    response = client.post(signup_url, {"username": "mallory", "email": "mallory@example.org", "next": path})
    assert response["Location"] == "/accounts/signup/done/"
    response = confirm(client, confirmation_link("mallory@example.org"))
    assert response["Location"] == path
    assert not Membership.objects.filter(site=site).exists()
    assert Invitation.objects.get(site=site).accepted_at is None


def test_signing_up_with_the_invited_address_joins(client):
    site, path = invitation_for("grace@example.org")
    signup_url = link(client.get(path), "signup")
    response = client.post(signup_url, {"username": "grace", "email": "GRACE@example.org", "next": path})
    assert response["Location"] == "/accounts/signup/done/"
    assert not Membership.objects.filter(site=site).exists()
    response = confirm(client, confirmation_link("GRACE@example.org"))  # in the browser that opened the invitation
    assert response["Location"] == site_home_url(site)
    assert Membership.objects.filter(site=site, user__username="grace", role="viewer").exists()

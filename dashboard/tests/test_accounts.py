"""Accounts: sign up, log in and out, reset and change a password (console email backend locally;
Django's locmem backend in tests, so mail.outbox holds what would be sent)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core import mail
from django.test import Client

pytestmark = pytest.mark.django_db

User = get_user_model()
STRONG = "c0rrect-Horse-battery"


def signup(client: Client, **overrides: Any) -> Any:
    data = {"username": "ada", "email": "ada@example.org", "password1": STRONG, "password2": STRONG, **overrides}
    return client.post("/accounts/signup/", data)


def test_signup_page_has_labelled_fields(client):
    response = client.get("/accounts/signup/")
    assert response.status_code == 200
    body = response.content.decode()
    for name in ("username", "email", "password1", "password2"):
        assert f'<label for="id_{name}">' in body
    assert "csrfmiddlewaretoken" in body


def test_signup_logs_in_and_lands_on_add_your_first_site(client):
    response = signup(client)
    assert response.status_code == 302
    assert response["Location"] == "/sites/new/"
    user = User.objects.get(username="ada")
    assert user.email == "ada@example.org"
    assert user.check_password(STRONG)
    page = client.get("/sites/new/")
    assert page.status_code == 200
    assert "Add your first site" in page.content.decode()
    assert page.context["user"] == user


def test_signup_duplicate_username_and_email_are_refused(client):
    User.objects.create_user("ada", email="ada@example.org", password=STRONG)
    response = signup(client, username="Ada", email="other@example.org")
    assert response.status_code == 200
    assert "A user with that username already exists." in response.content.decode()
    response = signup(client, username="grace", email="ADA@example.org")
    assert response.status_code == 200
    assert "An account with this email already exists." in response.content.decode()
    assert User.objects.count() == 1


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("short1", "This password is too short."),
        ("password123", "This password is too common."),
        ("12345678901", "This password is entirely numeric."),
    ],
)
def test_signup_weak_password_is_refused(client, password, message):
    response = signup(client, password1=password, password2=password)
    assert response.status_code == 200
    assert message in response.content.decode()
    assert not User.objects.exists()
    assert "_auth_user_id" not in client.session


def test_signup_mismatched_passwords(client):
    response = signup(client, password2=STRONG + "x")
    assert response.status_code == 200
    assert "The two password fields didn\N{RIGHT SINGLE QUOTATION MARK}t match." in response.content.decode()


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
    for url in ("/accounts/login/", "/accounts/password_reset/", "/accounts/signup/"):
        response = client.get(url)
        assert response.status_code == 200
        names = [t.name for t in response.templates]
        assert names[0].startswith("accounts/"), names
        assert not any(name.startswith("registration/") or name.startswith("admin/") for name in names)

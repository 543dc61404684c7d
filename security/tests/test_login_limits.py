"""Sign-in limits on real Redis, through real CSRF checks: who can lock whom out.

Per IP every sign-in, sign-up and reset POST that passes CSRF counts; per username only failed
authentications count; a browser that signed in as that user before (a known-device cookie) is
not locked by strangers' failures.
"""

from __future__ import annotations

from typing import Any

import pytest
from django.core import mail, signing
from django.test import Client

from security.login_limits import _DEVICE_SALT as DEVICE_SALT
from security.login_limits import DEVICE_COOKIE, username_key

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("redis_cache", "frozen_clock")]

PASSWORD = "Dave-password-1"
LOGIN = "/accounts/login/"
ADMIN_LOGIN = "/admin/login/"
ip_counter = iter(range(1, 10_000))
FULL_WIDTH = "\uff44\uff41\uff56\uff45"  # dave in full-width letters
MATH_BOLD = "\U0001d41d\U0001d41a\U0001d42f\U0001d41e"  # dave in mathematical bold letters


def browser(ip: str | None = None) -> Client:
    """A browser with a fresh cookie jar, on its own address unless one is given; CSRF enforced."""
    if ip is None:
        n = next(ip_counter)
        ip = f"198.18.{n // 250}.{n % 250 + 1}"
    return Client(enforce_csrf_checks=True, REMOTE_ADDR=ip)


def sign_in(client: Client, username: str, password: str, path: str = LOGIN) -> Any:
    """What a person does: open the form (which sets the CSRF cookie), then post it."""
    client.get(path)
    token = client.cookies["csrftoken"].value
    return client.post(path, {"username": username, "password": password, "csrfmiddlewaretoken": token})


def forged_posts(client: Client, username: str, path: str = LOGIN, times: int = 12) -> list[int]:
    """Cross-site style POSTs: half without any token, half with a wrong one."""
    statuses = []
    for i in range(times):
        data = {"username": username, "password": "guess"}
        if i % 2:
            data["csrfmiddlewaretoken"] = "x" * 64
        statuses.append(client.post(path, data).status_code)
    return statuses


@pytest.fixture
def dave(django_user_model: Any) -> Any:
    return django_user_model.objects.create_user("dave", email="dave@example.org", password=PASSWORD, is_staff=True)


@pytest.mark.parametrize("path", [LOGIN, ADMIN_LOGIN])
def test_posts_that_fail_csrf_count_against_neither_the_username_nor_the_ip(settings, dave, path):
    settings.LOGIN_RATE = "3/m"
    stranger = browser("203.0.113.66")
    assert forged_posts(stranger, "dave", path) == [403] * 12

    # The real dave, from anywhere, with the right password.
    assert sign_in(browser(), "dave", PASSWORD, path).status_code == 302
    # The stranger's own address was not charged either: a real attempt is answered normally.
    assert sign_in(stranger, "nobody", "wrong", path).status_code == 200


@pytest.mark.parametrize("path", [LOGIN, ADMIN_LOGIN])
def test_the_username_limit_counts_failed_sign_ins_only(settings, dave, path):
    settings.LOGIN_RATE = "3/m"
    # Five good sign-ins from five new browsers are not five strikes.
    assert [sign_in(browser(), "dave", PASSWORD, path).status_code for _ in range(5)] == [302] * 5
    # Three failures from three addresses lock the username for browsers dave never used...
    assert [sign_in(browser(), "dave", "wrong", path).status_code for _ in range(3)] == [200] * 3
    locked = sign_in(browser(), "dave", PASSWORD, path)
    assert locked.status_code == 429
    assert 1 <= int(locked["Retry-After"]) <= 60
    page = locked.content.decode()
    assert "Too many failed sign-ins" in page
    assert "dashboard/app.css" in page  # a page in the app's layout, not bare text


def test_the_ip_limit_counts_every_attempt_that_passes_csrf(settings, dave):
    settings.LOGIN_RATE = "3/m"
    office = "203.0.113.90"
    statuses = [sign_in(browser(office), "dave", PASSWORD).status_code for _ in range(3)]
    statuses.append(sign_in(browser(office), "dave", PASSWORD).status_code)
    assert statuses == [302, 302, 302, 429]


def test_a_stranger_cannot_lock_dave_out_of_his_own_browser(settings, dave, frozen_clock):
    """The scenario of the issue, with the default limit (10 a minute)."""
    daves_browser = browser("192.0.2.10")
    assert sign_in(daves_browser, "dave", PASSWORD).status_code == 302  # last week, say
    daves_browser.post("/accounts/logout/", {"csrfmiddlewaretoken": daves_browser.cookies["csrftoken"].value})

    # A stranger: forged POSTs (not counted at all), then real wrong guesses from many addresses.
    assert forged_posts(browser("203.0.113.66"), "dave", times=14) == [403] * 14
    guesses = [sign_in(browser(), "dave", f"guess-{i}").status_code for i in range(12)]
    assert guesses == [200] * 10 + [429] * 2

    # dave's own browser is not locked by the stranger's failures.
    response = sign_in(daves_browser, "dave", PASSWORD)
    assert response.status_code == 302
    assert daves_browser.session["_auth_user_id"] == str(dave.pk)

    # A browser dave never signed in with waits until the window ends (the documented trade-off).
    new_laptop = browser("192.0.2.11")
    locked = sign_in(new_laptop, "dave", PASSWORD)
    assert locked.status_code == 429
    frozen_clock[0] += int(locked["Retry-After"]) + 1
    assert sign_in(new_laptop, "dave", PASSWORD).status_code == 302


def test_the_known_device_cookie_is_signed_httponly_lax_and_long_lived(settings, dave):
    settings.SESSION_COOKIE_SECURE = False
    response = sign_in(browser(), "dave", PASSWORD)
    cookie = response.cookies[DEVICE_COOKIE]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["secure"] == ""
    assert int(cookie["max-age"]) >= 180 * 24 * 3600

    settings.SESSION_COOKIE_SECURE = True
    assert sign_in(browser(), "dave", PASSWORD).cookies[DEVICE_COOKIE]["secure"] is True


def test_a_forged_or_foreign_device_cookie_does_not_unlock_the_username(settings, dave, django_user_model):
    settings.LOGIN_RATE = "3/m"
    django_user_model.objects.create_user("erin", password="Erin-password-1")
    erins_browser = browser()
    assert sign_in(erins_browser, "erin", "Erin-password-1").status_code == 302
    erins_cookie = erins_browser.cookies[DEVICE_COOKIE].value
    for _ in range(3):
        sign_in(browser(), "dave", "wrong")

    with_erins_cookie = browser()
    with_erins_cookie.cookies[DEVICE_COOKIE] = erins_cookie
    assert sign_in(with_erins_cookie, "dave", PASSWORD).status_code == 429

    tampered = browser()
    tampered.cookies[DEVICE_COOKIE] = erins_cookie[:-2] + ("xx" if not erins_cookie.endswith("xx") else "yy")
    assert sign_in(tampered, "dave", PASSWORD).status_code == 429

    # Well-formed and naming dave, but signed with another key than the server's.
    forged = browser()
    forged.cookies[DEVICE_COOKIE] = signing.dumps({"d": "x", "u": ["dave"]}, key="not-the-secret-key", salt=DEVICE_SALT)
    assert sign_in(forged, "dave", PASSWORD).status_code == 429


def test_failures_from_a_known_device_count_against_that_device_only(settings, dave):
    settings.LOGIN_RATE = "3/m"
    daves_browser = browser()
    assert sign_in(daves_browser, "dave", PASSWORD).status_code == 302
    cookie = daves_browser.cookies[DEVICE_COOKIE].value

    # Someone at dave's unlocked computer guesses, from changing addresses: the device is limited...
    statuses = []
    for i in range(4):
        moved = browser(f"192.0.2.{40 + i}")
        moved.cookies[DEVICE_COOKIE] = cookie
        statuses.append(sign_in(moved, "dave", "wrong").status_code)
    assert statuses == [200, 200, 200, 429]
    # ...and the username is not: another browser of dave's signs in.
    assert sign_in(browser(), "dave", PASSWORD).status_code == 302


@pytest.mark.parametrize("look_alike", [FULL_WIDTH, MATH_BOLD, "DAVE", " dave "])
def test_look_alike_usernames_share_daves_counter(settings, dave, look_alike):
    settings.LOGIN_RATE = "3/m"
    for _ in range(3):
        sign_in(browser(), "dave", "wrong")
    assert sign_in(browser(), look_alike, PASSWORD).status_code == 429


# Names MariaDB's collations match to an account (accents, an invisible character, a dotless i,
# other scripts' digits); SQLite compares exactly, so there they are simply other names.
COLLATION_ALIKES = ["Dāve", "da\u200bve", "davé", "\u0131ngrid", "dave\u0661"]


@pytest.mark.parametrize("look_alike", COLLATION_ALIKES)
def test_no_spelling_the_database_accepts_as_the_account_escapes_its_lock(settings, django_user_model, look_alike):
    settings.LOGIN_RATE = "3/m"
    real = {"Dāve": "dave", "da\u200bve": "dave", "davé": "dave", "\u0131ngrid": "ingrid", "dave\u0661": "dave1"}[
        look_alike
    ]
    user = django_user_model.objects.create_user(real, password=PASSWORD)
    for _ in range(3):
        assert sign_in(browser(), real, "wrong").status_code == 200
    client = browser()
    response = sign_in(client, look_alike, PASSWORD)
    assert response.status_code in (429, 200)  # 429 where the database matches it, a plain refusal elsewhere
    assert client.session.get("_auth_user_id") != str(user.pk)


def test_failures_under_look_alike_names_lock_the_real_name(settings, dave):
    settings.LOGIN_RATE = "3/m"
    for name in (FULL_WIDTH, MATH_BOLD, "DAVE"):
        assert sign_in(browser(), name, "wrong").status_code == 200
    assert sign_in(browser(), "dave", PASSWORD).status_code == 429


@pytest.mark.parametrize(
    ("raw", "key"),
    [
        ("dave", "dave"),
        (FULL_WIDTH, "dave"),  # full-width (NFKC, as AbstractBaseUser.normalize_username)
        (MATH_BOLD, "dave"),  # mathematical bold (NFKC)
        ("DaVe", "dave"),  # case (casefold)
        ("Straße", "strasse"),
        ("  dave ", "dave"),
    ],
)
def test_the_username_key_is_nfkc_and_casefold(raw, key):
    assert username_key(raw) == key


def test_an_overlong_username_key_is_bounded():
    assert len(username_key(FULL_WIDTH * 3_000)) == 150


@pytest.mark.parametrize("path", [LOGIN, ADMIN_LOGIN])
def test_sign_in_fails_closed_with_retry_after_when_redis_is_down(settings, dave, path):
    client = browser()
    client.get(path)
    token = client.cookies["csrftoken"].value
    settings.CACHES = {
        "default": {
            "BACKEND": "fathom.cache.FastRedisCache",
            "LOCATION": "redis://127.0.0.1:1/0",
            "OPTIONS": {"socket_connect_timeout": 0.2, "socket_timeout": 0.2},
        }
    }
    response = client.post(path, {"username": "dave", "password": PASSWORD, "csrfmiddlewaretoken": token})
    assert response.status_code == 503
    assert response["Retry-After"] == "30"
    assert "_auth_user_id" not in client.session


@pytest.mark.parametrize(
    ("path", "data"),
    [
        ("/accounts/signup/", {"username": "newbie", "email": "newbie@example.org"}),
        ("/accounts/password_reset/", {"email": "dave@example.org"}),
    ],
)
def test_sign_up_and_reset_posts_are_limited_per_ip_after_csrf(settings, dave, path, data):
    settings.LOGIN_RATE = "3/m"
    client = browser("203.0.113.77")
    assert [client.post(path, data).status_code for _ in range(6)] == [403] * 6  # forged: not counted
    client.get(path)
    token = client.cookies["csrftoken"].value
    statuses = [client.post(path, {**data, "csrfmiddlewaretoken": token}).status_code for _ in range(4)]
    assert statuses == [302, 302, 302, 429]


def test_reset_emails_to_one_address_are_limited_whoever_asks(settings, dave):
    settings.ACCOUNT_EMAIL_RATE = "2/h"
    for _ in range(5):
        client = browser()
        client.get("/accounts/password_reset/")
        response = client.post(
            "/accounts/password_reset/",
            {"email": "dave@example.org", "csrfmiddlewaretoken": client.cookies["csrftoken"].value},
        )
        assert response["Location"] == "/accounts/password_reset/done/"  # the same answer every time
    assert [message.to for message in mail.outbox] == [["dave@example.org"]] * 2

"""The sites pages in real headless Chromium against the live server: sign up (confirming the
address from the email), add a site, copy the snippet (the clipboard is read back), then the
settings page on a phone in dark mode: create an API key and copy it with the keyboard.
Screenshots go to artifacts/."""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core import mail

from dashboard.models import ApiKey
from sites.models import Site
from testing import ARTIFACTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "Browser-test-passphrase-1"


def new_page(chromium: Any, live_server: Any, **options: Any) -> Any:
    context = chromium.new_context(
        base_url=live_server.url, permissions=["clipboard-read", "clipboard-write"], **options
    )
    context.set_default_timeout(10_000)
    return context.new_page()


def test_sign_up_add_a_site_and_copy_the_snippet(chromium, live_server):
    ARTIFACTS.mkdir(exist_ok=True)
    page = new_page(chromium, live_server, viewport={"width": 1280, "height": 900}, timezone_id="Europe/Berlin")
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    page.goto("/accounts/signup/")
    page.get_by_label("Username").fill("ada")
    page.get_by_label("Email").fill("ada@example.org")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(re.compile(r"/accounts/signup/done/$"))
    assert page.get_by_role("heading", name="Check your inbox").is_visible()

    # The link in the email: confirm the address and choose the password.
    (message,) = mail.outbox
    assert message.to == ["ada@example.org"]
    page.goto(re.search(r"https?://\S+/accounts/signup/confirm/\S+/", message.body).group(0))
    assert page.get_by_label("Username").input_value() == "ada"
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Password confirmation").fill(PASSWORD)
    page.get_by_role("button", name="Create my account").click()

    page.wait_for_url(re.compile(r"/sites/new/$"))
    assert page.get_by_role("heading", name="Add your first site").is_visible()
    # sites.js preselects the browser's time zone
    assert page.get_by_label("Time zone").input_value() == "Europe/Berlin"
    page.get_by_label("Domain").fill("https://www.Acme-Shop.example/")
    page.get_by_label("Name").fill("Acme Shop")
    page.get_by_role("button", name="Add the site").click()

    page.wait_for_url(re.compile(r"/snippet/$"))
    site = Site.objects.get(domain="acme-shop.example")
    assert site.owner.username == "ada"
    assert site.timezone == "Europe/Berlin"
    expected = f'<script defer src="{live_server.url}/script.js" data-site="{site.public_id}"></script>'
    assert page.locator("#snippet").inner_text() == expected
    assert page.get_by_text("acme-shop.example is added").is_visible()

    button = page.get_by_role("button", name="Copy snippet")
    button.click()
    page.get_by_role("button", name="Copied!").wait_for()
    assert page.get_by_role("status").filter(has_text="Copied to the clipboard.").count() == 1
    assert page.evaluate("navigator.clipboard.readText()") == expected
    page.screenshot(path=str(ARTIFACTS / "sites_add.png"), full_page=True)

    # the new site is in the list, with its numbers
    page.goto("/")
    card = page.locator(f'li[data-site="{site.public_id}"]')
    assert card.get_by_role("heading", name="Acme Shop").is_visible()
    assert card.locator('[data-stat="today"]').inner_text() == "0"
    assert card.locator("svg.sparkline").count() == 1
    page.screenshot(path=str(ARTIFACTS / "sites_list.png"), full_page=True)
    assert errors == []


def test_settings_on_a_phone_in_dark_mode_api_key_copied_with_the_keyboard(chromium, live_server, django_user_model):
    ARTIFACTS.mkdir(exist_ok=True)
    user = django_user_model.objects.create_user("grace", email="grace@example.org", password=PASSWORD)
    site = Site.objects.create(domain="grace.example", name="Grace", owner=user)
    page = new_page(chromium, live_server, viewport={"width": 390, "height": 844}, color_scheme="dark", is_mobile=True)
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill("grace")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))

    page.goto(f"/sites/{site.public_id}/settings/")
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(15, 20, 26)"  # app.css's dark --bg
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")  # no sideways scroll

    page.get_by_label("Key name").fill("Phone script")
    page.get_by_role("button", name="Create a key").click()
    secret = page.locator("#new-key").inner_text()
    assert secret.startswith("fk_")
    assert len(secret) == 43
    assert ApiKey.objects.get(user=user).prefix == secret[:8]

    page.get_by_role("button", name="Copy key").focus()
    page.keyboard.press("Enter")
    page.get_by_role("button", name="Copied!").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    focused_outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert focused_outline == "solid"  # focus stays visible
    page.screenshot(path=str(ARTIFACTS / "sites_settings_phone_dark.png"), full_page=True)

"""Every kind of page works in real Chromium under the Content-Security-Policy: the header is
there, and the browser reports no refused script, style or image while the page does its job
(the dashboard's breakdown bars, the security chart, Swagger UI's operations, the admin)."""

from __future__ import annotations

import io
from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from sites.models import Site
from testing import CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# Records what the browser refused, from the first script of every document on.
LISTEN = """
window.__refused = [];
document.addEventListener('securitypolicyviolation',
  (e) => window.__refused.push(`${e.violatedDirective} ${e.blockedURI} ${e.sourceFile}:${e.lineNumber}`));
"""


def visit(page: Any, url: str, ready: str) -> dict[str, str]:
    """Open url, wait for `ready` to show and the network to settle; the main response's headers."""
    response = page.goto(url)
    assert response is not None, url
    assert response.status == 200, (url, response.status)
    page.locator(ready).first.wait_for(timeout=15_000)
    page.wait_for_load_state("networkidle")
    return response.headers


def test_pages_run_under_the_content_security_policy_without_a_refusal(playwright, live_server):
    call_command("seed_demo", "--days", "3", "--visitors-per-day", "15", stdout=io.StringIO())
    site = Site.objects.get(domain="demo.fathom.test")
    get_user_model().objects.filter(username="demo").update(is_staff=True, is_superuser=True)

    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    console: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(LISTEN)
        page.on("console", lambda message: console.append(message.text))
        base = live_server.url

        visit(page, f"{base}/accounts/login/", "form")
        page.fill("input[name=username]", "demo")
        page.fill("input[name=password]", "demo-password")
        page.click("button[type=submit]")
        page.wait_for_url(f"{base}/")

        pages = [
            (f"{base}/", "main"),
            (f"{base}/sites/{site.public_id}/?period=7d", "#panel-pages table"),
            (f"{base}/sites/{site.public_id}/settings/", "form"),
            (f"{base}/security/", "svg.chart"),
            (f"{base}/api/docs/", ".opblock-summary-path"),
            (f"{base}/admin/", "#content"),
        ]
        refused: dict[str, list[str]] = {}
        for url, ready in pages:
            headers = visit(page, url, ready)
            assert "script-src 'self'" in headers.get("content-security-policy", ""), url
            if page.evaluate("window.__refused.length"):
                refused[url] = page.evaluate("window.__refused")
            if url.endswith("?period=7d"):
                # The bar behind each breakdown row is drawn: the top row's spans the whole cell.
                cell = page.locator("#panel-pages th.label-cell").first
                bar = cell.locator("svg.bar rect")
                assert bar.get_attribute("width") == "100"
                assert bar.bounding_box()["width"] >= cell.bounding_box()["width"] - 1
            if url.endswith("/api/docs/"):
                assert page.locator(".opblock-summary-path").count() == 4  # Swagger UI ran its start-up script
    finally:
        browser.close()
    assert refused == {}
    assert not [text for text in console if "Content Security Policy" in text], console

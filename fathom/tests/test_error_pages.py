"""What nobody's view answers: a friendly page in the app's layout for people, JSON for API
clients, and a page that says what to do when a form's CSRF token has expired."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.test import Client, RequestFactory

from fathom import errors

pytestmark = pytest.mark.django_db


def test_an_unknown_page_is_a_friendly_404_in_the_app_layout(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Page not found" in page
    assert 'href="/"' in page  # the way back to the sites
    assert "dashboard/app.css" in page


def test_an_unknown_api_path_answers_json(client):
    response = client.get("/api/v1/stats/nope", {"site_id": "example.com"})
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_a_query_django_refuses_is_a_friendly_400_not_a_bare_page():
    # More query parameters than DATA_UPLOAD_MAX_NUMBER_FIELDS: Django refuses the request.
    query = "&".join(f"k{i}=v" for i in range(1500))
    response = Client(raise_request_exception=False).get(f"/accounts/login/?{query}")
    assert response.status_code == 400
    assert "Bad request" in response.content.decode()


def test_a_sign_in_without_a_valid_csrf_token_explains_what_to_do():
    get_user_model().objects.create_user("dave", password="right-password-123")
    client = Client(enforce_csrf_checks=True)
    response = client.post("/accounts/login/", {"username": "dave", "password": "right-password-123"})
    assert response.status_code == 403
    page = response.content.decode()
    assert "Reload the page and try again" in page
    assert "CSRF verification failed" not in page  # not Django's technical page


def test_a_server_error_is_a_page_for_people_and_json_for_the_api():
    page = errors.server_error(RequestFactory().get("/sites/ABCDEFGH/"))
    assert page.status_code == 500
    assert "Something went wrong" in page.content.decode()
    api = errors.server_error(RequestFactory().get("/api/v1/stats/aggregate"))
    assert api.status_code == 500
    assert api["Content-Type"] == "application/json"

"""The Stats API's OpenAPI schema (/api/schema/) and Swagger UI (/api/docs/).

The schema is checked as a contract: real answers of the API, on the traffic of
testing.replay, are validated against the response schemas it publishes (strictly: a field the
API returns but the schema does not list fails), so the docs cannot drift from the code.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import jsonschema
import pytest
import yaml
from django.contrib.auth import get_user_model
from django.contrib.staticfiles import finders
from django.core.management import call_command
from django.test import Client

from dashboard import api, api_schema
from dashboard.api_keys import apikey_create
from dashboard.selectors import METRICS, PROPERTIES
from dashboard.selectors.periods import INTERVALS, PERIODS
from sites.models import Site
from testing import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS

pytestmark = pytest.mark.django_db

FRIDAY = "2026-11-20"
PATHS = {
    "/api/v1/stats/realtime/visitors",
    "/api/v1/stats/aggregate",
    "/api/v1/stats/timeseries",
    "/api/v1/stats/breakdown",
}


@pytest.fixture
def schema(db: Any) -> dict[str, Any]:
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200, response.content
    return json.loads(response.content)


def operation(schema: dict[str, Any], endpoint: str) -> dict[str, Any]:
    return schema["paths"][f"/api/v1/stats/{endpoint}"]["get"]


def parameters(schema: dict[str, Any], endpoint: str) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation(schema, endpoint)["parameters"] if p["in"] == "query"}


# -- what the schema says ---------------------------------------------------------------------


def test_the_schema_lists_exactly_the_four_stats_api_operations(schema):
    assert set(schema["paths"]) == PATHS
    for path in PATHS:
        assert set(schema["paths"][path]) == {"get"}
    endpoints = ("realtime/visitors", "aggregate", "timeseries", "breakdown")
    assert [operation(schema, e)["operationId"] for e in endpoints] == [
        "stats_realtime_visitors",
        "stats_aggregate",
        "stats_timeseries",
        "stats_breakdown",
    ]


def test_each_operation_lists_the_query_parameters_its_view_reads(schema):
    assert set(parameters(schema, "realtime/visitors")) == {"site_id"}
    assert set(parameters(schema, "aggregate")) == {"site_id", "period", "date", "metrics", "filters", "compare"}
    assert set(parameters(schema, "timeseries")) == {"site_id", "period", "date", "metrics", "filters", "interval"}
    assert set(parameters(schema, "breakdown")) == {
        *("site_id", "period", "date", "metrics", "filters", "property", "limit", "page"),
    }
    for endpoint in ("realtime/visitors", "aggregate", "timeseries", "breakdown"):
        assert parameters(schema, endpoint)["site_id"]["required"] is True
        assert operation(schema, endpoint)["description"]
        assert operation(schema, endpoint)["tags"] == ["Stats API"]
    assert parameters(schema, "breakdown")["property"]["required"] is True


def test_parameters_carry_the_allowed_values(schema):
    aggregate = parameters(schema, "aggregate")
    assert set(aggregate["period"]["schema"]["enum"]) == set(PERIODS)
    assert aggregate["period"]["schema"]["default"] == "30d"
    assert aggregate["compare"]["schema"]["enum"] == ["previous_period"]
    metrics = aggregate["metrics"]
    # A comma-separated list: form style, not exploded.
    assert (metrics["style"], metrics["explode"], metrics["schema"]["type"]) == ("form", False, "array")
    assert set(metrics["schema"]["items"]["enum"]) == set(METRICS)
    assert set(parameters(schema, "timeseries")["interval"]["schema"]["enum"]) == set(INTERVALS)
    breakdown = parameters(schema, "breakdown")
    assert set(breakdown["property"]["schema"]["enum"]) == set(PROPERTIES)
    assert breakdown["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": api.MAX_LIMIT, "default": 100}
    assert breakdown["page"]["schema"]["maximum"] == api.MAX_PAGE
    assert (api_schema.DEFAULT_LIMIT, api_schema.MAX_LIMIT, api_schema.MAX_PAGE) == (
        api.DEFAULT_LIMIT,
        api.MAX_LIMIT,
        api.MAX_PAGE,
    )


def test_the_bearer_scheme_is_declared_and_required(schema):
    assert schema["components"]["securitySchemes"]["bearerAuth"]["type"] == "http"
    assert schema["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    for path in PATHS:
        assert {"bearerAuth": []} in schema["paths"][path]["get"]["security"]
        assert {} not in schema["paths"][path]["get"]["security"]  # never anonymous


def test_every_operation_documents_its_error_responses(schema):
    for path in PATHS:
        responses = schema["paths"][path]["get"]["responses"]
        assert set(responses) == {"200", "400", "401", "404", "429"}
        for status in ("400", "401", "404", "429"):
            body = responses[status]["content"]["application/json"]["schema"]
            assert body == {"$ref": "#/components/schemas/StatsError"}
        assert "Retry-After" in responses["429"]["headers"]
    assert schema["components"]["schemas"]["StatsError"]["required"] == ["error"]


def test_the_schema_command_validates_without_warnings(tmp_path):
    """What `make check-migrations` runs; it reads the root urlconf, and must agree with /api/schema/."""
    out = tmp_path / "schema.yaml"
    call_command("spectacular", "--validate", "--fail-on-warn", "--file", str(out))
    assert set(yaml.safe_load(out.read_text())["paths"]) == PATHS


# -- the schema as a contract -----------------------------------------------------------------


def strict_json_schema(openapi: dict[str, Any], ref: str) -> dict[str, Any]:
    """An OpenAPI 3.0 schema -> JSON Schema: `nullable` becomes a "null" type, and objects
    admit no undocumented property (so an extra field in an answer fails the check)."""

    def convert(node: Any) -> Any:
        if isinstance(node, list):
            return [convert(item) for item in node]
        if not isinstance(node, dict):
            return node
        node = {key: convert(value) for key, value in node.items()}
        if node.pop("nullable", False):
            node["type"] = [node["type"], "null"]
        if node.get("type") == "object" and "properties" in node:
            node.setdefault("additionalProperties", False)
        return node

    return {"$ref": ref, "components": convert(copy.deepcopy(openapi["components"]))}


def response_schema(openapi: dict[str, Any], endpoint: str, status: int) -> dict[str, Any]:
    content = operation(openapi, endpoint)["responses"][str(status)]["content"]["application/json"]["schema"]
    if "$ref" in content:
        return strict_json_schema(openapi, content["$ref"])
    return content


def check(openapi: dict[str, Any], endpoint: str, response: Any) -> Any:
    """The answer, after checking it against the schema of its endpoint and status."""
    body = response.json()
    jsonschema.validate(body, response_schema(openapi, endpoint, response.status_code), jsonschema.Draft7Validator)
    return body


def get(endpoint: str, key: str | None, **params: Any) -> Any:
    headers = {"HTTP_AUTHORIZATION": f"Bearer {key}"} if key else {}
    return Client().get(f"/api/v1/stats/{endpoint}", {"site_id": "example.com", **params}, **headers)


def test_the_check_is_not_vacuous(schema):
    aggregate = response_schema(schema, "aggregate", 200)
    jsonschema.validate({"results": {"visitors": {"value": 4, "change": None}}}, aggregate)
    for wrong in (
        {"results": {"visitors": {"value": "4"}}},  # a string
        {"results": {"visitors": {"value": 4, "trend": "up"}}},  # an undocumented field
        {"results": {"sessions": {"value": 4}}},  # an unknown metric
        {"results": [{"visitors": 4}]},  # a list
        {},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(wrong, aggregate)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate({"results": [{"visitors": 4}]}, response_schema(schema, "timeseries", 200))  # no date


def test_realtime_answers_match_the_schema(schema, owned_scripted_site, key):
    response = get("realtime/visitors", key)
    assert response.status_code == 200
    assert check(schema, "realtime/visitors", response) == 0


def test_aggregate_answers_match_the_schema(schema, owned_scripted_site, key):
    every = ",".join(METRICS)
    plain = check(schema, "aggregate", get("aggregate", key, period="day", date=FRIDAY, metrics=every))
    assert plain["results"]["views_per_visit"] == {"value": 1.4}
    compared = get("aggregate", key, period="day", date=FRIDAY, metrics=every, compare="previous_period")
    assert check(schema, "aggregate", compared)["results"]["events"] == {"value": 2, "change": None}
    filtered = get("aggregate", key, period="day", date=FRIDAY, metrics=every, filters="visit:source==Google")
    assert check(schema, "aggregate", filtered)["results"]["visitors"] == {"value": 1}


def test_timeseries_answers_match_the_schema(schema, owned_scripted_site, key):
    every = ",".join(METRICS)
    for params in (
        {"period": "day", "date": FRIDAY},
        {"period": "7d", "date": FRIDAY},
        {"period": "12mo", "date": FRIDAY},
        {"period": "day", "date": FRIDAY, "filters": "event:page==/"},
    ):
        rows = check(schema, "timeseries", get("timeseries", key, metrics=every, **params))["results"]
        assert rows
        assert all(set(row) == {"date", *METRICS} for row in rows)


@pytest.mark.parametrize("prop", list(PROPERTIES))
def test_breakdown_answers_match_the_schema(schema, owned_scripted_site, key, prop):
    metrics = ",".join(PROPERTIES[prop].metrics)
    for filters in ("", "visit:country!=ZZ"):
        response = get("breakdown", key, period="day", date=FRIDAY, property=prop, metrics=metrics, filters=filters)
        rows = check(schema, "breakdown", response)["results"]
        assert rows, prop
        assert all(PROPERTIES[prop].short in row for row in rows)


def test_error_answers_match_the_schema(schema, owned_scripted_site, key, settings, frozen_clock):
    bad = get("aggregate", key, metrics="sessions")
    assert bad.status_code == 400
    assert "unknown metric" in check(schema, "aggregate", bad)["error"]
    anonymous = get("timeseries", None)
    assert anonymous.status_code == 401
    check(schema, "timeseries", anonymous)
    unknown = Client().get("/api/v1/stats/breakdown", {"site_id": "nope.example"}, HTTP_AUTHORIZATION=f"Bearer {key}")
    assert unknown.status_code == 404
    check(schema, "breakdown", unknown)
    settings.API_RATE = "1/m"
    assert get("realtime/visitors", key).status_code == 200
    limited = get("realtime/visitors", key)
    assert limited.status_code == 429
    assert check(schema, "realtime/visitors", limited) == {"error": "rate limited, retry later"}
    assert limited["Retry-After"].isdigit()


# -- public pages -----------------------------------------------------------------------------

SIDECAR = "drf_spectacular_sidecar/swagger-ui-dist/"


def test_schema_and_docs_are_public_but_the_api_is_not(db):
    anonymous = Client()
    assert anonymous.get("/api/schema/").status_code == 200
    assert anonymous.get("/api/docs/").status_code == 200
    assert anonymous.get("/api/v1/stats/aggregate", {"site_id": "example.com"}).status_code == 401


def test_the_docs_page_loads_swagger_ui_from_our_static_files(db, settings):
    response = Client().get("/api/docs/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    for asset in ("swagger-ui.css", "swagger-ui-bundle.js", "swagger-ui-standalone-preset.js"):
        assert f"/static/{SIDECAR}{asset}" in html
        assert finders.find(SIDECAR + asset), asset  # shipped by drf-spectacular-sidecar
    # No inline script (the Content-Security-Policy refuses them): the start-up script, which
    # points Swagger UI at the schema, comes from its own URL.
    assert '<script src="/api/docs/?script="></script>' in html
    assert "<script>" not in html
    assert "<style>" not in html
    script = Client().get("/api/docs/", {"script": ""})
    assert script["Content-Type"].startswith("application/javascript")
    assert "/api/schema/" in script.content.decode()
    for cdn in ("cdn.jsdelivr.net", "unpkg.com", "cdnjs", "https://", "http://"):
        assert cdn not in html
    # WhiteNoise serves the file at that URL (from the finders here; from collectstatic's output
    # in production, where WHITENOISE_USE_FINDERS is off).
    settings.WHITENOISE_USE_FINDERS = True
    asset = Client().get(f"/static/{SIDECAR}swagger-ui-bundle.js")
    assert asset.status_code == 200
    assert "javascript" in asset["Content-Type"]


@pytest.mark.browser
def test_the_docs_page_shows_the_four_operations_in_chromium(playwright, live_server, transactional_db):
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    requested: list[str] = []
    failed: list[str] = []
    try:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.on("request", lambda request: requested.append(request.url))
        page.on("requestfailed", lambda request: failed.append(request.url))
        page.on("response", lambda response: response.status >= 400 and failed.append(response.url))
        page.goto(f"{live_server.url}/api/docs/")
        page.wait_for_selector(".opblock-summary-path", timeout=15_000)
        shown = set(page.locator(".opblock-summary-path").all_inner_texts())
        assert {text.replace("\u200b", "") for text in shown} == PATHS
        assert page.locator("button.authorize").count() == 1  # the Bearer scheme
        page.locator(".opblock-summary-path", has_text="breakdown").click()
        page.wait_for_selector(".parameters-col_name", timeout=5_000)
        ARTIFACTS.mkdir(exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / "api_docs.png"), full_page=True)

        # The docs work: authorize with a key, then "Try it out" on aggregate answers 200.
        owner = get_user_model().objects.create_user("owner")
        Site.objects.create(domain="example.com", owner=owner)
        _, key = apikey_create(user=owner, name="docs")
        page.locator("button.authorize").first.click()
        page.locator(".auth-container", has_text="bearerAuth").locator("input").fill(key)
        page.locator(".auth-container", has_text="bearerAuth").locator("button.authorize").click()
        page.locator("button.btn-done").first.click()
        aggregate = page.locator(".opblock", has_text="/api/v1/stats/aggregate")
        aggregate.locator(".opblock-summary-path").click()
        aggregate.locator("button.try-out__btn").click()
        aggregate.locator('tr[data-param-name="site_id"] input').fill("example.com")
        aggregate.locator("button.execute").click()
        answer = aggregate.locator(".live-responses-table tr.response").first
        answer.wait_for(timeout=10_000)
        assert answer.locator(".response-col_status").inner_text().strip() == "200"
        assert '"results"' in answer.locator(".response-col_description").inner_text()
    finally:
        browser.close()
    assert not failed, failed
    assert requested
    assert all(url.startswith(live_server.url) for url in requested), requested
    assert any(SIDECAR + "swagger-ui-bundle.js" in url for url in requested)

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_settings(**env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in {"SECRET_KEY", "DEBUG", "REDIS_URL", "ALLOW_LOCMEM_CACHE"}}
    return subprocess.run(
        [sys.executable, "-c", "import fathom.settings as s; print(s.CACHES['default']['BACKEND'])"],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        check=False,
    )


def test_production_refuses_to_start_without_a_secret_key():
    result = load_settings(DEBUG="0", REDIS_URL="redis://127.0.0.1:6379/0")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_production_refuses_the_local_memory_cache():
    result = load_settings(DEBUG="0", SECRET_KEY="x" * 50)
    assert result.returncode != 0
    assert "REDIS_URL must be set" in result.stderr


def test_production_refuses_a_wildcard_host():
    result = load_settings(DEBUG="0", SECRET_KEY="x" * 50, REDIS_URL="redis://127.0.0.1:6379/0", ALLOWED_HOSTS="*")
    assert result.returncode != 0
    assert "ALLOWED_HOSTS=*" in result.stderr


def test_local_defaults_need_nothing():
    result = load_settings(DEBUG="1")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "django.core.cache.backends.locmem.LocMemCache"


def test_healthz_does_no_io(client):
    # No django_db mark: pytest-django makes any database access in this test an error.
    response = client.get("/healthz")
    assert response.json() == {"status": "ok"}


@pytest.mark.django_db
def test_readyz_checks_database_cache_and_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "checks": {"database": "ok", "cache": "ok", "broker": "inline"}}


@pytest.mark.django_db
def test_readyz_reports_an_unreachable_broker(client, settings):
    from conftest import reset_celery_connections
    from fathom.celery import app

    old = app.conf.broker_url
    app.conf.broker_url = "redis://127.0.0.1:1/0"
    settings.CELERY_TASK_ALWAYS_EAGER = False
    reset_celery_connections(app)
    try:
        response = client.get("/readyz")
    finally:
        app.conf.broker_url = old
        reset_celery_connections(app)
    assert response.status_code == 503
    assert response.json()["status"] == "fail"
    assert response.json()["checks"]["broker"] != "ok"

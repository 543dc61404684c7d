from __future__ import annotations

import json
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


# ---- development by default, production where it cannot be mistaken --------------------------

REDIS = "redis://127.0.0.1:6379/0"


def fresh_shell(**env: str) -> dict[str, str]:
    """A new user's shell in a fresh clone: nothing set but PATH and HOME (not this test run's settings)."""
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": os.environ.get("HOME", "/tmp"), **env}


def lambda_shell(**env: str) -> dict[str, str]:
    """What a Lambda function of zappa_settings.json sees: its aws_environment_variables and the runtime's own."""
    zappa = json.loads((ROOT / "zappa_settings.json").read_text())
    return fresh_shell(
        **zappa["base"]["aws_environment_variables"], AWS_LAMBDA_FUNCTION_NAME="fathom-production", **env
    )


def settings_in(env: dict[str, str], *names: str) -> subprocess.CompletedProcess:
    code = f"import json, fathom.settings as s; print(json.dumps({{n: getattr(s, n) for n in {names!r}}}, default=str))"
    return subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=False)


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=fresh_shell(**env),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_a_fresh_clone_runs_local_development_settings():
    result = settings_in(
        fresh_shell(), "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "DATABASES", "CACHES", "CELERY_TASK_ALWAYS_EAGER"
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["DEBUG"] is True
    assert "insecure" in found["SECRET_KEY"]
    assert found["ALLOWED_HOSTS"] == ["localhost", "127.0.0.1", "[::1]"]
    assert found["DATABASES"]["default"]["ENGINE"] == "django.db.backends.sqlite3"
    assert found["CACHES"]["default"]["BACKEND"] == "django.core.cache.backends.locmem.LocMemCache"
    assert found["CELERY_TASK_ALWAYS_EAGER"] is True


PRODUCTION_MARKERS = {
    "on Lambda": {"AWS_LAMBDA_FUNCTION_NAME": "fathom-production"},
    "ENVIRONMENT=production": {"ENVIRONMENT": "production"},
    "DEBUG=0": {"DEBUG": "0"},
    "on Lambda with DEBUG=1": {"AWS_LAMBDA_FUNCTION_NAME": "fathom-production", "DEBUG": "1"},
    "ENVIRONMENT=production with DEBUG=1": {"ENVIRONMENT": "production", "DEBUG": "1"},
}
COMPLETE = {"SECRET_KEY": "x" * 50, "REDIS_URL": REDIS, "ALLOWED_HOSTS": "a.test"}


@pytest.mark.parametrize("marker", PRODUCTION_MARKERS.values(), ids=PRODUCTION_MARKERS.keys())
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"SECRET_KEY": ""}, "SECRET_KEY must be set"),
        ({"REDIS_URL": ""}, "REDIS_URL must be set"),
        ({"ALLOWED_HOSTS": ""}, "ALLOWED_HOSTS must name"),
        ({"ALLOWED_HOSTS": "a.test,*"}, "ALLOWED_HOSTS=*"),
    ],
    ids=["no secret key", "no redis", "no hosts", "wildcard host"],
)
def test_production_refuses_to_start_without_its_secret_key_redis_and_real_hosts(marker, change, message):
    result = settings_in(fresh_shell(**{**COMPLETE, **marker, **change}), "DEBUG")
    assert result.returncode != 0
    assert message in result.stderr


@pytest.mark.parametrize("marker", PRODUCTION_MARKERS.values(), ids=PRODUCTION_MARKERS.keys())
def test_production_with_everything_set_starts(marker):
    result = settings_in(fresh_shell(**COMPLETE, **marker), "SECRET_KEY", "CACHES")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["SECRET_KEY"] == "x" * 50
    assert found["CACHES"]["default"]["LOCATION"] == REDIS


def test_an_unknown_environment_name_is_refused_rather_than_taken_for_development():
    result = settings_in(fresh_shell(ENVIRONMENT="prod"), "DEBUG")
    assert result.returncode != 0
    assert "ENVIRONMENT must be production or development" in result.stderr


def test_a_lambda_function_without_its_secret_key_refuses_to_start():
    # zappa_settings.json holds no secret: until SECRET_KEY is set on the function, nothing runs.
    result = settings_in(lambda_shell(REDIS_URL=REDIS), "DEBUG")
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr


def test_a_lambda_function_with_its_secrets_runs_production_settings():
    result = settings_in(
        lambda_shell(SECRET_KEY="x" * 50, REDIS_URL=REDIS),
        "DEBUG",
        "SESSION_COOKIE_SECURE",
        "SECURE_HSTS_SECONDS",
        "WHITENOISE_USE_FINDERS",
        "CELERY_TASK_ALWAYS_EAGER",
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {
        "DEBUG": False,
        "SESSION_COOKIE_SECURE": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "WHITENOISE_USE_FINDERS": False,
        "CELERY_TASK_ALWAYS_EAGER": False,
    }


def test_manage_py_help_lists_the_projects_commands_in_a_fresh_clone():
    done = manage("help")
    assert done.returncode == 0, done.stderr
    listed = {line.strip() for line in done.stdout.splitlines()}
    for name in ("createsite", "seed_demo", "createapikey", "ban", "unban", "cost_estimate", "send_reports"):
        assert name in listed
    assert "only Django core commands are listed" not in done.stdout + done.stderr


@pytest.fixture(scope="module")
def fresh_database(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """A fresh clone's SQLite database, migrated, kept out of the checkout."""
    env = {"DATABASE_URL": f"sqlite:///{tmp_path_factory.mktemp('fresh-clone') / 'db.sqlite3'}"}
    done = manage("migrate", "--noinput", "-v", "0", **env)
    assert done.returncode == 0, done.stderr
    return env


def test_manage_py_createsite_runs_in_a_fresh_clone(fresh_database):
    done = manage("createsite", "example.org", **fresh_database)
    assert done.returncode == 0, done.stderr
    assert len(done.stdout.strip()) == 8  # the site id, alone on stdout (scripts read it)
    assert "No owner" in done.stderr


def test_manage_py_ban_runs_in_a_fresh_clone(fresh_database):
    done = manage("ban", "203.0.113.9", "--for", "1h", **fresh_database)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("banned 203.0.113.9")
    assert done.stdout.strip().endswith("scope all")


def test_manage_py_cost_estimate_runs_in_a_fresh_clone():
    done = manage("cost_estimate", "--hits-per-month", "1000000")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("Monthly AWS cost of 1,000,000 collector hits")
    assert "TOTAL" in done.stdout


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
    from fathom.celery import app
    from testing import reset_celery_connections

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

"""Shared fixtures (helpers and constants are in testing.py). Real services only: Redis and
MariaDB are used where a test needs them, and a test that cannot reach one is skipped loudly
locally and fails the run in CI."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from django.core.cache import cache
from django.test import Client

from collector import salts
from sites import cache as site_cache
from testing import CHROME_UA, CHROMIUM, CHROMIUM_ARGS, REGION, require_service, reset_celery_connections

REDIS_HOST, REDIS_PORT = "127.0.0.1", 6379
# Redis databases the broker and cache fixtures flush; two suites run at once need their own pair.
REDIS_BROKER_DB = int(os.environ.get("FATHOM_TEST_REDIS_BROKER_DB", "14"))
REDIS_CACHE_DB = int(os.environ.get("FATHOM_TEST_REDIS_CACHE_DB", "15"))
# Which analytics store the tests marked `analytics` run on: "sql" (the Django database, the
# default) or "chdb" (the ClickHouse store, embedded: `make test-chdb`).
TEST_ANALYTICS = os.environ.get("FATHOM_TEST_ANALYTICS", "sql")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """With FATHOM_TEST_ANALYTICS=chdb, the tests marked `sql_store` (they read the Django
    database's analytics tables themselves) are deselected: they have nothing to read there."""
    if TEST_ANALYTICS not in ("sql", "chdb"):
        raise pytest.UsageError(f"FATHOM_TEST_ANALYTICS must be sql or chdb, not {TEST_ANALYTICS!r}")
    if TEST_ANALYTICS != "chdb":
        return
    kept = [item for item in items if not item.get_closest_marker("sql_store")]
    if len(kept) != len(items):
        config.hook.pytest_deselected(items=[item for item in items if item.get_closest_marker("sql_store")])
        items[:] = kept


@pytest.fixture(autouse=True)
def _analytics_store(request: pytest.FixtureRequest) -> None:
    """Every test marked `analytics` runs on the store FATHOM_TEST_ANALYTICS names: with chdb,
    the clickhouse_store fixture is set up before the test's own fixtures write any traffic
    (autouse fixtures come first), so the collector writes ClickHouse and the selectors read it."""
    if TEST_ANALYTICS == "chdb" and request.node.get_closest_marker("analytics"):
        request.getfixturevalue("clickhouse_store")


@pytest.fixture(autouse=True)
def _fresh_caches() -> Iterator[None]:
    """Each test starts with empty caches: site and salt lookups must not leak between tests."""
    from collector import ingest
    from security import bans

    cache.clear()
    site_cache.clear_local_cache()
    salts._LOCAL.clear()
    bans.forget_snapshot()
    ingest._BAN_TOKENS.clear()
    yield
    bans.forget_snapshot()
    site_cache.clear_local_cache()
    salts._LOCAL.clear()


@pytest.fixture(scope="session")
def _chdb_url(tmp_path_factory: pytest.TempPathFactory) -> str:
    """This test process's embedded ClickHouse (chdb): one directory per process (chdb allows no
    other), created and migrated once."""
    from django.test import override_settings

    from analytics import migrator, store

    url = f"chdb://{tmp_path_factory.mktemp('chdb')}"
    with override_settings(ANALYTICS_URL=url, ANALYTICS_CLUSTER=""):
        store.reset()
        migrator.apply()
    store.reset()
    return url


@pytest.fixture
def clickhouse_store(_chdb_url: str, settings: Any) -> Iterator[Any]:
    """Analytics on ClickHouse (this process's chdb) for one test, every analytics table empty.
    Yields the client."""
    from analytics import migrator, store

    settings.ANALYTICS_URL = _chdb_url
    settings.ANALYTICS_CLUSTER = ""
    store.reset()
    client = store.client()
    for table in migrator.tables():
        client.command(f"TRUNCATE TABLE IF EXISTS `{table}`")
    yield client
    store.reset()


@pytest.fixture
def site(db: Any) -> Any:
    from sites.models import Site

    return Site.objects.create(domain="example.com", name="Example", timezone="UTC")


@pytest.fixture
def browser_client() -> Client:
    """A client that looks like a desktop Chrome."""
    return Client(HTTP_USER_AGENT=CHROME_UA, REMOTE_ADDR="203.0.113.10")


@pytest.fixture
def redis_url() -> str:
    require_service("Redis", REDIS_HOST, REDIS_PORT)
    return f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_BROKER_DB}"


@pytest.fixture
def redis_broker(redis_url: str, settings: Any) -> Iterator[Any]:
    """Make Celery publish to a real Redis broker (db 14 by default) instead of running tasks inline.

    Yields a function returning the ingest messages waiting in the queue (decoded bodies).
    """
    import base64

    import redis

    from fathom.celery import app

    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    old = {key: app.conf[key] for key in ("broker_url", "task_always_eager")}
    app.conf.broker_url = redis_url
    app.conf.task_always_eager = False
    settings.CELERY_TASK_ALWAYS_EAGER = False
    settings.CELERY_BROKER_URL = redis_url
    reset_celery_connections(app)

    def queued(queue: str = "ingest") -> list[dict[str, Any]]:
        raw = [json.loads(item) for item in client.lrange(queue, 0, -1)]
        bodies = []
        for envelope in raw:
            args, kwargs, _embed = json.loads(base64.b64decode(envelope["body"]))
            bodies.append({"envelope": envelope, "args": args, "kwargs": kwargs})
        return bodies

    queued.raw = lambda queue="ingest": client.lrange(queue, 0, -1)  # type: ignore[attr-defined]
    queued.url = redis_url  # type: ignore[attr-defined]
    yield queued
    app.conf.broker_url = old["broker_url"]
    app.conf.task_always_eager = old["task_always_eager"]
    reset_celery_connections(app)
    client.flushdb()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """CI must skip nothing: a skipped test fails the run there."""
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    skipped = len(reporter.stats.get("skipped", [])) if reporter else 0
    if os.environ.get("CI") and skipped:
        if reporter:
            reporter.write_line(f"CI: {skipped} test(s) were skipped; CI must skip nothing.", red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture
def redis_cache(redis_url: str, settings: Any) -> Iterator[None]:
    """The default cache on real Redis (db 15 by default), as in production: rate limits, counters, versions."""
    import redis

    url = redis_url.rsplit("/", 1)[0] + f"/{REDIS_CACHE_DB}"
    redis.Redis.from_url(url).flushdb()
    settings.CACHES = {
        "default": {
            "BACKEND": "fathom.cache.FastRedisCache",
            "LOCATION": url,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
    yield
    redis.Redis.from_url(url).flushdb()


@pytest.fixture
def frozen_clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """Rate-limit and detector windows are fixed windows of the clock: hold it still so a burst of
    requests never straddles a window boundary (which would let a few more through).
    Advance it by adding to clock[0]."""
    clock = [1_800_000_010.0]  # 10 s into a minute and into a 10-minute window
    monkeypatch.setattr("time.time", lambda: clock[0])
    return clock


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fake AWS credentials in REGION, and nothing that could point boto3 at a real endpoint."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SECURITY_TOKEN", "AWS_SESSION_TOKEN"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", REGION)
    for name in ("AWS_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_WAFV2"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def wafv2(aws_env: None, settings: Any) -> Iterator[Any]:
    """A WAFv2 client of moto's in-process mock, wired into the settings (AWS is never reached)."""
    import boto3
    from moto import mock_aws

    settings.AWS_REGION = REGION
    settings.WAF_SCOPE = "REGIONAL"
    with mock_aws():
        yield boto3.client("wafv2", region_name=REGION)


@pytest.fixture
def ip_sets(wafv2: Any, settings: Any) -> dict[int, str]:
    """Two real (moto) IP sets, wired into the settings. Returns {4: arn, 6: arn}."""
    arns = {}
    for version in (4, 6):
        created = wafv2.create_ip_set(
            Name=f"fathom-bans-v{version}",
            Scope="REGIONAL",
            IPAddressVersion=f"IPV{version}",
            Addresses=[],
            Description="managed by fathom: do not edit",
        )
        arns[version] = created["Summary"]["ARN"]
    settings.WAF_IPSET_V4_ARN = arns[4]
    settings.WAF_IPSET_V6_ARN = arns[6]
    settings.WAF_COLLECTOR_IPSET_V4_ARN = settings.WAF_COLLECTOR_IPSET_V6_ARN = ""  # the optional pair: off
    settings.WAF_MAX_ADDRESSES = 10_000
    return arns


@pytest.fixture(scope="module")
def playwright() -> Iterator[Any]:
    """Playwright's sync API for a module of browser tests (launch Chromium with CHROMIUM)."""
    if not Path(CHROMIUM).exists():
        message = f"Chromium is not installed at {CHROMIUM}: browser tests cannot run (make setup installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(f"SKIPPED LOUDLY: {message}")
    from playwright.sync_api import sync_playwright

    # The sync API keeps an asyncio loop running in this thread, and Django then refuses ORM
    # calls ("You cannot call this from an async context"). The tests' ORM calls are plain
    # blocking reads between browser steps, so allow them while the module's browser runs.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    manager = sync_playwright().start()
    try:
        yield manager
    finally:
        manager.stop()
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture(scope="module")
def chromium(playwright: Any) -> Iterator[Any]:
    """Debian's headless Chromium for a module of page tests (a module may override it)."""
    browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    try:
        yield browser
    finally:
        browser.close()

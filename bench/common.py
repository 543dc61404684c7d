"""Shared helpers: the bench MariaDB database, the environment of the app under test, logging.

Only databases named bench_* are created or dropped, and only Redis db 13 is flushed.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PYTHON = ROOT / ".venv" / "bin" / "python"
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", "root")
REDIS_BENCH_URL = "redis://127.0.0.1:6379/13"
BENCH_DOMAIN = "bench.example"
SECRET = "bench-only-secret-key-not-for-production-0123456789"  # noqa: S105 (a throwaway key)

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def database_url(name: str) -> str:
    return f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{name}"


def app_env(db_name: str, **extra: str) -> dict[str, str]:
    """The environment the app runs with in every benchmark (production-like: DEBUG off)."""
    env = dict(os.environ)
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "fathom.settings",
            "DEBUG": "0",
            "SECRET_KEY": SECRET,
            "ALLOWED_HOSTS": "127.0.0.1",
            "REDIS_URL": REDIS_BENCH_URL,
            "CELERY_BROKER_URL": REDIS_BENCH_URL,
            "DATABASE_URL": database_url(db_name),
            "LOG_LEVEL": "WARNING",
            "PYTHONPATH": str(ROOT),
        }
    )
    env.update(extra)
    return env


def mysql_connect(db: str | None = None) -> Any:
    import MySQLdb

    kwargs: dict[str, Any] = {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER, "charset": "utf8mb4"}
    if db:
        kwargs["database"] = db
    return MySQLdb.connect(**kwargs)


def _check_name(name: str) -> None:
    if not re.fullmatch(r"bench_[a-z0-9_]+", name):
        raise ValueError(f"bench databases are named bench_*, not {name!r}")


def flush_redis() -> int:
    """Empty Redis db 13 (the bench's broker and cache); returns how many keys it held."""
    import redis

    client = redis.Redis.from_url(REDIS_BENCH_URL)
    keys = client.dbsize()
    client.flushdb()
    return int(keys)


@dataclass
class BenchDatabase:
    """A fresh MariaDB database named bench_*, migrated, with one site (bench.example, UTC)."""

    name: str = "bench_fathom"
    site_public_id: str = ""
    site_id: int = 0

    @property
    def url(self) -> str:
        return database_url(self.name)

    def env(self, **extra: str) -> dict[str, str]:
        return app_env(self.name, **extra)

    def create(self) -> BenchDatabase:
        _check_name(self.name)
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        conn.close()
        log(f"database {self.name}: created, migrating")
        self.migrate()
        out = subprocess.run(
            [str(PYTHON), "manage.py", "createsite", BENCH_DOMAIN, "--timezone", "UTC"],
            cwd=ROOT,
            env=self.env(),
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        self.site_public_id = out.strip().splitlines()[-1].strip()
        self.attach()
        log(f"database {self.name}: migrated, site {BENCH_DOMAIN} id={self.site_id} public id={self.site_public_id}")
        return self

    def migrate(self) -> None:
        """Apply the project's migrations (again: other work may have added some since the start)."""
        subprocess.run(
            [str(PYTHON), "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, env=self.env(), check=True
        )

    def attach(self) -> BenchDatabase:
        """Read the site of an existing bench database."""
        _check_name(self.name)
        conn = mysql_connect(self.name)
        with conn.cursor() as cur:
            cur.execute("SELECT id, public_id FROM dashboard_site WHERE domain = %s", [BENCH_DOMAIN])
            row = cur.fetchone()
        conn.close()
        if row is None:
            raise RuntimeError(f"{self.name} has no site {BENCH_DOMAIN}")
        self.site_id, self.site_public_id = int(row[0]), str(row[1])
        return self

    def drop(self) -> None:
        _check_name(self.name)
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
        conn.close()
        log(f"database {self.name}: dropped")

    def count(self, table: str) -> int:
        conn = mysql_connect(self.name)
        with conn.cursor() as cur:
            cur.execute(f"SELECT COUNT(*) FROM `{table}`")
            value = int(cur.fetchone()[0])
        conn.close()
        return value


def machine() -> dict[str, str]:
    model = ""
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, check=False).stdout
        for line in out.splitlines():
            if line.startswith("Model name"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    mariadb = ""
    try:
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute("SELECT VERSION(), @@innodb_buffer_pool_size, @@innodb_flush_log_at_trx_commit")
            version, pool, flush = cur.fetchone()
        conn.close()
        mariadb = f"{version}, innodb_buffer_pool_size={int(pool) // 2**20} MiB, flush_log_at_trx_commit={flush}"
    except Exception as exc:  # machine facts are informational
        mariadb = f"unknown ({type(exc).__name__})"
    return {
        "nproc": str(len(os.sched_getaffinity(0))),
        "cpu": model or platform.processor(),
        "python": sys.version.split()[0],
        "mariadb": mariadb,
    }

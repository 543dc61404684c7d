"""What the benchmarks share: paths and the app's environment, bench databases (MariaDB or a
SQLite file), the processes they start (gunicorn, a Celery worker), Redis, the box's load,
percentiles, SQL building blocks and the value catalogue of the generated traffic.

Only databases named bench_* are created or dropped, and only the bench's Redis db is flushed
(13; BENCH_REDIS_URL names another, the attack drill uses 11).
"""

from __future__ import annotations

import http.client
import os
import platform
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

ROOT = Path(__file__).resolve().parent.parent
# The venv the bench runs in (`.venv/bin/python bench/...`) also runs what the bench starts.
BIN = Path(sys.executable).parent
PYTHON = BIN / "python"
GUNICORN = BIN / "gunicorn"
CELERY = BIN / "celery"
MYSQL_HOST = os.environ.get("BENCH_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("BENCH_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("BENCH_MYSQL_USER", "root")
REDIS_BENCH_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/13")
BENCH_DOMAIN = "bench.example"
SECRET = "bench-only-secret-key-not-for-production-0123456789"  # noqa: S105 (a throwaway key)
CHROME_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
STORED_TABLES = ("collector_event", "collector_visit", "collector_dailybreakdown", "collector_hourlytotal")

_T0 = time.monotonic()


def log(message: str) -> None:
    print(f"[{time.monotonic() - _T0:7.1f}s] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def percentile(values: Sequence[float], p: float, *, interpolate: bool = False) -> float:
    """The p-th percentile (nan for no values): the value at rank p % of the way up, or with
    interpolate the linear interpolation between the two nearest ranks."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    if not interpolate:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]
    k = (len(ordered) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


# -- the box -------------------------------------------------------------------------------------


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


def foreign_queries_sql(own_db: str) -> str:
    """Counts the queries MariaDB is running for other databases than own_db (other work on the
    shared server, which skews every figure)."""
    return (
        "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' "
        f"AND (DB IS NULL OR DB <> '{own_db}') AND ID <> CONNECTION_ID() AND INFO NOT LIKE '%PROCESSLIST%'"
    )


@dataclass(frozen=True)
class BoxState:
    load: float  # 1-minute load average
    foreign: int | None = None  # MariaDB queries of other databases; None: not asked

    def quiet(self, threshold: float) -> bool:
        return self.load <= threshold and not self.foreign

    def __str__(self) -> str:
        text = f"load average {self.load:.2f}"
        return text if self.foreign is None else f"{text}, other MariaDB queries running: {self.foreign}"


def box_state(own_db: str | None = None) -> BoxState:
    """The load average, and with own_db how many other databases' queries MariaDB runs."""
    load = os.getloadavg()[0]
    if own_db is None:
        return BoxState(load)
    try:
        conn = mysql_connect()
        with conn.cursor() as cur:
            cur.execute(foreign_queries_sql(own_db))
            foreign = int(cur.fetchone()[0])
        conn.close()
    except Exception:  # the check is advisory: a busy or absent server does not stop a run
        foreign = 0
    return BoxState(load, foreign)


def wait_for_quiet(max_wait: float, threshold: float = 0.7, own_db: str | None = None) -> BoxState:
    """Other work on this 2-core machine skews every figure: wait (at most max_wait s) for the load
    average to fall to threshold (and, with own_db, for MariaDB to run no other database's
    queries). Returns the state when the wait ended."""
    deadline = time.monotonic() + max_wait
    state = box_state(own_db)
    if not state.quiet(threshold) and max_wait > 0:
        log(f"{state} (threshold {threshold}): waiting up to {max_wait:.0f} s for other work to finish")
        while not state.quiet(threshold) and time.monotonic() < deadline:
            time.sleep(5)
            state = box_state(own_db)
    return state


# -- databases -----------------------------------------------------------------------------------


def mysql_connect(db: str | None = None) -> Any:
    import MySQLdb  # here, not at the top: a bench on SQLite runs without the MariaDB client library

    kwargs: dict[str, Any] = {"host": MYSQL_HOST, "port": MYSQL_PORT, "user": MYSQL_USER, "charset": "utf8mb4"}
    if db:
        kwargs["database"] = db
    return MySQLdb.connect(**kwargs)


ENGINES = ("mariadb", "sqlite")


@dataclass
class BenchDatabase:
    """A database named bench_*: on MariaDB, or a SQLite file in the temp directory (what a bench
    can run on without MariaDB; the stored-data and dashboard benches need MariaDB). The app runs
    against it with `env()`; site_id / site_public_id are its first site's."""

    name: str = "bench_fathom"
    engine: str = "mariadb"
    redis_url: str = REDIS_BENCH_URL  # the app's cache and broker
    settings: dict[str, str] = field(default_factory=dict)  # more of the app's environment
    site_public_id: str = ""
    site_id: int = 0
    sites: dict[str, tuple[int, str]] = field(default_factory=dict)  # domain -> (id, public id)

    def __post_init__(self) -> None:
        if not re.fullmatch(r"bench_[a-z0-9_]+", self.name):
            raise ValueError(f"bench databases are named bench_*, not {self.name!r}")
        if self.engine not in ENGINES:
            raise ValueError(f"engine is one of {ENGINES}, not {self.engine!r}")

    @property
    def path(self) -> Path:
        """The SQLite file."""
        return Path(tempfile.gettempdir()) / f"{self.name}.sqlite3"

    @property
    def url(self) -> str:
        if self.engine == "sqlite":
            return f"sqlite:///{self.path}"
        return f"mysql://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/{self.name}"

    def env(self, **extra: str) -> dict[str, str]:
        """The environment the app runs with in every benchmark (production-like: DEBUG off)."""
        env = dict(os.environ)
        env.update(
            {
                "DJANGO_SETTINGS_MODULE": "fathom.settings",
                "DEBUG": "0",
                "SECRET_KEY": SECRET,
                "ALLOWED_HOSTS": "127.0.0.1",
                "REDIS_URL": self.redis_url,
                "CELERY_BROKER_URL": self.redis_url,
                "DATABASE_URL": self.url,
                "LOG_LEVEL": "WARNING",
                "PYTHONPATH": str(ROOT),
                **self.settings,
            }
        )
        env.update(extra)
        return env

    def connect(self, server_only: bool = False) -> Any:
        """A DB-API connection to this database (server_only: to the MariaDB server, no database)."""
        if self.engine == "sqlite":
            return sqlite3.connect(self.path)
        return mysql_connect(None if server_only else self.name)

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[tuple]:
        conn = self.connect()
        try:
            return list(self._run(conn, sql, params).fetchall())
        finally:
            conn.close()

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        conn = self.connect()
        try:
            rows = int(self._run(conn, sql, params).rowcount)
            conn.commit()
            return rows
        finally:
            conn.close()

    def _run(self, conn: Any, sql: str, params: Sequence[Any]) -> Any:
        cur = conn.cursor()
        if self.engine == "sqlite":
            sql = sql.replace("%s", "?")
        if params:
            cur.execute(sql, list(params))
        else:  # sent as it is: MySQLdb %-formats the SQL only when given parameters
            cur.execute(sql)
        return cur

    def count(self, table: str) -> int:
        return int(self.query(f"SELECT COUNT(*) FROM `{table}`")[0][0])

    def recreate(self) -> BenchDatabase:
        """Drop the database if it exists and create it empty: the one way the bench makes one."""
        self.drop(quiet=True)
        if self.engine == "mariadb":
            conn = self.connect(server_only=True)
            with conn.cursor() as cur:
                cur.execute(f"CREATE DATABASE `{self.name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
            conn.close()
        return self

    def create(self, *domains: str, timezone: str = "UTC") -> BenchDatabase:
        """A fresh database, migrated, with sites (default one: bench.example) in `timezone`."""
        domains = domains or (BENCH_DOMAIN,)
        self.recreate()
        log(f"database {self.name}: created, migrating")
        self.migrate()
        for domain in domains:
            self.manage("createsite", domain, "--timezone", timezone)
        self.attach(domains[0])
        log(f"database {self.name}: migrated, site {domains[0]} id={self.site_id} public id={self.site_public_id}")
        return self

    def manage(self, *args: str) -> str:
        """`manage.py args` against this database; its standard output."""
        cmd = [str(PYTHON), "manage.py", *args]
        return subprocess.run(cmd, cwd=ROOT, env=self.env(), check=True, capture_output=True, text=True).stdout

    def migrate(self) -> None:
        """Apply the project's migrations (again: other work may have added some since the start)."""
        self.manage("migrate", "--noinput", "-v", "0")

    def attach(self, domain: str = BENCH_DOMAIN) -> BenchDatabase:
        """Read the sites of an existing bench database; `domain` is the one site_id names."""
        rows = self.query("SELECT id, domain, public_id FROM dashboard_site ORDER BY id")
        self.sites = {str(d): (int(pk), str(public_id)) for pk, d, public_id in rows}
        if domain not in self.sites:
            raise RuntimeError(f"{self.name} has no site {domain}")
        self.site_id, self.site_public_id = self.sites[domain]
        return self

    def drop(self, quiet: bool = False) -> None:
        if self.engine == "sqlite":
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
        else:
            conn = self.connect(server_only=True)
            with conn.cursor() as cur:
                cur.execute(f"DROP DATABASE IF EXISTS `{self.name}`")
            conn.close()
        if not quiet:
            log(f"database {self.name}: dropped")


# -- Redis ---------------------------------------------------------------------------------------


def redis_client(url: str = REDIS_BENCH_URL) -> redis.Redis:
    return redis.Redis.from_url(url)


def flush_redis(url: str = REDIS_BENCH_URL) -> int:
    """Empty the bench's Redis db (its broker and cache); returns how many keys it held."""
    client = redis_client(url)
    keys = int(client.dbsize())
    client.flushdb()
    return keys


def queue_depth(url: str = REDIS_BENCH_URL) -> tuple[int, int]:
    """(messages waiting in the ingest queue, messages reserved by a worker and not yet acked)."""
    client = redis_client(url)
    return int(client.llen("ingest")), int(client.hlen("unacked"))


# -- processes we start --------------------------------------------------------------------------


class Service:
    """A subprocess the bench starts, logs to a temporary file and stops by its own pid."""

    def __init__(self, name: str, cmd: list[str], env: dict[str, str]) -> None:
        self.name = name
        self.logfile = Path(tempfile.gettempdir()) / f"{name}-{os.getpid()}.log"
        self._log = self.logfile.open("wb")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT)
        self.paused = False

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def pause(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGSTOP)
            self.paused = True

    def resume(self) -> None:
        if self.alive() and self.paused:
            self.proc.send_signal(signal.SIGCONT)
        self.paused = False

    def stop(self, timeout: float = 30) -> None:
        if self.alive():
            self.resume()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def log_text(self) -> str:
        try:
            return self.logfile.read_text(errors="replace")
        except OSError:
            return ""

    def wait_ready(self, probe: Callable[[], bool], timeout: float = 60) -> None:
        """Until probe() holds (OSError counts as not yet); raises if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}; see {self.logfile}")
            try:
                if probe():
                    return
            except (OSError, http.client.HTTPException):
                pass
            time.sleep(0.2)
        raise RuntimeError(f"{self.name} not ready within {timeout:.0f} s; see {self.logfile}")


def start_gunicorn(name: str, env: dict[str, str], port: int, workers: int) -> Service:
    """fathom.wsgi on 127.0.0.1:port with sync workers; its error log goes to the service's log file."""
    cmd = [str(GUNICORN), "fathom.wsgi", "-b", f"127.0.0.1:{port}", "-w", str(workers), "-k", "sync"]
    return Service(name, [*cmd, "--log-level", "warning", "--error-logfile", "-"], env)


def start_celery_worker(name: str, env: dict[str, str], queues: str = "ingest,default") -> Service:
    """One Celery worker process (solo pool) consuming `queues`."""
    cmd = [str(CELERY), "-A", "fathom", "worker", "-Q", queues, "-c", "1", "--pool", "solo"]
    return Service(name, [*cmd, "-n", f"{name}-{os.getpid()}@%h", "--loglevel", "WARNING"], env)


def http_status(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None) -> int:
    """One request to 127.0.0.1:port; the answer's status."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


# -- SQL building blocks (the generators of bench/fill.py and bench/dashboard_data.py) -----------


def sql_str(text: str) -> str:
    """A MariaDB string literal."""
    return "'" + text.replace("\\", "\\\\").replace("'", "''") + "'"


def sql_elt(index: str, values: Sequence[str]) -> str:
    """values[index - 1] in SQL (index: a 1-based SQL expression)."""
    return f"ELT({index}, {', '.join(sql_str(v) for v in values)})"


def _required_extras(cur: Any, table: str, given: set[str]) -> list[tuple[str, str]]:
    """NOT NULL columns without a default that a generator does not know (added by a later migration)."""
    cur.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = DATABASE() "
        "AND table_name = %s AND is_nullable = 'NO' AND column_default IS NULL AND extra NOT LIKE %s",
        [table, "%auto_increment%"],
    )
    extras = []
    for name, data_type in cur.fetchall():
        if name in given:
            continue
        data_type = data_type.lower()
        if "int" in data_type or data_type in ("decimal", "double", "float"):
            literal = "0"
        elif data_type in ("date", "datetime", "timestamp"):
            literal = "'2000-01-01'"
        elif data_type in ("longtext", "json"):
            literal = "'[]'"
        else:
            literal = "''"
        extras.append((name, literal))
    return extras


def insert_select(cur: Any, table: str, columns: dict[str, str], source: str, ignore: bool = False) -> int:
    """INSERT INTO table (columns) SELECT their SQL expressions FROM source (with whatever follows
    it: WHERE, GROUP BY, ORDER BY); required columns the generator does not know get a neutral value.
    The statement runs without parameters, so its SQL may use % as modulo."""
    extras = _required_extras(cur, table, set(columns))
    names = [*columns, *(name for name, _ in extras)]
    exprs = [*columns.values(), *(literal for _, literal in extras)]
    sql = (
        f"INSERT {'IGNORE ' if ignore else ''}INTO `{table}` ({', '.join(f'`{n}`' for n in names)}) "
        f"SELECT {', '.join(exprs)} FROM {source}"
    )
    cur.execute(sql)
    return int(cur.rowcount)


def analyze(cur: Any, tables: Iterable[str] = STORED_TABLES) -> None:
    for table in tables:
        cur.execute(f"ANALYZE TABLE `{table}`")
        cur.fetchall()


def table_stats(cur: Any, tables: Iterable[str] = STORED_TABLES) -> dict[str, dict[str, int]]:
    """Rows and MiB (data + indexes) per table of the connected database."""
    out = {}
    for table in tables:
        cur.execute(f"SELECT COUNT(*) FROM `{table}`")
        rows = int(cur.fetchone()[0])
        cur.execute(
            "SELECT data_length + index_length FROM information_schema.tables "
            "WHERE table_schema = DATABASE() AND table_name = %s",
            [table],
        )
        out[table] = {"rows": rows, "mib": int(cur.fetchone()[0] or 0) // 2**20}
    return out


def secondary_indexes(cur: Any, table: str) -> list[tuple[str, bool, list[str]]]:
    cur.execute(
        "SELECT index_name, non_unique, column_name FROM information_schema.statistics "
        "WHERE table_schema = DATABASE() AND table_name = %s AND index_name <> 'PRIMARY' "
        "ORDER BY index_name, seq_in_index",
        [table],
    )
    found: dict[str, tuple[bool, list[str]]] = {}
    for name, non_unique, column in cur.fetchall():
        found.setdefault(name, (not int(non_unique), []))[1].append(column)
    return [(name, unique, cols) for name, (unique, cols) in found.items()]


def drop_indexes(cur: Any, table: str) -> list[tuple[str, bool, list[str]]]:
    """Drop a table's secondary indexes (a bulk load is faster without them); returns them for add_indexes."""
    indexes = secondary_indexes(cur, table)
    if indexes:
        cur.execute(f"ALTER TABLE `{table}` " + ", ".join(f"DROP INDEX `{name}`" for name, _, _ in indexes))
    return indexes


def add_indexes(cur: Any, table: str, indexes: list[tuple[str, bool, list[str]]]) -> None:
    if indexes:
        parts = [
            f"ADD {'UNIQUE ' if unique else ''}INDEX `{name}` ({', '.join(f'`{c}`' for c in cols)})"
            for name, unique, cols in indexes
        ]
        cur.execute(f"ALTER TABLE `{table}` " + ", ".join(parts))


# -- the generated traffic of the ingest and stored-data benches ---------------------------------
# bench/ingest_bench.py makes hits of these values in Python, bench/fill.py rows in SQL.

# The ingest bench writes days after the year the stored-data fill covers.
INGEST_DAYS_AGO = 7
SECTIONS = ("blog", "docs", "pricing", "product", "guides", "changelog", "about", "careers")
SOURCES = (  # (referrer as the collector stores it: host + path, source name)
    ("google.com", "Google"),
    ("bing.com", "Bing"),
    ("duckduckgo.com", "DuckDuckGo"),
    ("search.yahoo.com", "Yahoo!"),
    ("yandex.ru", "Yandex"),
    ("baidu.com", "Baidu"),
    ("ecosia.org", "Ecosia"),
    ("kagi.com", "Kagi"),
    ("search.brave.com", "Brave Search"),
    ("t.co", "Twitter"),
    ("facebook.com", "Facebook"),
    ("linkedin.com", "LinkedIn"),
    ("reddit.com/r/webdev/comments/abc", "Reddit"),
    ("news.ycombinator.com/item", "Hacker News"),
    ("lobste.rs/s/xyz", "Lobsters"),
    ("github.com/someone/project", "GitHub"),
    ("stackoverflow.com/questions/1", "Stack Overflow"),
    ("youtube.com/watch", "YouTube"),
    ("instagram.com", "Instagram"),
    ("pinterest.com", "Pinterest"),
    ("bsky.app", "Bluesky"),
    ("mastodon.social", "Mastodon"),
    ("chatgpt.com", "ChatGPT"),
    ("perplexity.ai", "Perplexity"),
    ("producthunt.com/posts/bench", "Product Hunt"),
    ("dev.to/someone/post", "dev.to"),
    ("medium.com/@someone/post", "Medium"),
    ("substack.com", "Substack"),
    ("partner-blog.example/review", "partner-blog.example"),
    ("newsletter.example/issue-42", "newsletter.example"),
)
BROWSERS = (("Chrome", 60), ("Safari", 20), ("Firefox", 8), ("Edge", 8), ("Samsung Internet", 4))
OSES = (("Windows", 35), ("macOS", 20), ("iOS", 25), ("Android", 20))
DEVICES = (("Desktop", 55), ("Mobile", 40), ("Tablet", 5))
# fmt: off
COUNTRIES = (
    "US", "GB", "DE", "FR", "CA", "AU", "NL", "SE", "NO", "DK", "FI", "ES", "IT", "PT", "PL", "CZ", "AT", "CH", "BE",
    "IE", "IN", "JP", "KR", "CN", "SG", "BR", "MX", "AR", "CL", "CO", "ZA", "NG", "EG", "TR", "IL", "AE", "RU", "UA",
    "NZ", "ID",
)
# fmt: on
CUSTOM_EVENTS = ("Signup", "Download", "Outbound Link: Click", "Purchase")

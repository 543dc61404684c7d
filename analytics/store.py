"""Which analytics store this deployment uses, and the one ClickHouse client of the process.

settings.ANALYTICS_URL:
- "" (unset): the Django database (SQLite/MariaDB) holds events and visits, as before;
- `clickhouse://user:password@host:8123/db`: a ClickHouse server or cluster over HTTP
  (`?secure=true`, or port 8443, for HTTPS), the production client that also works from Lambda;
- `chdb:///absolute/path`: the ClickHouse engine in-process (the `chdb` package, dev/test only).
  chdb allows one data directory per process and one process per directory: two processes
  (a `runserver` and an `ingest_worker`, two test workers) each need their own.

An error never repeats the URL: it may hold a password.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

SQL = "sql"
CLICKHOUSE = "clickhouse"

_lock = threading.Lock()
_client: Any = None
_client_url: str | None = None


def kind() -> str:
    """ "sql" or "clickhouse", from settings.ANALYTICS_URL (refused if it is neither)."""
    url = settings.ANALYTICS_URL or ""
    if not url:
        return SQL
    connect_args(url)  # refuses what cannot be used, before anyone writes to the wrong place
    return CLICKHOUSE


# Every statement's settings. FINAL merges a partition's parts only within it: every table read
# with FINAL (sessions, the rollups) is partitioned by a function of its sorting key, so rows
# that collapse or replace each other are always in one partition; partitions already merged to
# one part then cost a plain read (measured: a filtered month of sessions FINAL 40 -> 9 ms at 10M).
# grouping() answers 1 for a column not in the row's grouping set (the SQL standard's meaning;
# the default since ClickHouse 22.12, named here so that a server's profile cannot flip it).
READ_SETTINGS = {"do_not_merge_across_partitions_select_final": 1, "force_grouping_standard_compatibility": 1}


def connect_args(url: str) -> dict[str, Any]:
    """The keyword arguments of clickhouse_connect.get_client for an ANALYTICS_URL."""
    scheme = url.split(":", 1)[0].lower()
    if scheme == "chdb":
        path = url[len("chdb://") :] if url.lower().startswith("chdb://") else ""
        if not path.startswith("/") or path == "/":
            raise ImproperlyConfigured("ANALYTICS_URL: a chdb URL must name an absolute directory, chdb:///path")
        return {"dsn": f"chdb://{path}", "settings": dict(READ_SETTINGS)}
    if scheme != "clickhouse":
        raise ImproperlyConfigured(
            "ANALYTICS_URL must be empty (the Django database), clickhouse://user:password@host:8123/database "
            "or chdb:///absolute/path"
        )
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        raise ImproperlyConfigured("ANALYTICS_URL: the port is not a number") from None
    if not parts.hostname:
        raise ImproperlyConfigured("ANALYTICS_URL: a clickhouse URL must name a host")
    query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
    secure = query.get("secure", "").lower() in {"1", "true", "yes"} or port in (443, 8443)
    args: dict[str, Any] = {
        "host": parts.hostname,
        "port": port or (8443 if secure else 8123),
        "username": unquote(parts.username or "default"),
        "password": unquote(parts.password or ""),
        "secure": secure,
        # One client serves every thread of the process: no server-side session (whose lock
        # would make two concurrent queries fail), and none is needed.
        "autogenerate_session_id": False,
        "settings": dict(READ_SETTINGS),
    }
    database = unquote(parts.path.lstrip("/"))
    if database:
        args["database"] = database
    return args


def client() -> Any:
    """The process's clickhouse-connect client (created on first use; a new one when
    settings.ANALYTICS_URL changed, as tests do)."""
    global _client, _client_url
    url = settings.ANALYTICS_URL or ""
    if _client is not None and _client_url == url:
        return _client
    with _lock:
        if _client is None or _client_url != url:
            if kind() != CLICKHOUSE:
                raise ImproperlyConfigured("ANALYTICS_URL does not name a ClickHouse store")
            # Imported here: clickhouse-connect takes a while to load, and the SQL backend never needs it.
            import clickhouse_connect

            _close()
            _client = clickhouse_connect.get_client(**connect_args(url))
            _client_url = url
    return _client


def _close() -> None:
    global _client, _client_url
    if _client is not None:
        with contextlib.suppress(Exception):  # closing a dead connection: nothing left to do
            _client.close()
    _client, _client_url = None, None


def reset() -> None:
    """Forget the client (tests: the next client() connects again)."""
    with _lock:
        _close()


# The tables holding a site's rows (what analytics/migrations_clickhouse creates; a test checks).
SITE_TABLES = ("events", "sessions", "rollup_totals", "rollup_breakdowns", "rollup_months", "rollup_sites")


def site_has_rows(site_id: int) -> bool:
    """Has ClickHouse any event of this site? (The primary key starts with site_id: one granule.)"""
    rows = client().query("SELECT 1 FROM events WHERE site_id = %(site)s LIMIT 1", parameters={"site": site_id})
    return bool(rows.result_rows)


def delete_site_rows(site_id: int) -> None:
    """Delete a site's events and visits (lightweight DELETE: hidden at once, purged by merges).
    On a cluster the rows live in the `_local` tables of every shard: deleted there, ON CLUSTER
    (a Distributed table takes no DELETE)."""
    name = cluster()
    where = f" ON CLUSTER `{name}`" if name else ""
    suffix = "_local" if name else ""
    for table in SITE_TABLES:
        client().command(f"DELETE FROM `{table}{suffix}`{where} WHERE site_id = %(site)s", parameters={"site": site_id})


def cluster() -> str:
    """settings.ANALYTICS_CLUSTER: the ClickHouse cluster name the tables are created on ("" = one node)."""
    return getattr(settings, "ANALYTICS_CLUSTER", "") or ""

"""ANALYTICS_URL parsing and the process's client."""

from __future__ import annotations

from typing import Any

import pytest
from django.core.exceptions import ImproperlyConfigured

from analytics import store


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("", "sql"),
        ("clickhouse://u:p@ch.internal:8123/fathom", "clickhouse"),
        ("chdb:///tmp/x", "clickhouse"),
    ],
)
def test_kind(settings: Any, url: str, expected: str) -> None:
    settings.ANALYTICS_URL = url
    assert store.kind() == expected


@pytest.mark.parametrize(
    "url",
    [
        "mysql://root:s3cret@db/fathom",
        "clickhouse://u:s3cret@:8123/db",
        "clickhouse://u:s3cret@host:port/db",
        "chdb://relative/s3cret",
        "http://u:s3cret@host:8123/db",
    ],
)
def test_a_bad_url_is_refused_without_repeating_it(settings: Any, url: str) -> None:
    settings.ANALYTICS_URL = url
    with pytest.raises(ImproperlyConfigured) as error:
        store.kind()
    assert "s3cret" not in str(error.value)


def test_connect_args() -> None:
    args = store.connect_args("clickhouse://bob:p%40ss@ch.internal:8123/fathom")
    assert args == {
        "host": "ch.internal",
        "port": 8123,
        "username": "bob",
        "password": "p@ss",
        "secure": False,
        "autogenerate_session_id": False,
        "database": "fathom",
        "settings": store.READ_SETTINGS,
    }
    assert store.connect_args("clickhouse://ch.cloud:8443/db")["secure"] is True
    secure = store.connect_args("clickhouse://bob:x@ch.cloud/db?secure=true")
    assert (secure["secure"], secure["port"]) == (True, 8443)
    assert store.connect_args("chdb:///tmp/data") == {
        "dsn": "chdb:///tmp/data",
        "settings": store.READ_SETTINGS,
    }


def test_every_statement_merges_final_rows_within_their_partition(clickhouse_store: Any) -> None:
    # The visit reads' FINAL relies on it for speed (store.READ_SETTINGS), in every statement.
    setting = "SELECT toUInt8(getSetting('do_not_merge_across_partitions_select_final'))"
    assert store.client().query(f"{setting} UNION ALL {setting}").result_rows == [(1,), (1,)]
    # and grouping() means what the visit panels' grouping sets read it as (1: not grouped by it)
    rows = "SELECT grouping(a, b) AS g FROM (SELECT 1 AS a, 2 AS b) GROUP BY GROUPING SETS ((a), (b)) ORDER BY g"
    assert store.client().query(rows).result_rows == [(1,), (2,)]


def test_one_client_per_url(clickhouse_store: Any, settings: Any) -> None:
    assert store.client() is clickhouse_store
    assert store.client().query("SELECT 1").result_rows == [(1,)]
    settings.ANALYTICS_URL = ""
    with pytest.raises(ImproperlyConfigured):
        store.client()

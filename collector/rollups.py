"""Raw multi-row writes for the ingest worker.

The ORM's bulk_create builds a model instance and compiles every field of every row; for a
1,000-hit batch that cost more than the database work itself. These helpers take plain
tuples and write one statement per chunk:

- insert_rows: INSERT ... VALUES (...), (...)
- upsert_add: insert, or add the increments to the row with the same key
  (ON DUPLICATE KEY UPDATE c = c + VALUES(c) on MySQL; ON CONFLICT ... DO UPDATE elsewhere)
- upsert_replace: insert, or overwrite the given columns of the row with the same key
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Sequence
from typing import Any

from django.db import connection, models

from collector.models import BREAKDOWN_COLUMNS

CHUNK = 500


@functools.cache
def _takes_aware_datetimes() -> bool:
    return connection.vendor == "postgresql"


def adapt_datetime(value: dt.datetime) -> Any:
    """An aware datetime as the ORM would store it (USE_TZ, database time zone UTC), but cheaper:
    MySQL and SQLite take naive UTC text, PostgreSQL the aware value."""
    if _takes_aware_datetimes():
        return value
    return str(value.astimezone(dt.UTC).replace(tzinfo=None))


def adapt(value: Any) -> Any:
    """Python value -> what the database driver takes (as the ORM would convert it)."""
    if isinstance(value, dt.datetime):
        return adapt_datetime(value)
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, (dict, list)):
        return json.dumps(value, separators=(",", ":"))
    return value


def _write(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]], suffix: str) -> int:
    if not rows:
        return 0
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    column_sql = ", ".join(qn(c) for c in columns)
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            sql = f"INSERT INTO {table} ({column_sql}) VALUES {', '.join([placeholder] * len(chunk))} {suffix}"
            cursor.execute(sql, [value for row in chunk for value in row])
            statements += 1
    return statements


def insert_rows(model: type[models.Model], columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> int:
    return _write(model, columns, rows, "")


def _conflict(model: type[models.Model], key_columns: Sequence[str], assignments: dict[str, str]) -> str:
    qn = connection.ops.quote_name
    if connection.vendor == "mysql":
        sets = ", ".join(
            f"{qn(c)} = {expr.format(old=qn(c), new=f'VALUES({qn(c)})')}" for c, expr in assignments.items()
        )
        return f"ON DUPLICATE KEY UPDATE {sets}"
    table = qn(model._meta.db_table)
    sets = ", ".join(
        f"{qn(c)} = {expr.format(old=f'{table}.{qn(c)}', new=f'excluded.{qn(c)}')}" for c, expr in assignments.items()
    )
    return f"ON CONFLICT ({', '.join(qn(c) for c in key_columns)}) DO UPDATE SET {sets}"


def upsert_add(
    model: type[models.Model],
    key_columns: Sequence[str],
    add_columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    insert_only: Sequence[str] = (),
) -> int:
    """Rows are tuples in the order key_columns + insert_only + add_columns."""
    suffix = _conflict(model, key_columns, {c: "{old} + {new}" for c in add_columns})
    return _write(model, [*key_columns, *insert_only, *add_columns], rows, suffix)


def upsert_replace(
    model: type[models.Model],
    key_columns: Sequence[str],
    columns: Sequence[str],
    rows: Sequence[Sequence[Any]],
    replace: Sequence[str],
) -> int:
    """Rows are tuples in the order of columns (which include the key columns)."""
    suffix = _conflict(model, key_columns, {c: "{new}" for c in replace})
    return _write(model, columns, rows, suffix)


def _month_of(column: str, vendor: str) -> str:
    """SQL for the first day of the month of a DATE column."""
    if vendor == "sqlite":
        return f"date({column}, 'start of month')"
    if vendor == "mysql":
        return f"({column} - INTERVAL (DAYOFMONTH({column}) - 1) DAY)"
    return f"CAST(date_trunc('month', {column}) AS date)"


def backfill_monthly(conn: Any = None) -> int:
    """Rebuild collector_monthlybreakdown from collector_dailybreakdown: one DELETE and one
    INSERT ... SELECT ... GROUP BY (site, dim, month, value_hash). Used by the migration that
    adds the table and by the dashboard bench for data generated before it. Returns the rows
    inserted (as the driver reports them)."""
    conn = conn or connection
    qn = conn.ops.quote_name
    columns = ", ".join(qn(c) for c in BREAKDOWN_COLUMNS)
    sums = ", ".join(f"SUM({qn(c)})" for c in BREAKDOWN_COLUMNS)
    month = _month_of(qn("day"), conn.vendor)
    with conn.cursor() as cursor:
        cursor.execute(f"DELETE FROM {qn('collector_monthlybreakdown')}")
        cursor.execute(
            f"INSERT INTO {qn('collector_monthlybreakdown')} "
            f"({qn('site_id')}, {qn('dim')}, {qn('month')}, {qn('value_hash')}, {qn('value')}, {columns}) "
            f"SELECT {qn('site_id')}, {qn('dim')}, {month}, {qn('value_hash')}, MIN({qn('value')}), {sums} "
            f"FROM {qn('collector_dailybreakdown')} "
            f"GROUP BY {qn('site_id')}, {qn('dim')}, {month}, {qn('value_hash')}"
        )
        return max(cursor.rowcount, 0)


def monthly_rows(daily: dict[tuple, dict[str, int]], values: dict[tuple, str]) -> list[tuple]:
    """A batch's DailyBreakdown deltas ((site_id, dim, day, value_hash) -> {column: increment},
    and each key's value) summed per (site, dim, month, value_hash), as MonthlyBreakdown key +
    value + BREAKDOWN_COLUMNS tuples: every daily column is an additive delta, so each
    MonthlyBreakdown row stays exactly the sum of its month's daily rows."""
    months: dict[tuple, list[int]] = {}
    month_values: dict[tuple, str] = {}
    for (site_id, dim, day, value_hash), row in daily.items():
        if not any(row.values()):
            continue
        key = (site_id, dim, day.replace(day=1), value_hash)
        sums = months.get(key)
        if sums is None:
            sums = months[key] = [0] * len(BREAKDOWN_COLUMNS)
            month_values[key] = values[(site_id, dim, day, value_hash)]
        for i, column in enumerate(BREAKDOWN_COLUMNS):
            sums[i] += row.get(column, 0)
    return [(*map(adapt, key), month_values[key], *sums) for key, sums in months.items() if any(sums)]

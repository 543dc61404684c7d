"""Additive upserts: one INSERT ... ON DUPLICATE KEY UPDATE (MySQL) / ON CONFLICT (SQLite,
PostgreSQL) statement per chunk of distinct keys, adding the batch's increments to the row."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from django.db import connection, models

CHUNK = 400


def upsert_add(
    model: type[models.Model],
    key_columns: Sequence[str],
    add_columns: Sequence[str],
    rows: Sequence[dict[str, Any]],
    insert_only: Sequence[str] = (),
) -> int:
    """Insert rows, or add their add_columns to the existing row with the same key.

    insert_only columns are written when the row is new and left alone otherwise.
    Returns the number of statements executed.
    """
    if not rows:
        return 0
    qn = connection.ops.quote_name
    table = qn(model._meta.db_table)
    columns = [*key_columns, *insert_only, *add_columns]
    column_sql = ", ".join(qn(c) for c in columns)
    placeholder = "(" + ", ".join(["%s"] * len(columns)) + ")"
    if connection.vendor == "mysql":
        updates = ", ".join(f"{qn(c)} = {qn(c)} + VALUES({qn(c)})" for c in add_columns)
        suffix = f"ON DUPLICATE KEY UPDATE {updates}"
    else:
        updates = ", ".join(f"{qn(c)} = {table}.{qn(c)} + excluded.{qn(c)}" for c in add_columns)
        suffix = f"ON CONFLICT ({', '.join(qn(c) for c in key_columns)}) DO UPDATE SET {updates}"
    statements = 0
    with connection.cursor() as cursor:
        for start in range(0, len(rows), CHUNK):
            chunk = rows[start : start + CHUNK]
            sql = f"INSERT INTO {table} ({column_sql}) VALUES {', '.join([placeholder] * len(chunk))} {suffix}"
            params = [row[c] for row in chunk for c in columns]
            cursor.execute(sql, params)
            statements += 1
    return statements

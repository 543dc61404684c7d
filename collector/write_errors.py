"""Telling a hit's bad data from an outage when a write fails.

The ingest worker splits a batch to isolate a hit whose values the database refuses, but must
retry the whole batch when the database itself is unusable. The classes do not tell them apart
(mysqlclient raises a value's 1366 and a lost connection's 2013 as the same OperationalError),
so the driver's error code decides.
"""

from __future__ import annotations

from django.db import DataError, Error, IntegrityError, OperationalError, connection

from collector.message_check import is_int

# MariaDB/MySQL error codes that mean "this row's values", measured with mysqlclient and PyMySQL
# through Django on MariaDB 10.11 in strict mode (see collector/tests/test_poison.py). The two
# drivers raise different classes for the same code (1366 is an OperationalError in
# mysqlclient, a DataError in PyMySQL; 1292 an OperationalError in both), so the code decides.
MYSQL_DATA_ERRORS = {
    1048: "column cannot be null",  # IntegrityError
    1062: "duplicate entry",  # IntegrityError: another worker wrote the same hit meanwhile
    1241: "operand should contain 1 column",  # OperationalError: a list bound as a value
    1264: "out of range value for column",  # DataError
    1292: "incorrect datetime value",  # OperationalError
    1366: "incorrect integer or string value",  # OperationalError (mysqlclient), DataError (PyMySQL)
    1406: "data too long for column",  # DataError
    1690: "value out of range in an expression",  # IntegrityError (Django): a rollup sum past its column
    4025: "CHECK constraint failed",  # IntegrityError (Django): invalid JSON
}
# SQLite primary result codes about a row's values: SQLITE_TOOBIG (DataError), SQLITE_CONSTRAINT
# (IntegrityError: NOT NULL 1299, CHECK 275, UNIQUE 2067), SQLITE_MISMATCH. SQLITE_BUSY (5,
# "database is locked") and I/O errors are OperationalErrors: an outage.
SQLITE_DATA_ERRORS = frozenset({18, 19, 20})


# ClickHouse (clickhouse-connect over HTTP, or chdb) error codes about a row's values. The
# client serializes rows itself (Native format), so most bad values fail before the server
# sees them: as the driver's DataError (a number past its column's range, None in a column
# that is not Nullable), or as a plain Python error (UnicodeEncodeError for a lone surrogate,
# ValueError, struct.error). Every other ClickHouse error (connection refused or lost,
# timeouts 159/209/210, TOO_MANY_PARTS 252, MEMORY_LIMIT_EXCEEDED 241, a read-only replica
# 242, Keeper 999, a missing table during a deploy 60, authentication 516) is an outage.
CLICKHOUSE_DATA_ERRORS = {
    6: "CANNOT_PARSE_TEXT",
    26: "CANNOT_PARSE_QUOTED_STRING",
    27: "CANNOT_PARSE_INPUT_ASSERTION_FAILED",
    38: "CANNOT_PARSE_DATE",
    41: "CANNOT_PARSE_DATETIME",
    53: "TYPE_MISMATCH",
    69: "ARGUMENT_OUT_OF_BOUND",
    70: "CANNOT_CONVERT_TYPE",
    72: "CANNOT_PARSE_NUMBER",
    117: "INCORRECT_DATA",
    131: "TOO_LARGE_STRING_SIZE",
    321: "VALUE_IS_OUT_OF_RANGE_OF_DATA_TYPE",
    349: "CANNOT_INSERT_NULL_IN_ORDINARY_COLUMN",
}


class AnalyticsStoreUnavailable(OperationalError):
    """ClickHouse cannot take writes now (unreachable, overloaded, a table missing). A Django
    OperationalError, so every caller of ingest_batch treats it as the database outage it
    already handles: the Celery task retries with backoff, `ingest_worker` puts the messages
    back and backs off, the Lambda worker retries the SQS batch later."""


def is_clickhouse_error(exc: BaseException) -> bool:
    # By module, not by class: clickhouse-connect is imported only where ClickHouse is used.
    return type(exc).__module__.startswith("clickhouse_connect.")


def clickhouse_about_the_data(exc: BaseException) -> bool:
    """Did a ClickHouse write fail because of what the hits hold (True) or is the store unusable
    now (False)? Anything raised outside the driver comes from a value on its way (see above)."""
    if not is_clickhouse_error(exc):
        return not isinstance(exc, Error)
    if type(exc).__name__ == "DataError":
        return True
    return getattr(exc, "code", None) in CLICKHOUSE_DATA_ERRORS


def _error_code(exc: BaseException) -> int | str | None:
    if connection.vendor == "sqlite":
        return getattr(exc.__cause__, "sqlite_errorcode", None)
    code = exc.args[0] if exc.args else None
    return code if is_int(code) else None


def about_the_data(exc: Exception) -> bool:
    """Did writing fail because of what the hits hold (True), or is the database unusable now:
    unreachable, connection lost, deadlock (1213), lock wait timeout (1205), a missing table
    during a deploy (False)? An exception that is not a database error is raised by Python on
    the way (UnicodeEncodeError from the driver, OverflowError from sqlite3, a bug one hit
    triggers): it belongs to the data."""
    if isinstance(exc, AnalyticsStoreUnavailable):
        return False
    if not isinstance(exc, Error):  # django.db.Error: DatabaseError and InterfaceError
        return True
    code = _error_code(exc)
    if connection.vendor == "mysql":
        return code in MYSQL_DATA_ERRORS or isinstance(exc, (DataError, IntegrityError))
    if connection.vendor == "sqlite":
        return isinstance(code, int) and code & 0xFF in SQLITE_DATA_ERRORS
    return isinstance(exc, (DataError, IntegrityError))


def describe(exc: BaseException) -> str:
    """An exception for a log line: its class and database error code, never its message
    (drivers quote values there: "Incorrect string value: '...'", or the whole statement)."""
    if is_clickhouse_error(exc):
        code = getattr(exc, "code", None)
        return f"ClickHouse {type(exc).__name__}" + (f" {code}" if code else "")
    code = _error_code(exc) if isinstance(exc, Error) else None
    return type(exc).__name__ if code is None else f"{type(exc).__name__} {code}"

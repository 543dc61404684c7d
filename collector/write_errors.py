"""Telling a hit's bad data from an outage when a write fails.

The ingest worker splits a batch to isolate a hit whose values the database refuses, but must
retry the whole batch when the database itself is unusable. The classes do not tell them apart
(mysqlclient raises a value's 1366 and a lost connection's 2013 as the same OperationalError),
so the driver's error code decides.
"""

from __future__ import annotations

from django.db import DataError, Error, IntegrityError, connection

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
    code = _error_code(exc) if isinstance(exc, Error) else None
    return type(exc).__name__ if code is None else f"{type(exc).__name__} {code}"

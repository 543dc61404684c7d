"""Stats backends: what one must answer (base.StatsBackend) and which one answers (get_backend).

Two: the Django database (database.DatabaseBackend: rollups + raw events) when ANALYTICS_URL is
unset, and ClickHouse (clickhouse.ClickHouseBackend: a server or cluster, `clickhouse://…`, or
the embedded engine, `chdb:///path`) when it names one. analytics.store.kind() reads the URL
(and refuses any other without repeating it: it may hold a password); get_backend is the one
place that chooses.
"""

from __future__ import annotations

from analytics import store
from dashboard.selectors.backends.base import StatsBackend
from dashboard.selectors.backends.clickhouse import ClickHouseBackend
from dashboard.selectors.backends.database import DatabaseBackend

# Stateless: one of each for every query (the ClickHouse client is analytics.store's).
_DATABASE = DatabaseBackend()
_CLICKHOUSE = ClickHouseBackend()


def get_backend() -> StatsBackend:
    """The backend that answers stats reads, as analytics.store.kind() says: "sql" (ANALYTICS_URL
    unset, the default) is the Django database, "clickhouse" ClickHouse."""
    return _CLICKHOUSE if store.kind() == "clickhouse" else _DATABASE

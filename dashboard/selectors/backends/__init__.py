"""Stats backends: what one must answer (base.StatsBackend) and which one answers (get_backend).

Today there is one, the Django database (database.DatabaseBackend: rollups + raw events). A
ClickHouse backend (server, cluster or embedded chDB) is to slot in beside it, chosen by
ANALYTICS_URL; get_backend is the one place that chooses.
"""

from __future__ import annotations

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from dashboard.selectors.backends.base import StatsBackend
from dashboard.selectors.backends.database import DatabaseBackend

_DATABASE = DatabaseBackend()  # stateless: one for every query


def get_backend() -> StatsBackend:
    """The backend that answers stats reads: settings.ANALYTICS_URL unset (the default) is the
    Django database. No other backend is built yet, so any other value is refused rather than
    quietly read from the Django database. (The error does not repeat the URL: it may hold a
    password.)"""
    if not settings.ANALYTICS_URL:
        return _DATABASE
    raise ImproperlyConfigured(
        "ANALYTICS_URL is set, but the only stats backend built so far is the Django database: unset ANALYTICS_URL"
    )

"""Settings for the test suite: the normal settings with test-safe defaults.

The database, cache and broker still come from the environment, so the same suite runs on
SQLite and on MariaDB with Redis (see Makefile `test`).
"""

from __future__ import annotations

import os
import tempfile

# Production-shaped (DEBUG off, so HSTS, secure cookies and no static finders are what is tested),
# with test-safe stand-ins for what production must be given. Subprocesses inherit these.
os.environ.setdefault("DEBUG", "0")
os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("ALLOW_LOCMEM_CACHE", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from fathom.settings import *  # noqa: F403
from fathom.settings import CACHES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; never in production
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]
# The ban version file (local-memory cache only, security/bans.py) never goes into the checkout:
# one per test process under the temp directory, unless a test's subprocess is given its own.
BAN_VERSION_FILE = os.environ.get("BAN_VERSION_FILE") or os.path.join(
    tempfile.gettempdir(), f"fathom-test-ban-version-{os.getpid()}"
)

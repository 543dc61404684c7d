"""Settings for the test suite: the normal settings with test-safe defaults.

The database, cache and broker still come from the environment, so the same suite runs on
SQLite and on MariaDB with Redis (see Makefile `test`).
"""

from __future__ import annotations

import os

os.environ.setdefault("SECRET_KEY", "test-only-secret-key")
os.environ.setdefault("ALLOW_LOCMEM_CACHE", "1")
os.environ.setdefault("ALLOWED_HOSTS", "testserver,localhost,127.0.0.1")

from fathom.settings import *  # noqa: F403
from fathom.settings import CACHES

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # speed only; never in production
if CACHES["default"]["BACKEND"].endswith("LocMemCache"):
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

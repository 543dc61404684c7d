"""Settings, 12-factor: every knob is an environment variable with a safe local default.

A fresh clone is local development and needs nothing set: DEBUG on, a published development
key, SQLite, a local-memory cache and inline Celery tasks. Production is what runs on Lambda,
what sets ENVIRONMENT=production, or what turns DEBUG off: it refuses to start without
SECRET_KEY, REDIS_URL (rate limits must be shared between processes) and real ALLOWED_HOSTS.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent


def env(name: str, default: str = "") -> str:
    return os.environ.get(name, default)


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def env_float(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env(name, default).split(",") if item.strip()]


# Production or local development. The local defaults below (a published key, no Redis, any
# host) are only taken where production cannot be mistaken for a developer's checkout:
# - on Lambda, which always sets AWS_LAMBDA_FUNCTION_NAME (nobody has to remember anything);
# - with ENVIRONMENT=production, for any other server (a typo is refused, not taken for development);
# - with DEBUG explicitly off: whoever asks for DEBUG off asks for production behaviour, and the
#   benchmarks and tests that run the app production-like say so this way.
# ENVIRONMENT=development (not on Lambda) keeps the local defaults even with DEBUG=0, e.g. to see the error pages.
ENVIRONMENT = env("ENVIRONMENT").strip().lower()
if ENVIRONMENT not in {"", "production", "development"}:
    raise ImproperlyConfigured(f"ENVIRONMENT must be production or development (or unset), not {ENVIRONMENT!r}.")
if env("AWS_LAMBDA_FUNCTION_NAME"):
    PRODUCTION, _WHY = True, "on Lambda"
elif ENVIRONMENT:
    PRODUCTION, _WHY = ENVIRONMENT == "production", "ENVIRONMENT=production"
else:
    PRODUCTION, _WHY = env("DEBUG").strip() != "" and not env_bool("DEBUG"), "DEBUG is off"

DEBUG = env_bool("DEBUG", not PRODUCTION)

SECRET_KEY = env("SECRET_KEY")
if not SECRET_KEY:
    if PRODUCTION:
        raise ImproperlyConfigured(f"SECRET_KEY must be set in production ({_WHY}).")
    SECRET_KEY = "insecure-local-development-key-do-not-use-in-production"  # noqa: S105 (development only)

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "" if PRODUCTION else "localhost,127.0.0.1,[::1]")
if PRODUCTION and not ALLOWED_HOSTS:
    raise ImproperlyConfigured(f"ALLOWED_HOSTS must name the site's host names in production ({_WHY}).")
if PRODUCTION and "*" in ALLOWED_HOSTS:
    raise ImproperlyConfigured(f"ALLOWED_HOSTS=* is only allowed in development ({_WHY}).")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS")
CSRF_FAILURE_VIEW = "fathom.errors.csrf_failure"  # a friendly page instead of Django's technical one

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "security",
    "sites",  # before the apps that use the Site: collector (write side) and dashboard (read side)
    "analytics",  # the analytics store (ClickHouse client, its migrations): under collector and dashboard
    "collector",
    "dashboard",
    "fathom",  # no models: the deployment's own management commands (cost_estimate)
]

MIDDLEWARE = [
    # First: resolve the one trustworthy client IP before anything reads REMOTE_ADDR.
    "security.middleware.ClientIPMiddleware",
    "security.middleware.BanMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "security.headers.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # After CSRF: a forged sign-in POST is refused there and never counts against anyone.
    "security.login_limits.LoginLimitMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = env("ROOT_URLCONF", "fathom.urls")  # bench/ swaps in a urlconf with a bare view
WSGI_APPLICATION = "fathom.wsgi.application"
ASGI_APPLICATION = "fathom.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# Database: SQLite file by default; DATABASE_URL=mysql://user:pass@host:3306/name in production.
DATABASES = {
    "default": dj_database_url.parse(
        env("DATABASE_URL", f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
        conn_max_age=env_int("DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.mysql":
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "charset": "utf8mb4",
            "connect_timeout": env_int("DB_CONNECT_TIMEOUT", 5),
            "init_command": "SET sql_mode='STRICT_TRANS_TABLES'",
        }
    )
    DATABASES["default"].setdefault("TEST", {}).update({"CHARSET": "utf8mb4", "COLLATION": "utf8mb4_unicode_ci"})
elif DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # WAL lets the dashboard read while the inline ingest writes.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"init_command": "PRAGMA journal_mode=WAL;", "transaction_mode": "IMMEDIATE", "timeout": 20}
    )

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# Where raw events and visits are written and read (analytics.store): unset = the Django
# database above; clickhouse://user:password@host:8123/db = a ClickHouse server or cluster;
# chdb:///absolute/path = the engine in-process (dev/test; one directory per process).
ANALYTICS_URL = env("ANALYTICS_URL")
# A ClickHouse cluster name: the analytics tables are then created ON CLUSTER, as Replicated
# tables `<name>_local` under Distributed tables `<name>` (analytics/schema.py).
ANALYTICS_CLUSTER = env("ANALYTICS_CLUSTER")

# Cache: Redis in production (rate limits and ban versions must be shared); local memory otherwise.
REDIS_URL = env("REDIS_URL")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "fathom.cache.FastRedisCache",  # Django's RedisCache, one client per pool
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": env("CACHE_KEY_PREFIX", "fathom"),
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    if PRODUCTION and not env_bool("ALLOW_LOCMEM_CACHE", False):
        raise ImproperlyConfigured(
            f"REDIS_URL must be set in production ({_WHY}): rate limits need a cache shared by all processes."
        )
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "fathom"}}
    # django-ratelimit refuses a per-process cache (E003/W001). That is right for production,
    # which cannot reach this branch (unless ALLOW_LOCMEM_CACHE: the tests, a benchmark);
    # for local development we silence it on purpose.
    SILENCED_SYSTEM_CHECKS = ["django_ratelimit.E003", "django_ratelimit.W001"]

# Celery: inline until a broker is configured (redis://... locally, sqs:// in production).
CELERY_BROKER_URL = env("CELERY_BROKER_URL")
CELERY_TASK_ALWAYS_EAGER = not CELERY_BROKER_URL
CELERY_TASK_EAGER_PROPAGATES = True
if not CELERY_BROKER_URL:
    CELERY_BROKER_URL = "memory://"
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
# A crashed worker's messages come back; hits carry ids, so redelivery never double counts.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {"collector.tasks.ingest_hits": {"queue": "ingest"}}
# Publishing is on the request path: fail fast when the broker is unreachable (the view answers 503).
BROKER_TIMEOUT = env_float("BROKER_TIMEOUT", 1.0)
CELERY_BROKER_CONNECTION_TIMEOUT = BROKER_TIMEOUT
AWS_REGION = env("AWS_REGION", "us-east-1")  # Lambda sets it; also used by the WAF sync below
if CELERY_BROKER_URL.startswith("sqs://"):
    # Production on Lambda: the queues exist already (created with the stack), so kombu never
    # lists or creates queues and needs only sqs:SendMessage. Credentials: the function's role.
    SQS_INGEST_QUEUE_URL = env("SQS_INGEST_QUEUE_URL")
    SQS_DEFAULT_QUEUE_URL = env("SQS_DEFAULT_QUEUE_URL")
    if not (SQS_INGEST_QUEUE_URL and SQS_DEFAULT_QUEUE_URL):
        raise ImproperlyConfigured(
            "CELERY_BROKER_URL=sqs:// needs SQS_INGEST_QUEUE_URL and SQS_DEFAULT_QUEUE_URL (the queues' URLs)."
        )
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "region": AWS_REGION,
        "predefined_queues": {
            "ingest": {"url": SQS_INGEST_QUEUE_URL},
            "default": {"url": SQS_DEFAULT_QUEUE_URL},
        },
        "client-config": {
            "connect_timeout": BROKER_TIMEOUT,
            "read_timeout": BROKER_TIMEOUT,
            "retries": {"total_max_attempts": 2},
        },
    }
else:
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "socket_connect_timeout": BROKER_TIMEOUT,
        "socket_timeout": BROKER_TIMEOUT,
        "max_retries": 0,
    }
CELERY_BROKER_POOL_LIMIT = env_int("CELERY_BROKER_POOL_LIMIT", 10)

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
# Serve straight from the apps' static folders when developing; collectstatic output otherwise.
WHITENOISE_USE_FINDERS = DEBUG
WHITENOISE_AUTOREFRESH = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}

SESSION_COOKIE_SECURE = env_bool("SECURE_COOKIES", not DEBUG)
CSRF_COOKIE_SECURE = SESSION_COOKIE_SECURE

# Client IP: how many trusted proxies append to X-Forwarded-For (0 direct, 1 ALB, 2 CloudFront+ALB).
TRUSTED_PROXY_HOPS = env_int("TRUSTED_PROXY_HOPS", 0)

# HTTPS. Behind a load balancer the app sees plain HTTP and the balancer says what the browser
# used: an ALB sets X-Forwarded-Proto itself (a client's own value is replaced), so the header is
# trusted only when a proxy is declared in front (TRUSTED_PROXY_HOPS). With CloudFront talking to
# the ALB over HTTP, set SECURE_PROXY_SSL_HEADER=CloudFront-Forwarded-Proto; an empty value trusts none.
_PROTO_HEADER = env("SECURE_PROXY_SSL_HEADER", "X-Forwarded-Proto" if TRUSTED_PROXY_HOPS > 0 else "").strip()
if _PROTO_HEADER:
    SECURE_PROXY_SSL_HEADER = ("HTTP_" + _PROTO_HEADER.upper().replace("-", "_"), "https")
# HSTS goes out on HTTPS responses only (SecurityMiddleware), so it is safe to default on outside DEBUG.
SECURE_HSTS_SECONDS = env_int("SECURE_HSTS_SECONDS", 0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", False)
# Plain HTTP -> HTTPS (usually the ALB's HTTP listener redirects already). The health probes keep
# answering on HTTP: a load balancer checks its targets directly, without X-Forwarded-Proto.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", False)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
# Every page may load scripts, styles, images and fonts from this origin only, and runs no inline
# script or style: an injected tag does nothing. The tracker (/script.js) is loaded by customers'
# pages, which this header does not govern. Empty: no header.
CONTENT_SECURITY_POLICY = env(
    "CONTENT_SECURITY_POLICY",
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
).strip()

# Collector knobs.
COLLECTOR_MAX_BODY = 4096
COLLECTOR_SITE_CACHE_SECONDS = env_int("COLLECTOR_SITE_CACHE_SECONDS", 300)
# Per client IP (IPv6 per /64). Generous: an office or a carrier NAT puts many people on one IP;
# single-visitor floods are caught per visitor by the detectors and per (IP, site) below.
COLLECTOR_RATE = env("COLLECTOR_RATE", "600/m")
# Minutes of inactivity after which the next hit starts a new visit.
VISIT_TIMEOUT_MINUTES = env_int("VISIT_TIMEOUT_MINUTES", 30)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "stream": sys.stderr, "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": env("LOG_LEVEL", "INFO")},
    "loggers": {
        # Django logs the path of every 4xx; our collector paths carry no personal data, but the
        # request object attached to the record would carry the IP to any handler that prints it.
        "django.request": {"level": "ERROR"},
        # One INFO line per task is noise at our volume; failures still log as errors.
        "celery.app.trace": {"level": "WARNING"},
        # clickhouse-connect logs a value it cannot serialize with its traceback, whose messages
        # quote the value (a hit's text); the ingest logs its own line (hit id, error class).
        "clickhouse_connect.driver.transform": {"level": "CRITICAL"},
    },
}

# Security: rate limits (django-ratelimit on the shared cache), detectors, auto-ban, WAF.
RATELIMIT_USE_CACHE = "default"
COLLECTOR_SITE_RATE = env("COLLECTOR_SITE_RATE", "300/m")  # per (IP, site)
# POSTs to these paths (sign-in, sign-up, reset emails) that pass CSRF count per IP (LOGIN_RATE).
LOGIN_PATHS = env_list("LOGIN_PATHS", "/admin/login/,/accounts/login/,/accounts/signup/,/accounts/password_reset/")
# POSTs to these authenticate a username: refused while it has LOGIN_RATE failed sign-ins in the
# window, unless the browser holds a known-device cookie for it (then the device's failures count).
LOGIN_AUTH_PATHS = env_list("LOGIN_AUTH_PATHS", "/admin/login/,/accounts/login/")
LOGIN_RATE = env("LOGIN_RATE", "10/m")  # attempts per IP; failures per username; failures per known device
LOGIN_DEVICE_DAYS = env_int("LOGIN_DEVICE_DAYS", 365)  # lifetime of the known-device cookie
ACCOUNT_EMAIL_RATE = env("ACCOUNT_EMAIL_RATE", "5/h")  # sign-up and reset emails per target address
API_RATE = env("API_RATE", "600/h")  # per user: all their Stats API keys and their session
SHARE_RATE = env("SHARE_RATE", "60/m")  # per IP: filtered shared dashboards and shared exports (raw scans)
# A human reading pages sends a few hits a minute; past this many per minute from one IP is a flag.
DETECT_HUMAN_MAX_PER_MINUTE = env_int("DETECT_HUMAN_MAX_PER_MINUTE", 40)
DETECT_MAX_SITES_PER_HOUR = env_int("DETECT_MAX_SITES_PER_HOUR", 5)
FLAG_EXPIRY_DAYS = env_int("FLAG_EXPIRY_DAYS", 7)
AUTO_BAN_SCORE = env_int("AUTO_BAN_SCORE", 100)  # flags below this wait for a human
AUTO_BAN_BASE_MINUTES = env_int("AUTO_BAN_BASE_MINUTES", 60)  # x4 for each earlier ban
AUTO_BAN_MAX_DAYS = env_int("AUTO_BAN_MAX_DAYS", 30)
# Bans of scope `all` (every path but /healthz); a ban of scope `collector` (the detectors' auto-bans)
# goes to the optional second pair only, for a web ACL rule limited to the collector paths.
WAF_IPSET_V4_ARN = env("WAF_IPSET_V4_ARN")
WAF_IPSET_V6_ARN = env("WAF_IPSET_V6_ARN")
WAF_COLLECTOR_IPSET_V4_ARN = env("WAF_COLLECTOR_IPSET_V4_ARN")
WAF_COLLECTOR_IPSET_V6_ARN = env("WAF_COLLECTOR_IPSET_V6_ARN")
WAF_SCOPE = env("WAF_SCOPE", "REGIONAL")  # CLOUDFRONT for a CloudFront web ACL
WAF_MAX_ADDRESSES = env_int("WAF_MAX_ADDRESSES", 10_000)  # AWS's limit per IP set
# Ban changes reach the other processes through the shared cache. The local-memory cache is not
# shared, so there (local runs) they also go through this file: next to the SQLite database by default.
_SQLITE_NAME = str(DATABASES["default"]["NAME"]) if DATABASES["default"]["ENGINE"].endswith("sqlite3") else ""
BAN_VERSION_FILE = env(
    "BAN_VERSION_FILE",
    f"{_SQLITE_NAME}.ban-version"
    if _SQLITE_NAME and not _SQLITE_NAME.startswith((":memory:", "file:"))
    else str(BASE_DIR / "var" / "ban-version"),
)
CELERY_TASK_ROUTES["security.tasks.*"] = {"queue": "default"}

# Periodic work for a long-running `celery beat` (locally or on a server). On Lambda the
# commands function runs the same work from EventBridge schedules (zappa_settings.json).
CELERY_BEAT_SCHEDULE = {
    "sync-waf": {"task": "security.tasks.sync_waf_task", "schedule": 60.0},
    "expire-bans": {"task": "security.tasks.expire_bans_task", "schedule": 60.0},
    "rotate-salts": {"task": "collector.tasks.rotate_salts_task", "schedule": 3600.0},
}
CELERY_TASK_ROUTES["collector.tasks.rotate_salts_task"] = {"queue": "default"}
# Email reports: hourly, idempotent (each subscription gets its last complete week / month once).
CELERY_BEAT_SCHEDULE["send-reports"] = {
    "task": "dashboard.tasks.send_reports_task",
    "schedule": 3600.0,
    "kwargs": {"frequency": "due"},
}
CELERY_TASK_ROUTES["dashboard.tasks.send_reports_task"] = {"queue": "default"}

# Owner-facing pages: accounts, email.
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"
# Absolute links in emails (reports, invitations, password resets sent outside a request).
BASE_URL = env("BASE_URL", "http://127.0.0.1:8000").rstrip("/")
EMAIL_BACKEND = env("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", "Fathom <reports@localhost>")
INVITATION_DAYS = env_int("INVITATION_DAYS", 7)
SIGNUP_LINK_HOURS = env_int("SIGNUP_LINK_HOURS", 24)  # how long a sign-up confirmation link works

# OpenAPI schema of the Stats API (drf-spectacular; Swagger UI assets from the sidecar, no CDN).
REST_FRAMEWORK = {"DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema"}
SPECTACULAR_SETTINGS = {
    "TITLE": "Fathom Stats API",
    "DESCRIPTION": "Plausible Stats API v1 compatible reads of a site's numbers.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "PREPROCESSING_HOOKS": ["dashboard.api_schema.only_stats_api"],
    "SORT_OPERATION_PARAMETERS": False,
}

# AWS prices for `manage.py cost_estimate` (fathom/costs/): us-east-1, on-demand, USD, as looked up
# on 2026-11-26 (issue 5 research notes, section 5). Prices change: check the sources before trusting a
# total. Free tiers are listed but only applied with `cost_estimate --free-tier`.
_ELB = "aws.amazon.com/elasticloadbalancing/pricing/; cloud-horizons.com/blog/alb-the-line-item-nobody-watches/"
_LAMBDA = "aws.amazon.com/lambda/pricing/; cloudchipr.com/blog/aws-lambda-pricing"
_SQS = "aws.amazon.com/sqs/pricing/; cloudburn.io/blog/amazon-sqs-pricing"
_APIGW = "aws.amazon.com/api-gateway/pricing/; apigatewaycost.com/aws"
_WAF = "aws.amazon.com/waf/pricing/; c3x.dev/blog/aws-waf-cost-explained/"
_VANTAGE = "handbook.vantage.sh/aws/services/elb-pricing"
_SQS64 = "factualminds.com/blog/amazon-sqs-pricing-64kb-rule-fifo-vs-standard/"
AWS_PRICES: dict[str, dict[str, object]] = {
    name: {"value": value, "unit": unit, "source": source, "date": "2026-11-26"}
    for name, value, unit, source in [
        ("alb_hour", 0.0225, "USD per ALB-hour (partial hours billed)", _ELB),
        ("alb_lcu_hour", 0.008, "USD per LCU-hour; LCUs of an hour = the largest of the 4 dimensions", _ELB),
        ("alb_lcu_new_connections_per_second", 25, "new connections per second in one LCU", _ELB),
        ("alb_lcu_active_connections_per_minute", 3000, "active connections (per minute) in one LCU", _ELB),
        ("alb_lcu_lambda_gb_per_hour", 0.4, "GB an hour in one LCU, Lambda targets (1 GB for EC2/IP)", _VANTAGE),
        ("alb_lcu_rule_evaluations_per_second", 1000, "rule evaluations per second in one LCU", _ELB),
        ("alb_free_rules_per_request", 10, "rules per request not counted as rule evaluations", _ELB),
        ("lambda_request_per_million", 0.20, "USD per 1M invocations (duration billed per 1 ms)", _LAMBDA),
        ("lambda_gb_second_x86_64", 0.0000166667, "USD per GB-s, x86_64, first 6B GB-s a month", _LAMBDA),
        ("lambda_gb_second_arm64", 0.0000133334, "USD per GB-s, arm64, first 7.5B GB-s a month", _LAMBDA),
        ("lambda_free_requests_per_month", 1_000_000, "free invocations a month (always free, per account)", _LAMBDA),
        ("lambda_free_gb_seconds_per_month", 400_000, "free GB-s a month (always free, per account)", _LAMBDA),
        ("sqs_request_per_million", 0.40, "USD per 1M standard-queue requests, first 100B a month", _SQS),
        ("sqs_request_chunk_bytes", 65_536, "payload bytes per billed request (each 64 KB chunk is one)", _SQS64),
        ("sqs_free_requests_per_month", 1_000_000, "free requests a month (always free, per account)", _SQS),
        ("apigw_rest_per_million", 3.50, "USD per 1M REST API calls, first 333M a month", _APIGW),
        ("apigw_rest_per_million_333m_to_1b", 2.80, "USD per 1M REST API calls, next 667M", _APIGW),
        ("apigw_rest_per_million_1b_to_20b", 2.38, "USD per 1M REST API calls, next 19B", _APIGW),
        ("apigw_rest_per_million_over_20b", 1.51, "USD per 1M REST API calls, over 20B", _APIGW),
        ("apigw_http_per_million", 1.00, "USD per 1M HTTP API requests, first 300M a month", _APIGW),
        ("apigw_http_per_million_over_300m", 0.90, "USD per 1M HTTP API requests, over 300M", _APIGW),
        ("apigw_free_requests_per_month", 1_000_000, "free calls a month, first 12 months only (not applied)", _APIGW),
        ("waf_acl_month", 5.00, "USD per web ACL per month (prorated hourly)", _WAF),
        ("waf_rule_month", 1.00, "USD per rule or rule group per month (prorated hourly)", _WAF),
        ("waf_request_per_million", 0.60, "USD per 1M requests inspected (blocked ones too)", _WAF),
    ]
}
# The analytics store on ClickHouse (fathom/costs/clickhouse.py), looked up 2026-12-03. ClickHouse Cloud
# publishes its rates in worked examples for AWS us-east-1: Scale tier "2 replicas x 8 GiB RAM, 2 vCPU"
# always on = $436.95 a month -> 436.95 / (2 x 730 h) = $0.2993 per compute unit-hour; "1TB of data + 1
# backup" = $50.60 -> $25.30 per TB-month, backups billed as storage.
_CH_CLOUD = "clickhouse.com/docs/cloud/manage/billing/overview (AWS us-east-1 examples); clickhouse.com/pricing"
_EC2 = "aws.amazon.com/ec2/pricing/on-demand/ (Linux, us-east-1)"
AWS_PRICES |= {
    name: {"value": value, "unit": unit, "source": source, "date": "2026-12-03"}
    for name, value, unit, source in [
        ("clickhouse_cloud_unit_hour", 0.2993, "USD per compute unit-hour (8 GiB, 2 vCPU), Scale tier", _CH_CLOUD),
        ("clickhouse_cloud_storage_tb_month", 25.30, "USD per TB-month, compressed, backups included", _CH_CLOUD),
        (
            "privatelink_endpoint_az_hour",
            0.01,
            "USD per interface endpoint per AZ-hour",
            "aws.amazon.com/privatelink/pricing/",
        ),
        ("privatelink_gb", 0.01, "USD per GB processed, first 1 PB a month", "aws.amazon.com/privatelink/pricing/"),
        ("ec2_m6i_xlarge_hour", 0.192, "USD per instance-hour, m6i.xlarge (4 vCPU, 16 GiB), on demand", _EC2),
        ("ec2_t3_small_hour", 0.0208, "USD per instance-hour, t3.small (2 vCPU, 2 GiB), on demand", _EC2),
        (
            "ebs_gp3_gb_month",
            0.08,
            "USD per GB-month, gp3 (3,000 IOPS and 125 MB/s included)",
            "aws.amazon.com/ebs/pricing/",
        ),
        ("s3_standard_gb_month", 0.023, "USD per GB-month, S3 Standard, first 50 TB", "aws.amazon.com/s3/pricing/"),
    ]
}

"""The Celery app. Tasks run inline (eager) until CELERY_BROKER_URL is set."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fathom.settings")

app = Celery("fathom")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

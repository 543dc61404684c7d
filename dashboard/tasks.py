from __future__ import annotations

import io

from celery import shared_task
from django.core.management import call_command


@shared_task(ignore_result=True)
def send_reports_task(frequency: str = "due") -> str:
    """The scheduler's hourly `send_reports --frequency due` (idempotent: a report goes out once).

    A failed recipient makes the command, and so this task, fail (logged); the recipient's report
    is not marked sent, so the next hourly run tries again. No retry here: the schedule is one.
    """
    out = io.StringIO()
    call_command("send_reports", frequency=frequency, stdout=out)
    return out.getvalue().strip()

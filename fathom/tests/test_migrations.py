"""Every model change has its migration: `makemigrations --check` as a test, so that the suite
itself fails on a field added or changed without one (`make check-migrations` runs it too)."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.mark.django_db  # makemigrations checks the migration history of each database
def test_every_model_change_has_a_migration():
    out = io.StringIO()
    try:
        # --check exits with status 1 when a migration is missing; --dry-run writes none
        call_command("makemigrations", "--check", "--dry-run", stdout=out, stderr=out)
    except SystemExit:
        pytest.fail(f"models changed without a migration (manage.py makemigrations):\n{out.getvalue()}")
    assert "No changes detected" in out.getvalue()

"""Fixtures of the security app's tests."""

from __future__ import annotations

from typing import Any

import pytest
from django.contrib.auth import get_user_model
from django.test import Client


@pytest.fixture
def staff(db: Any) -> Any:
    """A staff member (ops): the only kind of user who may open /security/."""
    return get_user_model().objects.create_user("ops", "ops@example.com", "pw-ops-123456", is_staff=True)


@pytest.fixture
def staff_client(staff: Any) -> Client:
    """A browser signed in as `staff`."""
    client = Client()
    client.force_login(staff)
    return client

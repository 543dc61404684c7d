from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def home(request: HttpRequest) -> HttpResponse:
    # The dashboard is issue 4; until then the admin shows sites and their rollups.
    return redirect("admin:index")

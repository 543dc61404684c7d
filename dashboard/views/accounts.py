from __future__ import annotations

from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect


def signup(request: HttpRequest) -> HttpResponse:  # placeholder until the accounts pages land
    return redirect("login")

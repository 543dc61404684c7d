from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


@login_required
def site_list(request: HttpRequest) -> HttpResponse:  # placeholder until the sites pages land
    return render(request, "dashboard/base.html")

"""Response headers that Django's SecurityMiddleware does not send: Content-Security-Policy.

(Django 5.2 has no CSP support of its own; 6.0 adds it.) The policy is one setting,
CONTENT_SECURITY_POLICY; pages that need a different one set the header themselves.
"""

from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse

HEADER = "Content-Security-Policy"


class ContentSecurityPolicyMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        policy = settings.CONTENT_SECURITY_POLICY
        if policy and HEADER not in response:
            response[HEADER] = policy
        return response

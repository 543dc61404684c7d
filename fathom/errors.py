"""Error answers for what no view handles: a friendly page for people, JSON for API clients.

Django's defaults are bare HTML; a Stats API client that mistypes a path would get a page it
cannot read, and a person whose session expired before a sign-in POST would get Django's
technical CSRF page. Paths under /api/ answer {"error": "..."} like every API view does.
"""

from __future__ import annotations

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.template import loader

API_PREFIX = "/api/"
TEMPLATE = "dashboard/error.html"

MESSAGES = {
    429: ("Please wait", "Too many requests. Please wait a moment and retry."),
    503: ("Unavailable for a moment", "Please retry in a moment."),
    400: ("Bad request", "This address or form could not be understood. Check the link, or go back and try again."),
    403: ("Not allowed", "You do not have access to this page."),
    404: ("Page not found", "There is nothing at this address. Check the link, or start from your sites."),
    500: ("Something went wrong", "This is our fault, and it has been logged. Please try again in a moment."),
}
API_MESSAGES = {
    400: "bad request",
    403: "forbidden",
    404: "not found",
    429: "rate limited, retry later",
    500: "internal error, retry later",
    503: "temporarily unavailable, retry later",
}


def _answer(request: HttpRequest | None, status: int, *, with_request: bool = True, text: str = "") -> HttpResponse:
    if request is not None and request.path.startswith(API_PREFIX):
        return JsonResponse({"error": API_MESSAGES[status]}, status=status)
    title, message = MESSAGES[status]
    context = {"title": title, "message": text or message, "status": status}
    # A 400 or 500 may come from a broken request or session: render without context
    # processors, as Django's own handlers do, so the page itself cannot fail the same way.
    body = loader.get_template(TEMPLATE).render(context, request if with_request else None)
    return HttpResponse(body, status=status)


def friendly(request: HttpRequest, status: int, text: str = "") -> HttpResponse:
    """The error page for a status a view or middleware decides itself (429, 503 ...)."""
    return _answer(request, status, with_request=False, text=text)


def bad_request(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 400, with_request=False)


def permission_denied(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 403)


def page_not_found(request: HttpRequest, exception: Exception | None = None) -> HttpResponse:
    return _answer(request, 404)


def server_error(request: HttpRequest) -> HttpResponse:
    return _answer(request, 500, with_request=False)


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """CSRF_FAILURE_VIEW: usually a page left open until its session expired, or cookies blocked."""
    text = (
        "This form had expired, or your browser did not send its cookie. "
        "Reload the page and try again; if it keeps happening, allow cookies for this site."
    )
    return _answer(request, 403, with_request=False, text=text)

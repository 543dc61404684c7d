"""Sign-in, sign-up and reset limits: who may try, and how often, without letting strangers lock
a person out of their own account.

- Per client IP (IPv6 per /64): every POST to `LOGIN_PATHS` that passed the CSRF check counts.
- Per username: only failed authentications count (Django's `user_login_failed` signal, so a
  form, the admin and any other caller of `authenticate()` are covered), keyed by the account
  the name reaches (`account_key`); the count is checked before authenticating on
  `LOGIN_AUTH_PATHS`.
- Known devices (OWASP's "device cookies"): a successful sign-in leaves a signed, long-lived
  cookie naming the (normalised) username. A browser presenting it for the username it tries is
  not held by that username's lock; its own failures count against the device instead.
  The per-IP limit still applies to it.
- Per target address: at most `ACCOUNT_EMAIL_RATE` account emails (sign-up and reset), so no one
  can bomb an inbox through our forms.

The middleware answers in `process_view` and sits after CsrfViewMiddleware in MIDDLEWARE: Django
calls the process_view hooks in that order and stops at the first one that returns a response,
so a POST refused for CSRF (a cross-site form, a script without the token) never reaches this
one and is charged to no one. Every limit fails closed: with the cache down, sign-in answers 503.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import unicodedata
from collections.abc import Callable
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.core import signing
from django.dispatch import receiver
from django.http import HttpRequest, HttpResponse
from django_ratelimit.core import get_usage

from fathom.errors import friendly
from security import metrics
from security.guards import Limited, LimiterUnavailable, check_limit, ip_key

log = logging.getLogger(__name__)

DEVICE_COOKIE = "fathom_device"
_DEVICE_SALT = "security.login_limits.device"
_DEVICE_NAMES = 5  # usernames one browser is known for (a shared family computer)
_USERNAME_MAX = 150  # AbstractUser.username's max_length: longer names never authenticate
_SIGNED_IN = "_fathom_signed_in_as"  # request attribute: the key of who just signed in here


def username_key(raw: str) -> str:
    """A name as the limits compare it: NFKC (AbstractBaseUser.normalize_username, what the login
    form does before authenticating: full-width and mathematical letters become plain ones) and
    casefold (sign-up refuses names differing only in case, and MariaDB matches them)."""
    text = unicodedata.normalize("NFKC", raw[: _USERNAME_MAX * 4])  # bounded before the slow part
    return unicodedata.normalize("NFKC", text.casefold()).strip()[:_USERNAME_MAX]


def account_key(raw: str) -> str:
    """The identity the per-username limit counts under for what was typed: the key of the account
    the database would sign in for it, else the key of the typed name.

    Asking the database is what makes every spelling that reaches one account share its counter:
    ModelBackend looks the name up with `=`, exact on SQLite, but on MariaDB under the column's
    collation, which also ignores accents, invisible characters and other scripts' digits
    (`dāve` and `da<ZWSP>ve` sign in as dave there). No Python folding reproduces that exactly.
    """
    name = raw.strip()
    if not name or len(name) > _USERNAME_MAX:  # the form refuses these before authenticating
        return username_key(name)
    name = AbstractBaseUser.normalize_username(name)
    model = get_user_model()
    field = model.USERNAME_FIELD
    match = model._default_manager.filter(**{field: name}).order_by("pk").values_list(field, flat=True).first()
    return username_key(match if match is not None else name)


def _usage(group: str, value: str, rate: str, *, increment: bool) -> dict[str, Any] | None:
    """django-ratelimit's counter for `value` (incremented or only read); raises when the cache
    does not answer. The request argument only matters for method filters, which we do not use."""
    try:
        usage = get_usage(None, group=group, key=lambda _group, _request: value, rate=rate, increment=increment)
    except Exception as exc:
        raise LimiterUnavailable(group) from exc
    if usage is not None and usage["should_limit"] and usage["limit"] == 0 and usage["count"] == 0:
        raise LimiterUnavailable(group)  # django-ratelimit's "cache failed" answer
    return usage


def _locked(group: str, value: str) -> Limited | None:
    """Has `value` used up its failures in this window? (Reads; the failures themselves count.)"""
    usage = _usage(group, value, settings.LOGIN_RATE, increment=False)
    if usage is None or usage["count"] < usage["limit"]:
        return None
    return Limited(retry_after=max(1, int(usage["time_left"])), scope=group)


def _device_cookie(request: HttpRequest) -> dict[str, Any] | None:
    raw = request.COOKIES.get(DEVICE_COOKIE)
    if not raw:
        return None
    try:
        data = signing.loads(raw, salt=_DEVICE_SALT, max_age=dt.timedelta(days=settings.LOGIN_DEVICE_DAYS))
    except (signing.BadSignature, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("d"), str) or not isinstance(data.get("u"), list):
        return None
    return data


def known_device(request: HttpRequest, key: str) -> str | None:
    """The id of this browser if it signed in as `key` before (a valid device cookie), else None."""
    data = _device_cookie(request)
    if data is None or key not in data["u"]:
        return None
    return data["d"]


def _remember_device(request: HttpRequest, response: HttpResponse, key: str) -> None:
    data = _device_cookie(request) or {"d": secrets.token_urlsafe(16), "u": []}
    names = [key, *[name for name in data["u"] if name != key][: _DEVICE_NAMES - 1]]
    response.set_cookie(
        DEVICE_COOKIE,
        signing.dumps({"d": data["d"], "u": names}, salt=_DEVICE_SALT),
        max_age=settings.LOGIN_DEVICE_DAYS * 24 * 3600,
        httponly=True,
        samesite="Lax",
        secure=settings.SESSION_COOKIE_SECURE,
    )


@receiver(user_logged_in, dispatch_uid="security.login_limits.signed_in")
def _signed_in(sender: Any, request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    if request is not None:  # the middleware sets the device cookie on the way out
        setattr(request, _SIGNED_IN, username_key(user.get_username()))


@receiver(user_login_failed, dispatch_uid="security.login_limits.failed")
def _count_failure(sender: Any, credentials: dict[str, Any], request: HttpRequest | None = None, **kwargs: Any) -> None:
    raw = credentials.get(get_user_model().USERNAME_FIELD)
    if request is None or not isinstance(raw, str):
        return
    key = account_key(raw)
    if not key:
        return
    device = known_device(request, key)
    try:
        if device:
            _usage("login-device", device, settings.LOGIN_RATE, increment=True)
        else:
            _usage("login-user", key, settings.LOGIN_RATE, increment=True)
    except LimiterUnavailable:
        # The check before authenticating had the cache; losing it since is not worth a 500.
        log.warning("a failed sign-in was not counted: cache unavailable")


def account_email_allowed(address: str) -> bool:
    """May one more account email (sign-up, reset) go to this address now? Fails closed."""
    key = address.strip().lower()
    try:
        usage = _usage("account-email", key, settings.ACCOUNT_EMAIL_RATE, increment=True)
    except LimiterUnavailable:
        log.warning("account email not sent: cache unavailable")
        return False
    if usage is not None and usage["should_limit"]:
        log.info("account email not sent: per-address limit")  # no address in the log
        return False
    return True


def _unavailable(request: HttpRequest) -> HttpResponse:
    response = friendly(request, 503, "Sign-in is unavailable for a moment. Please retry.")
    response["Retry-After"] = "30"
    return response


def _too_many(request: HttpRequest, limited: Limited) -> HttpResponse:
    metrics.record("rate_limited")
    if limited.scope == "login-ip":
        text = "Too many sign-in attempts from your network. Please wait and retry."
    else:
        text = "Too many failed sign-ins for this account. Please wait and retry."
    response = friendly(request, 429, text)
    response["Retry-After"] = str(limited.retry_after)
    return response


class LoginLimitMiddleware:
    """Place after CsrfViewMiddleware (see the module docstring)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        key = getattr(request, _SIGNED_IN, None)
        if key:
            _remember_device(request, response, key)
        return response

    def process_view(self, request: HttpRequest, view: Any, args: Any, kwargs: Any) -> HttpResponse | None:
        if request.method != "POST":
            return None
        authenticates = request.path in settings.LOGIN_AUTH_PATHS
        if not authenticates and request.path not in settings.LOGIN_PATHS:
            return None
        try:
            limited = check_limit(
                request, "login-ip", ip_key(request.META["REMOTE_ADDR"]), settings.LOGIN_RATE, fail_open=False
            )
            if limited is None and authenticates:
                limited = self._username_locked(request)
        except LimiterUnavailable:
            return _unavailable(request)
        return _too_many(request, limited) if limited else None

    def _username_locked(self, request: HttpRequest) -> Limited | None:
        raw = request.POST.get(get_user_model().USERNAME_FIELD)
        key = account_key(raw) if isinstance(raw, str) else ""
        if not key:
            return None
        device = known_device(request, key)
        if device:
            return _locked("login-device", device)
        return _locked("login-user", key)

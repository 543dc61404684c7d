"""Sign-up by email confirmation.

The sign-up form takes a username and an address and always answers "check your inbox". A new
address gets a confirmation link; an address that already has an account gets an email saying
so, with links to log in and to reset the password. So the form never tells whoever types an
address whether it has an account (usernames are still reported as taken: they are public
handles, shown to teammates).

The account is created only on confirmation, never inactive before it: nothing is stored for an
unconfirmed sign-up, so it reserves neither the address nor the username (the real owner of an
address someone else typed can sign up at any time) and leaves no personal data behind. The link
carries the username, the address and where to go next, signed (salted `django.core.signing`)
and timestamped: it expires after `SIGNUP_LINK_HOURS` and works once, because the account it
creates makes the address taken and a link for a taken address is refused. The password is
chosen on the confirmation page, by whoever can read the mailbox: someone typing another
person's address cannot pre-set the password of that person's future account.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.template.loader import render_to_string
from django.urls import reverse

from security.login_limits import account_email_allowed

log = logging.getLogger(__name__)

_SALT = "dashboard.signup.confirm"


@dataclass(frozen=True)
class SignupLink:
    username: str
    email: str
    next: str


class SignupLinkProblem(Exception):
    def __init__(self, reason: str) -> None:  # "unknown", "expired" or "used"
        super().__init__(reason)
        self.reason = reason


def accounts_with(email: str) -> QuerySet[Any]:
    """Accounts using this address (case-insensitive, as sign-up has always compared them)."""
    return get_user_model().objects.filter(email__iexact=email).order_by("pk")


def make_token(username: str, email: str, next_path: str = "") -> str:
    return signing.dumps({"u": username, "e": email, "n": next_path}, salt=_SALT)


def start(request: HttpRequest, *, username: str, email: str, next_path: str = "") -> None:
    """Send the confirmation link, or the "you already have an account" note. The caller answers
    the same either way; both paths run one query and send one email (similar timing)."""
    existing = list(accounts_with(email))
    if existing:
        context = {
            "usernames": ", ".join(user.get_username() for user in existing),
            "login_url": request.build_absolute_uri(reverse("login")),
            "reset_url": request.build_absolute_uri(reverse("password_reset")),
        }
        _send(existing[0].email, "accounts/signup_exists", context)
        return
    token = make_token(username, email, next_path)
    context = {
        "username": username,
        "url": request.build_absolute_uri(reverse("signup_confirm", args=[token])),
        "hours": settings.SIGNUP_LINK_HOURS,
    }
    _send(email, "accounts/signup_confirm", context)


def _send(address: str, template: str, context: dict[str, Any]) -> None:
    if not account_email_allowed(address):
        return
    subject = render_to_string(f"{template}_subject.txt", context).strip()
    try:
        send_mail(subject, render_to_string(f"{template}_email.txt", context), None, [address])
    except Exception as exc:  # the page must answer the same; the person can sign up again
        log.warning("sign-up email not sent: %s", type(exc).__name__)


def read(token: str) -> SignupLink:
    """The sign-up a link confirms; SignupLinkProblem when it is forged, expired or used."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.SIGNUP_LINK_HOURS * 3600)
    except signing.SignatureExpired:
        raise SignupLinkProblem("expired") from None
    except (signing.BadSignature, ValueError):
        raise SignupLinkProblem("unknown") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("u", "e", "n")):
        raise SignupLinkProblem("unknown")
    link = SignupLink(username=data["u"], email=data["e"], next=data["n"])
    if accounts_with(link.email).exists():
        raise SignupLinkProblem("used")
    return link


def create_account(link: SignupLink, form: Any) -> Any:
    """Save the confirmation form's account for the link's address, unless the address got an
    account since the link was read."""
    with transaction.atomic():
        if accounts_with(link.email).exists():
            raise SignupLinkProblem("used")
        return form.save()

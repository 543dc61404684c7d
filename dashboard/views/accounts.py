"""Sign-up (confirmed by email: dashboard.signup), log-in (Django's view plus invitations) and
accepting an invitation.

An invitation opened while logged out is remembered in the session (by the SHA-256 of its
token, never the token). Right after the person confirms a sign-up or logs in, in that browser,
it is accepted only if the account's email address is the one the invitation was sent to
(case-insensitive); otherwise nothing is accepted and the person lands on the invitation page
(its log-in and sign-up links carry it as `next`), which says whom it was for and asks for a
POST to accept it. Whoever used the browser before (or sent its link) cannot push a site into
the next account signed in there.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import get_user_model, login
from django.contrib.auth import views as auth_views
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme

from dashboard import signup as signup_flow
from dashboard.access import role_for
from dashboard.forms import ConfirmSignupForm, SignupForm
from dashboard.models import Invitation, Role
from dashboard.site_services import InvitationProblem, accept_invitation, find_invitation, hash_token
from dashboard.views.sites import site_home_url

PENDING_INVITATION = "pending_invitation"  # session key: SHA-256 of the invitation token
_STATUS = {"unknown": 404, "expired": 410, "used": 410}


def _safe_next(request: HttpRequest) -> str | None:
    return _allowed(request, request.POST.get("next") or request.GET.get("next"))


def _allowed(request: HttpRequest, target: str | None) -> str | None:
    if target and url_has_allowed_host_and_scheme(
        target, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return target
    return None


def _pending_invitation(request: HttpRequest) -> Invitation | None:
    token_hash = request.session.get(PENDING_INVITATION)
    if not token_hash:
        return None
    try:
        return find_invitation(token_hash=token_hash)
    except InvitationProblem:
        request.session.pop(PENDING_INVITATION, None)
        return None


def _announce(request: HttpRequest, invitation: Invitation, outcome: str) -> None:
    site = invitation.site
    label = site.name or site.domain
    if outcome == "joined":
        messages.success(request, f"You joined {label} ({Role(invitation.role).label.lower()}).")
    elif outcome == "already_member":
        messages.info(request, f"You are already a teammate on {label}; your role did not change.")
    else:
        messages.info(request, f"You already own {label}.")


def is_for(invitation: Invitation, user: Any) -> bool:
    """Was the invitation sent to this account's email address? (Case-insensitive; no casefold:
    `ß` and `ss` are different mailboxes.)"""
    email = (getattr(user, "email", "") or "").strip().lower()
    return bool(email) and email == invitation.email.strip().lower()


def accept_pending_invitation(request: HttpRequest) -> str | None:
    """After sign-up or log-in: accept the invitation opened before, if it was sent to this
    account's address; where to go next (None: wherever the page would go anyway)."""
    token_hash = request.session.pop(PENDING_INVITATION, None)
    if not token_hash:
        return None
    try:
        invitation = find_invitation(token_hash=token_hash)
        if not is_for(invitation, request.user):
            # Not accepted: the invitation page (the `next` of its log-in and sign-up links) says
            # whom it was for and asks to confirm. Without that page, say how to get there.
            if not _is_invitation_page(_safe_next(request)):
                messages.info(  # names neither the site nor the address: the browser may be shared
                    request,
                    "An invitation opened in this browser was sent to another email address than your "
                    "account's, so it was not accepted. To accept it with this account, open its link again.",
                )
            return None
        outcome = accept_invitation(invitation, request.user)
    except InvitationProblem as problem:
        messages.error(request, _problem_text(problem.reason))
        return None
    _announce(request, invitation, outcome)
    return site_home_url(invitation.site)


def _is_invitation_page(target: str | None) -> bool:
    if not target:
        return False
    try:
        return resolve(urlsplit(target).path).url_name == "invitation_accept"
    except Resolver404:
        return False


def _problem_text(reason: str) -> str:
    if reason == "expired":
        return "This invitation has expired. Ask for a new one."
    if reason == "used":
        return "This invitation has already been used."
    return "This invitation link is not valid. Check that you copied all of it, or ask for a new one."


class LoginView(auth_views.LoginView):
    template_name = "accounts/login.html"
    redirect_authenticated_user = True

    def get_context_data(self, **kwargs: Any) -> dict[str, Any]:
        context = super().get_context_data(**kwargs)
        context["pending_invitation"] = _pending_invitation(self.request)
        return context

    def form_valid(self, form: Any) -> HttpResponse:
        response = super().form_valid(form)
        target = accept_pending_invitation(self.request)
        return redirect(target) if target else response


def signup(request: HttpRequest) -> HttpResponse:
    """Step one: a username and an address; the answer is "check your inbox" whether or not the
    address has an account (dashboard.signup says what is sent)."""
    if request.user.is_authenticated:
        return redirect("home")
    pending = _pending_invitation(request)
    if request.method == "POST":
        form = SignupForm(request.POST)
        if form.is_valid():
            signup_flow.start(
                request,
                username=form.cleaned_data["username"],
                email=form.cleaned_data["email"],
                next_path=_safe_next(request) or "",
            )
            return redirect("signup_done")
    else:
        form = SignupForm(initial={"email": pending.email} if pending else None)
    return render(
        request,
        "accounts/signup.html",
        {"form": form, "pending_invitation": pending, "next": _safe_next(request) or ""},
    )


def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/signup_done.html", {"hours": settings.SIGNUP_LINK_HOURS})


def signup_confirm(request: HttpRequest, token: str) -> HttpResponse:
    """Step two, from the emailed link. GET shows the form and changes nothing (mail scanners open
    links); POST creates the account, signs the person in and, as sign-up always did, accepts an
    invitation opened in this browser if it was sent to this address."""
    try:
        link = signup_flow.read(token)
        if request.method == "POST":
            form = ConfirmSignupForm(request.POST, email=link.email)
            if form.is_valid():
                user = signup_flow.create_account(link, form)
                login(request, user)
                messages.success(request, f"Welcome, {user.get_username()}! Your account is ready.")
                target = accept_pending_invitation(request) or _safe_next(request) or reverse("site_new")
                return redirect(target)
        else:
            taken = get_user_model().objects.filter(username__iexact=link.username).exists()
            form = ConfirmSignupForm(initial={"username": "" if taken else link.username}, email=link.email)
            if taken:
                form.fields["username"].help_text = "The username you chose was taken meanwhile: choose another."
    except signup_flow.SignupLinkProblem as problem:
        return render(
            request,
            "accounts/signup_link_invalid.html",
            {"reason": problem.reason, "hours": settings.SIGNUP_LINK_HOURS},
            status=_STATUS[problem.reason],
        )
    return render(
        request,
        "accounts/signup_confirm.html",
        {"form": form, "email": link.email, "next": _allowed(request, link.next) or ""},
    )


def _invalid_invitation(request: HttpRequest, problem: InvitationProblem) -> HttpResponse:
    """The friendly page for an unknown, expired or used invitation, with its 4xx status."""
    return render(
        request,
        "accounts/invitation_invalid.html",
        {"reason": problem.reason, "text": _problem_text(problem.reason)},
        status=_STATUS[problem.reason],
    )


def invitation_accept(request: HttpRequest, token: str) -> HttpResponse:
    """GET: what the invitation is, and how to accept it. POST (signed in): accept it."""
    try:
        invitation = find_invitation(token=token)
    except InvitationProblem as problem:
        return _invalid_invitation(request, problem)
    if not request.user.is_authenticated:
        request.session[PENDING_INVITATION] = hash_token(token)
        return render(
            request,
            "accounts/invitation.html",
            {"invitation": invitation, "role_label": _label(invitation), "next": request.path},
        )
    if request.method == "POST":
        try:
            outcome = accept_invitation(invitation, request.user)
        except InvitationProblem as problem:
            return _invalid_invitation(request, problem)
        request.session.pop(PENDING_INVITATION, None)
        _announce(request, invitation, outcome)
        return redirect(site_home_url(invitation.site))
    return render(
        request,
        "accounts/invitation.html",
        {
            "invitation": invitation,
            "role_label": _label(invitation),
            "current_role": role_for(request.user, invitation.site),
            "email_differs": not is_for(invitation, request.user),
        },
    )


def _label(invitation: Invitation) -> str:
    return Role(invitation.role).label

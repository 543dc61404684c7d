"""The sites list, adding a site, its snippet, and its settings: general, shared links,
teammates, email reports, API keys, deleting.

Who gets what (dashboard.access decides the role):

- anonymous: every page here redirects to the login page (the same redirect whether or not
  the site exists, so it tells nothing);
- outsider (signed in, no role on the site): 404 on every page and action of the site;
- viewer (read-only teammate): the snippet page and the settings page with the sections that
  are theirs (their email reports, their API keys, leaving the site); an admin action answers a
  friendly 403 page;
- admin: everything but deleting the site (403 page);
- owner: everything.

Every change is a POST with a CSRF token. Views stay thin: site_services does the work.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db.models import Q
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import NoReverseMatch, reverse
from django.utils.cache import patch_cache_control
from django.views.decorators.http import require_POST

from dashboard import selectors, site_services
from dashboard.access import ADMIN, OWNER, VIEWER, get_site_or_404, sites_for
from dashboard.api_keys import apikey_create, apikey_revoke
from dashboard.forms import (
    ApiKeyForm,
    DeleteSiteForm,
    InviteForm,
    ReportsForm,
    RoleForm,
    SharedLinkForm,
    SiteCreateForm,
    SiteSettingsForm,
)
from dashboard.models import ApiKey, Invitation, Membership, Role, SharedLink
from dashboard.selectors.periods import parse_period
from sites.models import Site

RANK = {VIEWER: 1, ADMIN: 2, OWNER: 3}
ROLE_LABELS = {OWNER: "Owner", ADMIN: Role.ADMIN.label, VIEWER: Role.VIEWER.label}
SITES_PER_PAGE = 24
SPARKLINE_DAYS = "30d"


# -- helpers ----------------------------------------------------------------------------------


def site_home_url(site: Site) -> str:
    """The site's dashboard (built by the stats pages), or its settings if that page is absent."""
    try:
        return reverse("site_dashboard", args=[site.public_id])
    except NoReverseMatch:
        return reverse("site_settings", args=[site.public_id])


def share_url(request: HttpRequest, token: str) -> str:
    try:
        path = reverse("share_dashboard", args=[token])
    except NoReverseMatch:
        path = f"/share/{token}/"
    return request.build_absolute_uri(path)


def forbidden(request: HttpRequest, site: Site, role: str, needed: str) -> HttpResponse:
    """The friendly 403 page for a teammate whose role is not enough (outsiders get 404)."""
    return render(
        request,
        "dashboard/sites/forbidden.html",
        {"site": site, "role_label": ROLE_LABELS[role], "needed": ROLE_LABELS[needed]},
        status=403,
    )


def site_view(needed: str) -> Callable[..., Callable[..., HttpResponse]]:
    """Resolve <public_id> to (site, role): login required, 404 for outsiders, a 403 page for a
    teammate below `needed`. The view gets (request, site, role, ...)."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        @login_required
        @wraps(view)
        def wrapper(request: HttpRequest, public_id: str, *args: Any, **kwargs: Any) -> HttpResponse:
            site, role = get_site_or_404(request.user, public_id, VIEWER)
            if RANK[role] < RANK[needed]:
                return forbidden(request, site, role, needed)
            return view(request, site, role, *args, **kwargs)

        return wrapper

    return decorate


def _settings_url(site: Site, section: str = "") -> str:
    return reverse("site_settings", args=[site.public_id]) + (f"#{section}" if section else "")


# -- the list ---------------------------------------------------------------------------------


@login_required
def site_list(request: HttpRequest) -> HttpResponse:
    """My sites (owned and teammate), each with today's visitors and a 30-day sparkline.
    One rollup query per site shown (paginated), plus a constant few."""
    sites = sites_for(request.user).order_by("name", "domain")
    query = request.GET.get("q", "").strip()[:100]
    if query:
        sites = sites.filter(Q(domain__icontains=query) | Q(name__icontains=query))
    page = Paginator(sites, SITES_PER_PAGE).get_page(request.GET.get("page"))
    page_sites = list(page.object_list)
    member_roles = dict(
        Membership.objects.filter(user=request.user, site__in=[s.pk for s in page_sites]).values_list("site_id", "role")
    )
    rows = []
    for site in page_sites:
        period = parse_period(SPARKLINE_DAYS, None, site.tz)
        series = selectors.timeseries(site, period, ["visitors"], interval="date")
        values = [point["visitors"] for point in series]
        role = OWNER if site.owner_id == request.user.pk else member_roles.get(site.pk, VIEWER)
        rows.append(
            {
                "site": site,
                "today": values[-1] if values else 0,
                "total": sum(values),
                "values": values,
                "spark_label": f"Visitors per day over the last 30 days, {sum(values)} in all",
                "first_day": period.start,
                "role": role,
                "role_label": ROLE_LABELS[role],
                "can_admin": RANK[role] >= RANK[ADMIN],
            }
        )
    return render(
        request,
        "dashboard/sites/list.html",
        {"rows": rows, "page": page, "query": query, "has_any": bool(rows) or bool(query)},
    )


# -- add a site, its snippet ------------------------------------------------------------------


@login_required
def site_new(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = SiteCreateForm(request.POST)
        if form.is_valid():
            try:
                site = site_services.create_site(
                    owner=request.user,
                    domain=form.cleaned_data["domain"],
                    name=form.cleaned_data["name"],
                    timezone_name=form.cleaned_data["timezone"],
                )
            except ValidationError as exc:
                _add_errors(form, exc)
            else:
                messages.success(request, f"{site.domain} is added. Paste the snippet below into your site.")
                return redirect("site_snippet", public_id=site.public_id)
    else:
        form = SiteCreateForm()
    first = not sites_for(request.user).exists()
    return render(request, "dashboard/sites/new.html", {"form": form, "first": first})


def _add_errors(form: Any, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


def snippet_for(request: HttpRequest, site: Site) -> str:
    script = request.build_absolute_uri(reverse("script"))
    return f'<script defer src="{script}" data-site="{site.public_id}"></script>'


@site_view(VIEWER)
def site_snippet(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    return render(
        request,
        "dashboard/sites/snippet.html",
        {
            "site": site,
            "role": role,
            "can_admin": RANK[role] >= RANK[ADMIN],
            "snippet": snippet_for(request, site),
            "receiving": selectors.has_data(site),
            "dashboard_url": site_home_url(site),
        },
    )


# -- settings ---------------------------------------------------------------------------------


def _settings_page(request: HttpRequest, site: Site, role: str, *, status: int = 200, **overrides: Any) -> HttpResponse:
    can_admin = RANK[role] >= RANK[ADMIN]
    context: dict[str, Any] = {
        "site": site,
        "role": role,
        "role_label": ROLE_LABELS[role],
        "can_admin": can_admin,
        "is_owner": role == OWNER,
        "reports_form": ReportsForm(
            initial={"frequencies": sorted(site_services.report_frequencies(site, request.user))}
        ),
        "apikey_form": ApiKeyForm(),
        "api_keys": list(ApiKey.objects.filter(user=request.user, revoked_at__isnull=True)),
        "dashboard_url": site_home_url(site),
        "has_email": bool(request.user.email),
    }
    if can_admin:
        team = site_services.teammates(site)
        context.update(
            settings_form=SiteSettingsForm(instance=copy.copy(site)),
            share_form=SharedLinkForm(),
            invite_form=InviteForm(),
            shared_links=[
                {"link": link, "url": share_url(request, link.token)}
                for link in site.shared_links.filter(revoked_at__isnull=True)
            ],
            team=team,
            role_choices=Role.choices,
        )
    context.update(overrides)
    if context.get("new_key"):
        base = request.build_absolute_uri("/api/v1/stats/aggregate").rstrip("/")
        context["curl"] = (
            f'curl -H "Authorization: Bearer {context["new_key"]}" \\\n'
            f'  "{base}?site_id={site.domain}&period=30d&metrics=visitors,pageviews"'
        )
    return render(request, "dashboard/sites/settings.html", context, status=status)


@site_view(VIEWER)
def site_settings(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    """GET: every section the role may see. POST: the general section (name, time zone, hostnames)."""
    if request.method != "POST":
        return _settings_page(request, site, role)
    if RANK[role] < RANK[ADMIN]:
        return forbidden(request, site, role, ADMIN)
    form = SiteSettingsForm(request.POST, instance=copy.copy(site))
    if form.is_valid():
        try:
            site_services.update_site(
                site,
                name=form.cleaned_data["name"],
                timezone_name=form.cleaned_data["timezone"],
                allowed_hostnames=form.cleaned_data["allowed_hostnames"],
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, "Settings saved.")
            return redirect(_settings_url(site, "general"))
    return _settings_page(request, site, role, settings_form=form)


@site_view(OWNER)
def site_delete(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    if request.method == "POST":
        form = DeleteSiteForm(request.POST, site=site)
        if form.is_valid():
            domain = site.domain
            site_services.delete_site(site)
            messages.success(request, f"{domain} and all its stats are deleted.")
            return redirect("home")
    else:
        form = DeleteSiteForm(site=site)
    return render(request, "dashboard/sites/delete.html", {"site": site, "form": form})


# -- shared links -----------------------------------------------------------------------------


@require_POST
@site_view(ADMIN)
def shared_link_create(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    form = SharedLinkForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, site, role, share_form=form)
    link = site_services.create_shared_link(
        site=site, name=form.cleaned_data["name"], password=form.cleaned_data["password"]
    )
    protected = " (password protected)" if link.has_password else ""
    messages.success(request, f"Shared link “{link.name}” created{protected}. Anyone with it can see the stats.")
    return redirect(_settings_url(site, "shared-links"))


@require_POST
@site_view(ADMIN)
def shared_link_revoke(request: HttpRequest, site: Site, role: str, link_id: int) -> HttpResponse:
    link = get_object_or_404(SharedLink, pk=link_id, site=site)
    site_services.revoke_shared_link(link)
    messages.success(request, f"Shared link “{link.name}” revoked: it no longer opens the dashboard.")
    return redirect(_settings_url(site, "shared-links"))


# -- teammates --------------------------------------------------------------------------------


@require_POST
@site_view(ADMIN)
def teammate_invite(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    form = InviteForm(request.POST)
    if form.is_valid():
        try:
            invitation = site_services.invite(
                site=site,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.user,
                accept_url=lambda token: request.build_absolute_uri(reverse("invitation_accept", args=[token])),
            )
        except ValidationError as exc:
            _add_errors(form, exc)
        else:
            messages.success(request, f"Invitation sent to {invitation.email}.")
            return redirect(_settings_url(site, "teammates"))
    return _settings_page(request, site, role, invite_form=form)


@require_POST
@site_view(ADMIN)
def teammate_role(request: HttpRequest, site: Site, role: str, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id, site=site)
    form = RoleForm(request.POST)
    if membership.user_id == request.user.pk:
        messages.error(request, "You cannot change your own role. Ask the owner or another admin.")
    elif not form.is_valid():
        messages.error(request, "Choose a role.")
    else:
        site_services.change_role(membership, form.cleaned_data["role"])
        messages.success(request, f"{membership.user.get_username()} is now {membership.get_role_display().lower()}.")
    return redirect(_settings_url(site, "teammates"))


@require_POST
@site_view(ADMIN)
def teammate_remove(request: HttpRequest, site: Site, role: str, membership_id: int) -> HttpResponse:
    membership = get_object_or_404(Membership.objects.select_related("user"), pk=membership_id, site=site)
    if membership.user_id == request.user.pk:
        messages.error(request, "To leave the site, use “Leave this site” below.")
        return redirect(_settings_url(site, "teammates"))
    site_services.remove_member(membership)
    messages.success(request, f"{membership.user.get_username()} no longer has access to {site.domain}.")
    return redirect(_settings_url(site, "teammates"))


@require_POST
@site_view(ADMIN)
def invitation_cancel(request: HttpRequest, site: Site, role: str, invitation_id: int) -> HttpResponse:
    invitation = get_object_or_404(Invitation, pk=invitation_id, site=site, accepted_at__isnull=True)
    site_services.cancel_invitation(invitation)
    messages.success(request, f"Invitation to {invitation.email} cancelled.")
    return redirect(_settings_url(site, "teammates"))


@require_POST
@site_view(VIEWER)
def site_leave(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    if role == OWNER:
        messages.error(request, "You own this site: delete it instead, or keep it.")
        return redirect(_settings_url(site, "danger"))
    membership = Membership.objects.filter(site=site, user=request.user).first()
    if membership is None:  # removed in the meantime
        raise Http404("No such site.")
    site_services.remove_member(membership)
    messages.success(request, f"You left {site.name or site.domain}.")
    return redirect("home")


# -- email reports ----------------------------------------------------------------------------


@require_POST
@site_view(VIEWER)
def site_reports(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    form = ReportsForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, site, role, reports_form=form)
    chosen = site_services.set_report_subscriptions(
        site=site, user=request.user, frequencies=form.cleaned_data["frequencies"]
    )
    if chosen:
        names = " and ".join(sorted(chosen, reverse=True))  # "weekly and monthly"
        messages.success(request, f"You will get {names} email reports of {site.domain}.")
    else:
        messages.success(request, f"You will get no email reports of {site.domain}.")
    return redirect(_settings_url(site, "reports"))


# -- API keys (the user's; they read every site the user can view) ---------------------------


@require_POST
@site_view(VIEWER)
def api_key_create(request: HttpRequest, site: Site, role: str) -> HttpResponse:
    """The new key is shown in this very response and never again (it is not stored anywhere)."""
    form = ApiKeyForm(request.POST)
    if not form.is_valid():
        return _settings_page(request, site, role, apikey_form=form)
    key, plaintext = apikey_create(user=request.user, name=form.cleaned_data["name"])
    messages.success(request, f"API key “{key.name}” created. Copy it now: it will not be shown again.")
    response = _settings_page(request, site, role, new_key=plaintext, new_key_name=key.name)
    patch_cache_control(response, no_store=True)  # the secret must not sit in a cache
    return response


@require_POST
@site_view(VIEWER)
def api_key_revoke(request: HttpRequest, site: Site, role: str, key_id: int) -> HttpResponse:
    key = get_object_or_404(ApiKey, pk=key_id, user=request.user)
    apikey_revoke(key=key)
    messages.success(request, f"API key “{key.name}” revoked.")
    return redirect(_settings_url(site, "api-keys"))

from __future__ import annotations

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from dashboard.api_keys import apikey_revoke
from dashboard.models import ApiKey, Invitation, Membership, ReportSubscription, SharedLink
from dashboard.site_services import revoke_shared_link
from sites.admin import SiteAdmin
from sites.models import Site


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    autocomplete_fields = ["user"]


# sites/ registers the Site admin (the import above has run it) and knows nothing of teammates:
# the same admin, with the site's teammates listed on its page.
admin.site.unregister(Site)


@admin.register(Site)
class SiteWithTeammatesAdmin(SiteAdmin):
    inlines = [MembershipInline]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Keys are created with `createapikey` or on a site's settings page (the secret is shown
    once); here they are listed and revoked."""

    list_display = ["name", "prefix", "user", "created_at", "last_used_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "prefix", "user__username"]
    readonly_fields = ["user", "name", "prefix", "created_at", "last_used_at", "revoked_at"]
    exclude = ["key_hash"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke(self, request: HttpRequest, queryset: QuerySet[ApiKey]) -> None:
        for key in queryset:
            apikey_revoke(key=key)
        self.message_user(request, f"Revoked {queryset.count()} key(s).", messages.SUCCESS)


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["site", "user", "role", "created_at"]
    list_filter = ["role"]
    search_fields = ["site__domain", "user__username", "user__email"]
    autocomplete_fields = ["site", "user"]


@admin.register(Invitation)
class InvitationAdmin(admin.ModelAdmin):
    """Invitations are sent from a site's settings page (the token exists only in the email)."""

    list_display = ["email", "site", "role", "invited_by", "created_at", "expires_at", "accepted_at"]
    list_filter = ["role", ("accepted_at", admin.EmptyFieldListFilter)]
    search_fields = ["email", "site__domain"]
    exclude = ["token_hash"]
    readonly_fields = ["site", "email", "role", "invited_by", "created_at", "expires_at", "accepted_at", "accepted_by"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(SharedLink)
class SharedLinkAdmin(admin.ModelAdmin):
    list_display = ["name", "site", "has_password", "created_at", "revoked_at"]
    list_filter = [("revoked_at", admin.EmptyFieldListFilter)]
    search_fields = ["name", "site__domain"]
    exclude = ["token", "password_hash"]
    readonly_fields = ["site", "name", "created_at", "revoked_at"]
    actions = ["revoke"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    @admin.display(boolean=True, description="Password")
    def has_password(self, link: SharedLink) -> bool:
        return link.has_password

    @admin.action(description="Revoke selected links")
    def revoke(self, request: HttpRequest, queryset: QuerySet[SharedLink]) -> None:
        for link in queryset:
            revoke_shared_link(link)
        self.message_user(request, f"Revoked {queryset.count()} link(s).", messages.SUCCESS)


@admin.register(ReportSubscription)
class ReportSubscriptionAdmin(admin.ModelAdmin):
    list_display = ["site", "user", "frequency", "last_sent_at", "last_period_end"]
    list_filter = ["frequency"]
    search_fields = ["site__domain", "user__username", "user__email"]
    autocomplete_fields = ["site", "user"]

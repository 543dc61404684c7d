from __future__ import annotations

from django.contrib import admin

from sites.models import Site


@admin.register(Site)
class SiteAdmin(admin.ModelAdmin):
    list_display = ["domain", "name", "public_id", "timezone", "owner", "created_at"]
    search_fields = ["domain", "name", "public_id"]
    readonly_fields = ["public_id", "created_at"]

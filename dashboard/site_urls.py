"""The sites list, adding a site and everything on a site's settings page. The site's dashboard
(/sites/<id>/), exports, realtime and /share/ live in stats_urls."""

from __future__ import annotations

from django.urls import path

from dashboard.views import accounts, sites

urlpatterns = [
    path("", sites.site_list, name="home"),
    path("sites/new/", sites.site_new, name="site_new"),
    path("sites/<str:public_id>/snippet/", sites.site_snippet, name="site_snippet"),
    path("sites/<str:public_id>/settings/", sites.site_settings, name="site_settings"),
    path("sites/<str:public_id>/settings/delete/", sites.site_delete, name="site_delete"),
    path("sites/<str:public_id>/settings/reports/", sites.site_reports, name="site_reports"),
    path("sites/<str:public_id>/settings/leave/", sites.site_leave, name="site_leave"),
    path("sites/<str:public_id>/settings/shared-links/", sites.shared_link_create, name="shared_link_create"),
    path(
        "sites/<str:public_id>/settings/shared-links/<int:link_id>/revoke/",
        sites.shared_link_revoke,
        name="shared_link_revoke",
    ),
    path("sites/<str:public_id>/settings/teammates/invite/", sites.teammate_invite, name="teammate_invite"),
    path(
        "sites/<str:public_id>/settings/teammates/<int:membership_id>/role/",
        sites.teammate_role,
        name="teammate_role",
    ),
    path(
        "sites/<str:public_id>/settings/teammates/<int:membership_id>/remove/",
        sites.teammate_remove,
        name="teammate_remove",
    ),
    path(
        "sites/<str:public_id>/settings/invitations/<int:invitation_id>/cancel/",
        sites.invitation_cancel,
        name="invitation_cancel",
    ),
    path("sites/<str:public_id>/settings/api-keys/", sites.api_key_create, name="api_key_create"),
    path(
        "sites/<str:public_id>/settings/api-keys/<int:key_id>/revoke/",
        sites.api_key_revoke,
        name="api_key_revoke",
    ),
    path("invitations/<str:token>/", accounts.invitation_accept, name="invitation_accept"),
]

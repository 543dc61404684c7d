# The Site model moves here from dashboard. Its table stays as it is (dashboard_site): this
# migration only tells Django's migration state where the model now lives, and moves the
# `dashboard | site` content type so that permissions and admin log entries follow it.

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

import sites.models


def _move_content_type(apps, schema_editor, old_label: str, new_label: str) -> None:
    ContentType = apps.get_model("contenttypes", "ContentType")
    types = ContentType.objects.using(schema_editor.connection.alias)
    if types.filter(app_label=new_label, model="site").exists():
        # Both exist only if something created the new one by hand; the old row is then stale
        # and `remove_stale_contenttypes` asks what to do with it, as for a renamed model.
        return
    types.filter(app_label=old_label, model="site").update(app_label=new_label)
    ContentType.objects.clear_cache()


def content_type_to_sites(apps, schema_editor):
    _move_content_type(apps, schema_editor, "dashboard", "sites")


def content_type_to_dashboard(apps, schema_editor):
    _move_content_type(apps, schema_editor, "sites", "dashboard")


class Migration(migrations.Migration):
    initial = True

    dependencies = [
        ("dashboard", "0003_teams_shares_reports"),  # the table was created, and last changed, there
        ("contenttypes", "0002_remove_content_type_name"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Site",
                    fields=[
                        (
                            "id",
                            models.BigAutoField(
                                auto_created=True, primary_key=True, serialize=False, verbose_name="ID"
                            ),
                        ),
                        (
                            "public_id",
                            models.CharField(
                                default=sites.models.new_public_id, editable=False, max_length=8, unique=True
                            ),
                        ),
                        (
                            "domain",
                            models.CharField(help_text="e.g. example.com, without www.", max_length=253, unique=True),
                        ),
                        ("name", models.CharField(blank=True, max_length=200)),
                        (
                            "timezone",
                            models.CharField(default="UTC", max_length=64, validators=[sites.models.validate_timezone]),
                        ),
                        (
                            "allowed_hostnames",
                            models.TextField(
                                blank=True,
                                help_text="Extra hostnames allowed to send hits, one per line. The domain and its subdomains are always allowed. '*' allows any.",
                            ),
                        ),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        (
                            "owner",
                            models.ForeignKey(
                                blank=True,
                                null=True,
                                on_delete=django.db.models.deletion.SET_NULL,
                                related_name="owned_sites",
                                to=settings.AUTH_USER_MODEL,
                            ),
                        ),
                    ],
                    options={
                        "db_table": "dashboard_site",
                        "ordering": ["domain"],
                    },
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_type_to_sites, content_type_to_dashboard),
    ]

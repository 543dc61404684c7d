# Site moved to the sites app (same table, dashboard_site): the foreign keys to it are
# repointed, then the model leaves dashboard, in the migration state only. No table changes.

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("dashboard", "0003_teams_shares_reports"),
        ("sites", "0001_initial"),
        ("collector", "0004_site_moves_to_sites"),  # every key to dashboard.site is gone before it is
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                *[
                    migrations.AlterField(
                        model_name=model,
                        name="site",
                        field=models.ForeignKey(
                            on_delete=django.db.models.deletion.CASCADE, related_name=related_name, to="sites.site"
                        ),
                    )
                    for model, related_name in (
                        ("invitation", "invitations"),
                        ("membership", "memberships"),
                        ("reportsubscription", "report_subscriptions"),
                        ("sharedlink", "shared_links"),
                    )
                ],
                migrations.DeleteModel(name="Site"),
            ],
            database_operations=[],
        ),
    ]

# Site moved from dashboard to sites (same table): every foreign key to it is repointed in the
# migration state only. No table changes (a real AlterField would rebuild these tables on SQLite).

import django.db.models.deletion
from django.db import migrations, models


def _site_key() -> models.ForeignKey:
    return models.ForeignKey(
        db_constraint=False, on_delete=django.db.models.deletion.CASCADE, related_name="+", to="sites.site"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0003_backfill_monthly_breakdown"),
        ("sites", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name=model, name="site", field=_site_key())
                for model in ("dailybreakdown", "event", "hourlytotal", "monthlybreakdown", "visit")
            ],
            database_operations=[],
        ),
    ]

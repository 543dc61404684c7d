from django.db import migrations


def backfill(apps, schema_editor):
    from collector.rollups import backfill_monthly

    backfill_monthly(schema_editor.connection)


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0002_monthly_breakdown"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]

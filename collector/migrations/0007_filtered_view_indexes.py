"""Indexes of the filtered views (dashboard/selectors/backends/raw.py reads through them):

- events: (site, ts) becomes a covering index of what a filtered view counts (name, visitor,
  visit) and its most used filter (the visit's source): such statements read the index alone;
- events: (site, path prefix, ts), so a page filter reads that page's events only. A prefix on
  MySQL/MariaDB (a 2,000-character path does not fit an index key there): Django's indexes
  cannot say so, hence SQL of this migration's own, outside the model state;
- visits: (site, started) with the short attributes a filter names (source, country, device,
  browser, OS), which never change after the visit's first hit, so a filtered view checks them in
  the index before it reads a row, and a visit's later hits never move its entry.

New indexes are built before the old ones go, so reads always have one.
"""

from django.db import migrations, models

PATH_INDEX = "event_site_path_ts"
PATH_PREFIX = 191  # characters of the path in the MySQL index key


def add_path_index(apps, schema_editor):
    qn = schema_editor.connection.ops.quote_name
    path = f"{qn('path')}({PATH_PREFIX})" if schema_editor.connection.vendor == "mysql" else qn("path")
    schema_editor.execute(
        f"CREATE INDEX {qn(PATH_INDEX)} ON {qn('collector_event')} ({qn('site_id')}, {path}, {qn('ts')})"
    )


def drop_path_index(apps, schema_editor):
    qn = schema_editor.connection.ops.quote_name
    if schema_editor.connection.vendor == "mysql":
        schema_editor.execute(f"DROP INDEX {qn(PATH_INDEX)} ON {qn('collector_event')}")
    else:
        schema_editor.execute(f"DROP INDEX {qn(PATH_INDEX)}")


class Migration(migrations.Migration):
    dependencies = [
        ("collector", "0006_backfill_event_visit_attributes"),
        ("sites", "0001_initial"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="event",
            index=models.Index(
                fields=["site", "ts", "name", "visitor_id", "visit_key", "visit_source"], name="event_site_ts_cover"
            ),
        ),
        migrations.RemoveIndex(model_name="event", name="event_site_ts"),
        migrations.RunPython(add_path_index, drop_path_index, atomic=False),  # DDL: no transaction on MySQL
        migrations.AddIndex(
            model_name="visit",
            index=models.Index(
                fields=["site", "started", "referrer_source", "country", "device", "browser", "os"],
                name="visit_site_started_attrs",
            ),
        ),
        migrations.RemoveIndex(model_name="visit", name="visit_site_started"),
    ]

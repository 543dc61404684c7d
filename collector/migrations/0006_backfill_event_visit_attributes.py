"""Copy each stored event's visit attributes onto it (the columns 0005 adds; the worker fills
them for new events): entry page, source, referrer, UTM, and browser, OS, device and country
set to the visit's. Events are matched to their Visit by (site_id, visit_key), the unique key.

One UPDATE joined to the visits per range of CHUNK event ids, each committed on its own (the
migration is not atomic), so a large table is not one huge transaction, and running it again
sets the same values. Fine for small installs: ~1M events take about a minute on MariaDB (the
join is a unique-key lookup per event); a large table is better migrated in a quiet hour, and
the new columns read "" until it is done (the stats of filtered views then miss those events).
"""

from django.db import migrations

CHUNK = 50_000
# Event column <- Visit column
COPIED = (
    ("entry_path", "entry_path"),
    ("visit_source", "referrer_source"),
    ("visit_referrer", "referrer"),
    ("visit_utm_source", "utm_source"),
    ("visit_utm_medium", "utm_medium"),
    ("visit_utm_campaign", "utm_campaign"),
    ("browser", "browser"),
    ("os", "os"),
    ("device", "device"),
    ("country", "country"),
)


def backfill(apps, schema_editor):
    conn = schema_editor.connection
    qn = conn.ops.quote_name
    with conn.cursor() as cursor:
        cursor.execute(f"SELECT MIN({qn('id')}), MAX({qn('id')}) FROM {qn('collector_event')}")
        low, high = cursor.fetchone()
        if low is None:
            return
        match = f"v.{qn('site_id')} = e.{qn('site_id')} AND v.{qn('visit_key')} = e.{qn('visit_key')}"
        if conn.vendor == "mysql":
            # MySQL / MariaDB: a multi-table UPDATE (no UPDATE ... FROM).
            sets = ", ".join(f"e.{qn(to)} = v.{qn(src)}" for to, src in COPIED)
            sql = (
                f"UPDATE {qn('collector_event')} AS e JOIN {qn('collector_visit')} AS v ON {match} "
                f"SET {sets} WHERE e.{qn('id')} >= %s AND e.{qn('id')} < %s"
            )
        else:
            # SQLite (3.33+) and PostgreSQL: UPDATE ... FROM.
            sets = ", ".join(f"{qn(to)} = v.{qn(src)}" for to, src in COPIED)
            sql = (
                f"UPDATE {qn('collector_event')} AS e SET {sets} FROM {qn('collector_visit')} AS v "
                f"WHERE {match} AND e.{qn('id')} >= %s AND e.{qn('id')} < %s"
            )
        for start in range(low, high + 1, CHUNK):
            cursor.execute(sql, [start, start + CHUNK])  # autocommit: each chunk commits


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("collector", "0005_event_visit_attributes"),
    ]

    operations = [
        migrations.RunPython(backfill, migrations.RunPython.noop, elidable=True),
    ]

"""The database cache's table (rate-limit counters and other shared caches).

In a low app so that it runs early in a fresh migrate; the table is no model of this app.

Created here so that one ``manage.py migrate`` leaves a working install: with no ``CACHE_URL``
the cache is the database cache (see ``CACHES`` in governance/settings.py), and nobody has to
remember ``createcachetable``. It does nothing when the configured cache is Redis; switching to
the database cache later needs ``manage.py createcachetable`` once (docs/operations.md).
"""

from django.core.management import call_command
from django.db import migrations


def cache_tables_create(apps, schema_editor):
    # Creates the table of every database cache in CACHES (if missing) in the databases the
    # router allows it in (the main database, never the key store).
    call_command("createcachetable", database=schema_editor.connection.alias, verbosity=0)


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0008_unsealed_entries_index"),
    ]

    operations = [
        migrations.RunPython(cache_tables_create, migrations.RunPython.noop, elidable=True),
    ]

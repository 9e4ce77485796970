"""The database cache's table (rate-limit counters and other shared caches).

Created here so that one ``manage.py migrate`` leaves a working install: with no ``CACHE_URL``
the cache is the database cache (see ``CACHES`` in governance/settings.py), and nobody has to
remember ``createcachetable``. The default table is created whatever the cache is now, so that
leaving Redis for the database cache later needs nothing either. In a low app so that it runs early
in a fresh migrate; the table is no model of this app.
"""

from django.core.management import call_command
from django.core.management.commands.createcachetable import Command as CreateCacheTable
from django.db import migrations

DEFAULT_TABLE = "mamoru_cache"  # CACHES' default (governance/settings.py)


def cache_tables_create(apps, schema_editor):
    # In the databases the router allows it in (the main database, never the key store); nothing
    # when the table exists.
    alias = schema_editor.connection.alias
    command = CreateCacheTable()
    command.verbosity = 0
    command.create_table(alias, DEFAULT_TABLE, False)
    call_command("createcachetable", database=alias, verbosity=0)  # any other configured table


class Migration(migrations.Migration):

    dependencies = [
        ("audit", "0008_unsealed_entries_index"),
    ]

    operations = [
        migrations.RunPython(cache_tables_create, migrations.RunPython.noop, elidable=True),
    ]

"""Audit chain v2 (issue 11): every column sealed, partition chains, append-only rows.

Existing entries stay version 1 in partition 1 (``pseq = seq``); the head of partition 1 keeps
its place. On PostgreSQL a sequence gives the global order; on PostgreSQL, SQLite and MariaDB a
trigger refuses any UPDATE of a sealed row. The foreign keys no longer cascade into the log
(deleting a user or content type must not rewrite sealed rows).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

# Shared with tests (tests/audit_tamper.py), which lift the guard to play an attacker with DB access.
TRIGGER_SQL = {
    "postgresql": [
        """CREATE OR REPLACE FUNCTION audit_entry_append_only() RETURNS trigger AS $$
        BEGIN
            IF OLD.entry_hash <> '' THEN
                RAISE EXCEPTION 'audit entries are append-only (entry % is sealed)', OLD.id;
            END IF;
            RETURN NEW;
        END $$ LANGUAGE plpgsql""",
        """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_auditentry
        FOR EACH ROW EXECUTE FUNCTION audit_entry_append_only()""",
    ],
    "sqlite": [
        """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_auditentry
        WHEN OLD.entry_hash <> ''
        BEGIN SELECT RAISE(ABORT, 'audit entries are append-only'); END""",
    ],
    "mysql": [
        """CREATE TRIGGER audit_entry_append_only BEFORE UPDATE ON audit_auditentry FOR EACH ROW
        BEGIN
            IF OLD.entry_hash <> '' THEN
                SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'audit entries are append-only';
            END IF;
        END""",
    ],
}
DROP_SQL = {
    "postgresql": ["DROP TRIGGER IF EXISTS audit_entry_append_only ON audit_auditentry"],
    "sqlite": ["DROP TRIGGER IF EXISTS audit_entry_append_only"],
    "mysql": ["DROP TRIGGER IF EXISTS audit_entry_append_only"],
}


def append_only_create(apps, schema_editor):
    connection = schema_editor.connection
    if connection.alias != "default":
        return
    for sql in TRIGGER_SQL.get(connection.vendor, []):
        schema_editor.execute(sql, None)
    if connection.vendor == "postgresql":
        schema_editor.execute("CREATE SEQUENCE IF NOT EXISTS audit_auditentry_gseq")
        schema_editor.execute(
            "SELECT setval('audit_auditentry_gseq', COALESCE((SELECT MAX(seq) FROM audit_auditentry), 0) + 1, false)"
        )


def append_only_drop(apps, schema_editor):
    connection = schema_editor.connection
    if connection.alias != "default":
        return
    for sql in DROP_SQL.get(connection.vendor, []):
        schema_editor.execute(sql, None)
    if connection.vendor == "postgresql":
        schema_editor.execute("DROP SEQUENCE IF EXISTS audit_auditentry_gseq")


class Migration(migrations.Migration):

    dependencies = [
        ('audit', '0005_lean_indexes'),
        ('contenttypes', '0002_remove_content_type_name'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='auditentry',
            name='chain_version',
            field=models.PositiveSmallIntegerField(default=1, editable=False),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='chain_version',
            field=models.PositiveSmallIntegerField(default=2, editable=False),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='partition',
            field=models.PositiveSmallIntegerField(default=1, editable=False),
        ),
        migrations.AddField(
            model_name='auditentry',
            name='pseq',
            field=models.BigIntegerField(editable=False, null=True),
        ),
        migrations.AddField(
            model_name='chainhead',
            name='last_seq',
            field=models.BigIntegerField(default=0),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='actor',
            field=models.ForeignKey(blank=True, db_constraint=False, db_index=False, null=True, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to=settings.AUTH_USER_MODEL, verbose_name='actor'),
        ),
        migrations.AlterField(
            model_name='auditentry',
            name='content_type',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+', to='contenttypes.contenttype', verbose_name='content type'),
        ),
        migrations.RunSQL(
            "UPDATE audit_auditentry SET pseq = seq WHERE seq IS NOT NULL",
            migrations.RunSQL.noop,
        ),
        migrations.RunSQL("UPDATE audit_chainhead SET last_seq = seq", migrations.RunSQL.noop),
        migrations.AddConstraint(
            model_name='auditentry',
            constraint=models.UniqueConstraint(fields=('partition', 'pseq'), name='audit_entry_partition_pseq'),
        ),
        migrations.RunPython(append_only_create, append_only_drop, atomic=False),
    ]

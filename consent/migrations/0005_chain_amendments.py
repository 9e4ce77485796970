"""Chained amendments (merge, redaction, format upgrade) and the consent digest format v2.

A database that already holds events gets one ``upgrade`` amendment sealed on top of them: events
before it keep their v1 digests (profile, identity index and signals not covered), every event
after it is sealed with v2.
"""

import datetime as dt

from django.db import migrations, models


def upgrade_seal(event, amendment, head_model, db):
    """Seal the ``upgrade`` amendment on top of existing (v1) events; nothing on an empty chain."""
    from consent.chain import amendment_digest

    if not event.objects.using(db).exists() or amendment.objects.using(db).filter(kind="upgrade").exists():
        return
    head, _ = head_model.objects.using(db).get_or_create(pk=1)
    now = dt.datetime.now(dt.UTC)
    record = amendment(kind="upgrade", event_seqs=[], recorded_at=now, note="events before this record: digest v1",
                       seq=head.seq + 1, prev_hash=head.hash)
    record.entry_hash = amendment_digest(record, head.hash)
    record.save(using=db)
    head_model.objects.using(db).filter(pk=1).update(seq=record.seq, hash=record.entry_hash, updated_at=now)


def seal_upgrade(apps, schema_editor):
    upgrade_seal(apps.get_model("consent", "ConsentEvent"), apps.get_model("consent", "ConsentAmendment"),
                 apps.get_model("consent", "ChainHead"), schema_editor.connection.alias)


class Migration(migrations.Migration):

    dependencies = [
        ('consent', '0004_consent_revision'),
    ]

    operations = [
        migrations.CreateModel(
            name='ConsentAmendment',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('seq', models.BigIntegerField(editable=False, unique=True)),
                ('prev_hash', models.CharField(editable=False, max_length=64)),
                ('entry_hash', models.CharField(editable=False, max_length=64)),
                ('kind', models.CharField(choices=[('merge', 'Profile merge'), ('redact', 'Identity redaction (erasure)'), ('upgrade', 'Chain format upgrade')], max_length=12)),
                ('profile_ref', models.UUIDField(blank=True, null=True)),
                ('survivor_ref', models.UUIDField(blank=True, null=True)),
                ('event_seqs', models.JSONField(blank=True, default=list)),
                ('recorded_at', models.DateTimeField()),
                ('actor_label', models.CharField(blank=True, default='', max_length=150)),
                ('note', models.CharField(blank=True, default='', max_length=300)),
            ],
            options={
                'verbose_name': 'consent chain amendment',
                'verbose_name_plural': 'consent chain amendments',
                'ordering': ['seq'],
            },
        ),
        migrations.AddField(
            model_name='chainhead',
            name='updated_at',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.RunPython(seal_upgrade, migrations.RunPython.noop),
    ]

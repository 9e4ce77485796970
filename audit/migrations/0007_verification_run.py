from django.db import migrations, models


class Migration(migrations.Migration):
    """Runs of the scheduled chain verification (audit.verification)."""

    dependencies = [
        ("audit", "0006_chain_v2_partitions_append_only"),
    ]

    operations = [
        migrations.CreateModel(
            name="VerificationRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField(db_index=True, verbose_name="started")),
                ("finished_at", models.DateTimeField(verbose_name="finished")),
                ("full", models.BooleanField(default=False, help_text="From the start of every chain.", verbose_name="full")),
                ("ok", models.BooleanField(verbose_name="intact")),
                ("checked", models.BigIntegerField(default=0, verbose_name="entries checked")),
                ("problem_count", models.PositiveIntegerField(default=0, verbose_name="problems")),
                ("chains", models.JSONField(blank=True, default=dict, help_text="Per chain: entries checked, problems, position reached.", verbose_name="chains")),
                ("problems", models.JSONField(blank=True, default=list, verbose_name="problems found")),
                ("notified_at", models.DateTimeField(blank=True, null=True, verbose_name="e-mailed")),
            ],
            options={
                "verbose_name": "chain verification",
                "verbose_name_plural": "chain verifications",
                "ordering": ["-started_at"],
            },
        ),
    ]

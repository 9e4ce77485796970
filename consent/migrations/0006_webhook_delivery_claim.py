from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("consent", "0005_chain_amendments"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookdelivery",
            name="claimed_until",
            field=models.DateTimeField(blank=True, null=True),
        ),
    ]

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("dsr", "0003_request_scope"),
    ]

    operations = [
        migrations.AddField(
            model_name="datasubjectrequest",
            name="public_base_url",
            field=models.CharField(blank=True, default="", editable=False, max_length=255),
        ),
    ]

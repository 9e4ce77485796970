from django.db import migrations, models


class Migration(migrations.Migration):
    """The catalogue revision row also counts changes to site keys, sites and workspaces."""

    dependencies = [
        ("consent", "0003_catalogue_revision"),
    ]

    operations = [
        migrations.RenameModel("CatalogueRevision", "ConsentRevision"),
        migrations.AlterModelOptions(
            name="consentrevision", options={"verbose_name": "consent configuration revision"},
        ),
        migrations.RenameField("consentrevision", "revision", "catalogue"),
        migrations.AddField("consentrevision", "keys", models.BigIntegerField(default=0)),
    ]

from django.db import migrations

# A copy of audit.anomalies.DEFAULT_RULES as of this migration (migrations must not change later).
DEFAULT_RULES = [
    {"name": "More than 100 profiles read in an hour", "kind": "reads_per_hour",
     "threshold": 100, "window_minutes": 60},
    {"name": "Profile reads outside working hours", "kind": "off_hours",
     "threshold": 0, "window_minutes": 60},
    {"name": "More than 5 denied attempts in 15 minutes", "kind": "denied_attempts",
     "threshold": 5, "window_minutes": 15},
    {"name": "More than 10 exports in a day", "kind": "bulk_exports",
     "threshold": 10, "window_minutes": 1440},
]


def create_defaults(apps, schema_editor):
    AnomalyRule = apps.get_model("audit", "AnomalyRule")
    if not AnomalyRule.objects.exists():
        AnomalyRule.objects.bulk_create([AnomalyRule(**spec) for spec in DEFAULT_RULES])


class Migration(migrations.Migration):
    dependencies = [("audit", "0002_anomalyrule_auditexport_anomalyalert")]
    operations = [migrations.RunPython(create_defaults, migrations.RunPython.noop)]

"""Evaluate the access-anomaly rules now (the same work as the periodic Celery task)."""

import datetime as dt

from django.core.management.base import BaseCommand

from oversight.anomalies import alert_describe, anomalies_evaluate, anomaly_rules_ensure_defaults


class Command(BaseCommand):
    help = "Evaluate access-anomaly rules over the audit log, raise alerts and e-mail the DPO group."

    def add_arguments(self, parser):
        parser.add_argument("--hours", type=int, default=24, help="look back this many hours (default 24)")
        parser.add_argument("--no-mail", action="store_true", help="raise alerts without e-mailing")

    def handle(self, *args, **options):
        from django.utils import timezone

        anomaly_rules_ensure_defaults()
        now = timezone.now()
        alerts = anomalies_evaluate(
            since=now - dt.timedelta(hours=options["hours"]), until=now, notify=not options["no_mail"]
        )
        for alert in alerts:
            self.stdout.write(alert_describe(alert))
        self.stdout.write(self.style.SUCCESS(f"{len(alerts)} new alert(s)."))

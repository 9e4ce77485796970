"""Celery application: configuration from Django settings (``CELERY_*``), tasks from every app."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "governance.settings")

app = Celery("governance")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Every worker renews its heartbeat row (governance.observability.heartbeat; read by /metrics).
app.steps["worker"].add("governance.observability.heartbeat:HeartbeatStep")

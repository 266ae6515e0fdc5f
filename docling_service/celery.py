"""Celery application: reads every CELERY_* Django setting."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "docling_service.settings.dev")

app = Celery("docling_service")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()

# Connects the signal handlers that carry request ids into tasks and log them.
import core.celery_logging  # noqa: E402, F401

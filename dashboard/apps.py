from django.apps import AppConfig


class DashboardConfig(AppConfig):
    name = "dashboard"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Celery workers load the Django apps before their consumer starts,
        # so these receivers are connected before Celery checks whether
        # heartbeat_sent has any. In web processes they never fire.
        from celery.signals import heartbeat_sent, worker_ready, worker_shutdown

        from . import workers

        worker_ready.connect(workers.record_worker_ready, weak=False, dispatch_uid="dashboard-ready")
        heartbeat_sent.connect(workers.record_heartbeat, weak=False, dispatch_uid="dashboard-beat")
        worker_shutdown.connect(
            workers.record_worker_shutdown, weak=False, dispatch_uid="dashboard-shutdown"
        )

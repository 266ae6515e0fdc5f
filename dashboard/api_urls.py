from django.urls import path

from . import api

urlpatterns = [
    path("dashboard/summary", api.SummaryView.as_view(), name="dashboard-summary"),
    path("dashboard/workers", api.WorkersView.as_view(), name="dashboard-workers"),
    path("dashboard/jobs/active", api.ActiveJobsView.as_view(), name="dashboard-active-jobs"),
    path("reports/usage", api.UsageReportView.as_view(), name="usage-report"),
]

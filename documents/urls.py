from django.urls import path

from . import views

urlpatterns = [
    path("documents", views.DocumentListCreateView.as_view(), name="document-list"),
    path("documents/<uuid:pk>", views.DocumentDetailView.as_view(), name="document-detail"),
    path("documents/<uuid:pk>/ingest", views.DocumentIngestView.as_view(), name="document-ingest"),
    path("jobs", views.JobListView.as_view(), name="job-list"),
    path("jobs/<uuid:pk>", views.JobDetailView.as_view(), name="job-detail"),
    path("jobs/<uuid:pk>/cancel", views.JobCancelView.as_view(), name="job-cancel"),
    path("jobs/<uuid:pk>/retry", views.JobRetryView.as_view(), name="job-retry"),
    path("artifacts", views.ArtifactListView.as_view(), name="artifact-list"),
    path(
        "artifacts/<uuid:pk>/download",
        views.ArtifactDownloadView.as_view(),
        name="artifact-download",
    ),
]

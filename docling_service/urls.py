from django.contrib import admin
from django.contrib.staticfiles.urls import staticfiles_urlpatterns
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from core import views as core_views

urlpatterns = [
    path("healthz", core_views.healthz, name="healthz"),
    path("readyz", core_views.readyz, name="readyz"),
    path("v1/schema", SpectacularAPIView.as_view(), name="schema"),
    path("v1/docs", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("v1/", include("documents.urls")),
    path("v1/", include("dashboard.api_urls")),
    path("dashboard/", include("dashboard.urls")),
    path("admin/", admin.site.urls),
]
# Serves the admin's and the dashboard's static files under Gunicorn when
# DEBUG is on (`make run`). With DEBUG off it adds no pattern: collect them
# with `manage.py collectstatic` and serve STATIC_ROOT from the web server.
urlpatterns += staticfiles_urlpatterns()

handler400 = "core.views.bad_request"
handler403 = "core.views.permission_denied"
handler404 = "core.views.not_found"
handler500 = "core.views.server_error"

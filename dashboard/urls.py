from django.urls import path

from . import web

app_name = "dashboard"

urlpatterns = [
    path("", web.index, name="index"),
    path("panels", web.panels, name="panels"),
    path("login", web.login_view, name="login"),
    path("logout", web.logout_view, name="logout"),
    path("jobs/<uuid:pk>", web.job_detail, name="job"),
]

"""Server-rendered dashboard pages: sign-in, the dashboard, its panels and a job page.

The page refreshes by fetching the panels fragment, which the server
renders with the same templates, so every value is escaped by Django and
the browser runs only a small script and Chart.js. Failures of the
database or the broker render as messages, never as tracebacks or the
API's JSON errors.
"""

import logging
from collections.abc import Callable
from datetime import datetime
from functools import wraps
from typing import Any

from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import login, logout
from django.contrib.auth.views import redirect_to_login
from django.db import DatabaseError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_GET, require_POST

from accounts.models import Tenant
from documents.models import IngestionJob

from . import stats, workers
from .access import Viewer, resolve_viewer, start_key_session
from .forms import ApiKeyLoginForm

logger = logging.getLogger(__name__)

REFRESH_SECONDS = 10
ACTIVE_JOBS_SHOWN = 20
EVENTS_SHOWN = 100

View = Callable[..., HttpResponse]


def render_page_errors(view: View) -> View:
    """Render an HTML error page, not the API's JSON 500, when a page view fails.

    A database error gets 503 and a hint to check PostgreSQL; any other
    exception gets 500. Both are logged with their traceback.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except DatabaseError:
            logger.exception("Dashboard page %s failed on a database error", request.path)
            return render(
                request,
                "dashboard/error.html",
                {
                    "title": "Database unavailable",
                    "message": "The database did not respond, so the dashboard cannot show "
                    "any data. Reload the page in a minute; if this persists, check that "
                    "PostgreSQL is running.",
                },
                status=503,
            )
        except Exception:
            logger.exception("Dashboard page %s failed", request.path)
            return render(
                request,
                "dashboard/error.html",
                {
                    "title": "Dashboard error",
                    "message": "The dashboard failed to build this page. The error is logged "
                    "on the server; reload the page, and report it if it persists.",
                },
                status=500,
            )

    return wrapper


# --- sign-in ----------------------------------------------------------------------

def next_url(request: HttpRequest) -> str:
    candidate = request.POST.get("next") or request.GET.get("next") or ""
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return reverse("dashboard:index")


@never_cache
@csrf_protect
@sensitive_post_parameters("key-api_key", "staff-password")
@render_page_errors
def login_view(request: HttpRequest) -> HttpResponse:
    """Sign in with an API key (tenant) or a staff account; both forms on one page."""
    key_form = ApiKeyLoginForm(prefix="key")
    staff_form = AdminAuthenticationForm(request, prefix="staff")
    if request.method == "POST":
        if request.POST.get("sign_in") == "key":
            key_form = ApiKeyLoginForm(request.POST, prefix="key")
            if key_form.is_valid():
                api_key = key_form.get_api_key()
                start_key_session(request, api_key)
                logger.info(
                    "Dashboard sign-in with key %s of tenant %s", api_key.prefix, api_key.tenant_id
                )
                return redirect(next_url(request))
        elif request.POST.get("sign_in") == "staff":
            staff_form = AdminAuthenticationForm(request, data=request.POST, prefix="staff")
            if staff_form.is_valid():
                # Drop any key session, so that no key id outlives the switch.
                request.session.flush()
                login(request, staff_form.get_user())
                logger.info("Dashboard sign-in of staff user %s", staff_form.get_user().pk)
                return redirect(next_url(request))
    return render(
        request,
        "dashboard/login.html",
        {"key_form": key_form, "staff_form": staff_form, "next": next_url(request)},
    )


@require_POST
@csrf_protect
def logout_view(request: HttpRequest) -> HttpResponse:
    logout(request)
    return redirect("dashboard:login")


# --- the dashboard ---------------------------------------------------------------

@never_cache
@require_GET
@render_page_errors
def index(request: HttpRequest) -> HttpResponse:
    viewer = resolve_viewer(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path(), login_url=reverse("dashboard:login"))
    return render(request, "dashboard/index.html", dashboard_context(viewer))


@never_cache
@require_GET
@render_page_errors
def panels(request: HttpRequest) -> HttpResponse:
    """Return the panels fragment that the page's script swaps in on each refresh."""
    viewer = resolve_viewer(request)
    if viewer is None:
        return HttpResponse("Your session has ended; sign in again.", status=401)
    return render(request, "dashboard/_panels.html", dashboard_context(viewer))


def dashboard_context(viewer: Viewer) -> dict[str, Any]:
    now = timezone.now()
    jobs = viewer.jobs()
    tenant_query = ""
    if viewer.is_staff and viewer.tenant is not None:
        tenant_query = f"?tenant={viewer.tenant.pk}"
    return {
        "viewer": viewer,
        "generated_at": now,
        "refresh_seconds": REFRESH_SECONDS,
        "tenant_query": tenant_query,
        "tenants": Tenant.objects.order_by("name") if viewer.is_staff else None,
        "summary": stats.summary(jobs, now),
        "active_jobs": stats.active_jobs(jobs, now, limit=ACTIVE_JOBS_SHOWN),
        "workers": workers.worker_status(now),
        "chart_data": chart_data(jobs, now),
    }


def chart_data(jobs: QuerySet[IngestionJob], now: datetime) -> dict[str, Any]:
    """Build the series of the throughput chart and the duration histogram."""
    hourly = stats.hourly_throughput(jobs, now)
    histogram = stats.duration_histogram(jobs, now)
    return {
        "throughput": {
            "labels": [point["hour"].strftime("%H:00") for point in hourly],
            "succeeded": [point["succeeded"] for point in hourly],
            "failed": [point["failed"] for point in hourly],
        },
        "histogram": {
            "labels": [bucket_label(bucket["from_ms"], bucket["to_ms"]) for bucket in histogram],
            "jobs": [bucket["jobs"] for bucket in histogram],
        },
    }


def bucket_label(from_ms: int, to_ms: int | None) -> str:
    """Label a histogram bucket: '< 1 s', '10–30 s', '1–2 min' or '≥ 10 min'."""
    if to_ms is None:
        return f"≥ {from_ms // 60_000} min" if from_ms >= 60_000 else f"≥ {from_ms // 1000} s"
    if from_ms == 0:
        return f"< {to_ms // 1000} s"
    if to_ms <= 60_000:
        return f"{from_ms // 1000}–{to_ms // 1000} s"
    return f"{from_ms // 60_000}–{to_ms // 60_000} min"


@never_cache
@require_GET
@render_page_errors
def job_detail(request: HttpRequest, pk: str) -> HttpResponse:
    """Show one job the viewer may see: status, timings, error and events."""
    viewer = resolve_viewer(request)
    if viewer is None:
        return redirect_to_login(request.get_full_path(), login_url=reverse("dashboard:login"))
    job = viewer.jobs().select_related("document", "tenant").filter(pk=pk).first()
    if job is None:
        return render(
            request,
            "dashboard/error.html",
            {
                "title": "Job not found",
                "message": f"No job {pk} is visible to you. It may belong to another "
                "tenant or have been deleted.",
                "viewer": viewer,
            },
            status=404,
        )
    return render(
        request,
        "dashboard/job.html",
        {
            "viewer": viewer,
            "job": job,
            "events": job.events.order_by("-timestamp")[:EVENTS_SHOWN],
            "artifacts": job.artifacts.order_by("kind"),
        },
    )

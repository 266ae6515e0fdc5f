"""The server-rendered dashboard: sign-in by key or staff account, pages and errors."""

import re

import pytest
from django.contrib.auth.models import User
from django.contrib.sessions.models import Session
from django.db import OperationalError
from django.test import Client

from accounts.keys import create_api_key, revoke_api_key, rotate_api_key
from accounts.models import Tenant

from .factories import Stage, Status, ago, make_job

pytestmark = pytest.mark.django_db

LOGIN_URL = "/dashboard/login"


@pytest.fixture(autouse=True)
def no_broker(settings) -> None:
    # A closed loopback port: the worker panel shows the outage at once.
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"


@pytest.fixture
def acme_key():
    issued = create_api_key("acme", name="ops", scopes=["dashboard:read"])
    tenant = issued.api_key.tenant
    make_job(tenant, finished_at=ago(hours=1), duration_ms=1000, pages=3)
    make_job(
        tenant, status=Status.FAILED, stage=Stage.CONVERTING, finished_at=ago(minutes=5),
        duration_ms=2000, error_code="PDF_ENCRYPTED", filename="<script>alert(1)</script>.pdf",
    )
    other = Tenant.objects.create(name="globex")
    for _ in range(3):
        make_job(other, status=Status.FAILED, finished_at=ago(minutes=1), error_code="GLOBEX_ERROR")
    return issued


def key_login(client: Client, token: str, next_url: str = ""):
    data = {"sign_in": "key", "key-api_key": token}
    if next_url:
        data["next"] = next_url
    return client.post(LOGIN_URL, data)


def staff_client() -> Client:
    User.objects.create_user("operator", password="pw-operator-1", is_staff=True)
    client = Client()
    response = client.post(
        LOGIN_URL,
        {"sign_in": "staff", "staff-username": "operator", "staff-password": "pw-operator-1"},
    )
    assert response.status_code == 302
    return client


def count_on_page(html: str, status: str) -> int:
    match = re.search(rf'data-count="{status}">(\d+)<', html)
    assert match, f"no count for {status}"
    return int(match.group(1))


def test_dashboard_redirects_to_login() -> None:
    response = Client().get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"].startswith(f"{LOGIN_URL}?next=/dashboard/")


def test_login_page_is_html() -> None:
    response = Client().get(LOGIN_URL)

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    html = response.content.decode()
    assert 'name="key-api_key"' in html
    assert 'name="staff-username"' in html
    assert "csrfmiddlewaretoken" in html


def test_key_login_shows_own_tenant(acme_key) -> None:
    client = Client()

    response = key_login(client, acme_key.token)
    page = client.get("/dashboard/")

    assert response.status_code == 302
    assert response["Location"] == "/dashboard/"
    html = page.content.decode()
    assert page.status_code == 200
    assert count_on_page(html, "failed") == 1
    assert count_on_page(html, "succeeded") == 1
    assert "PDF_ENCRYPTED" in html
    assert "GLOBEX_ERROR" not in html
    assert "globex" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;.pdf" in html
    assert "<script>alert(1)</script>" not in html


def test_key_session_holds_no_token(acme_key) -> None:
    client = Client()
    key_login(client, acme_key.token)

    session = Session.objects.get(session_key=client.cookies["sessionid"].value)
    decoded = str(session.get_decoded())
    secret = acme_key.token.partition(".")[2]
    assert secret not in decoded
    assert acme_key.token not in decoded
    assert str(acme_key.api_key.pk) in decoded


@pytest.mark.parametrize(
    ("scopes", "message"),
    [
        (None, "unknown or revoked"),
        (["jobs:read"], "lacks the scope"),
    ],
)
def test_key_login_rejected(scopes, message: str) -> None:
    token = "deadbeef.not-a-real-secret" if scopes is None else create_api_key("acme", scopes=scopes).token
    client = Client()

    response = key_login(client, token)

    assert response.status_code == 200
    assert message in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


@pytest.mark.parametrize("change", ["revoke", "rotate", "drop_scope"])
def test_key_session_ends_when_key_changes(acme_key, change: str) -> None:
    client = Client()
    key_login(client, acme_key.token)
    assert client.get("/dashboard/").status_code == 200

    if change == "revoke":
        revoke_api_key(acme_key.api_key)
    elif change == "rotate":
        rotate_api_key(acme_key.api_key)
    else:
        acme_key.api_key.scopes = ["jobs:read"]
        acme_key.api_key.save()

    assert client.get("/dashboard/").status_code == 302
    assert client.get("/dashboard/panels").status_code == 401


def test_login_ignores_foreign_next(acme_key) -> None:
    response = key_login(Client(), acme_key.token, next_url="https://evil.example/steal")

    assert response["Location"] == "/dashboard/"


def test_staff_sees_all_tenants_and_filters(acme_key) -> None:
    client = staff_client()
    globex = Tenant.objects.get(name="globex")

    everything = client.get("/dashboard/").content.decode()
    only_globex = client.get(f"/dashboard/?tenant={globex.pk}").content.decode()
    panels = client.get(f"/dashboard/panels?tenant={globex.pk}").content.decode()

    assert count_on_page(everything, "failed") == 4
    assert "GLOBEX_ERROR" in everything
    assert "PDF_ENCRYPTED" in everything
    assert count_on_page(only_globex, "failed") == 3
    assert "PDF_ENCRYPTED" not in only_globex
    assert count_on_page(panels, "failed") == 3
    assert f'data-url="/dashboard/panels?tenant={globex.pk}"' in only_globex


def test_non_staff_account_rejected() -> None:
    User.objects.create_user("someone", password="pw-someone-1", is_staff=False)
    client = Client()

    response = client.post(
        LOGIN_URL, {"sign_in": "staff", "staff-username": "someone", "staff-password": "pw-someone-1"}
    )

    assert response.status_code == 200
    assert "staff account" in response.content.decode()
    assert client.get("/dashboard/").status_code == 302


def test_logout_needs_post_and_ends_session(acme_key) -> None:
    client = Client()
    key_login(client, acme_key.token)

    assert client.get("/dashboard/logout").status_code == 405
    response = client.post("/dashboard/logout")

    assert response.status_code == 302
    assert client.get("/dashboard/").status_code == 302


def test_login_and_logout_need_csrf_token(acme_key) -> None:
    client = Client(enforce_csrf_checks=True)

    login = client.post(LOGIN_URL, {"sign_in": "key", "key-api_key": acme_key.token})
    logout = client.post("/dashboard/logout")

    assert login.status_code == 403
    assert logout.status_code == 403


def test_panels_fragment_needs_session() -> None:
    response = Client().get("/dashboard/panels")

    assert response.status_code == 401
    assert b"sign in again" in response.content


def test_job_page_shows_error(acme_key) -> None:
    client = Client()
    key_login(client, acme_key.token)
    failed = acme_key.api_key.tenant.jobs.get(status=Status.FAILED)

    response = client.get(f"/dashboard/jobs/{failed.pk}")

    assert response.status_code == 200
    html = response.content.decode()
    assert "PDF_ENCRYPTED" in html
    assert "Test failure PDF_ENCRYPTED" in html


def test_job_page_of_other_tenant_is_not_found(acme_key) -> None:
    client = Client()
    key_login(client, acme_key.token)
    foreign = Tenant.objects.get(name="globex").jobs.first()

    response = client.get(f"/dashboard/jobs/{foreign.pk}")

    assert response.status_code == 404
    assert response["Content-Type"].startswith("text/html")
    assert "No job" in response.content.decode()
    assert "GLOBEX_ERROR" not in response.content.decode()


def test_broker_outage_is_a_message(acme_key) -> None:
    client = Client()
    key_login(client, acme_key.token)

    html = client.get("/dashboard/").content.decode()

    assert "The Celery broker (Redis) did not respond" in html
    assert "queue docling: unknown" in html


def test_database_error_renders_page(acme_key, monkeypatch) -> None:
    client = Client()
    key_login(client, acme_key.token)

    def broken(*args, **kwargs):
        raise OperationalError("connection to server failed")

    monkeypatch.setattr("dashboard.stats.summary", broken)
    response = client.get("/dashboard/")

    assert response.status_code == 503
    assert response["Content-Type"].startswith("text/html")
    assert "The database did not respond" in response.content.decode()


def test_empty_tenant_shows_empty_states() -> None:
    issued = create_api_key("quiet", scopes=["dashboard:read"])
    client = Client()
    key_login(client, issued.token)

    html = client.get("/dashboard/").content.decode()

    assert "No job is running." in html
    assert "No failed or quarantined jobs." in html
    assert count_on_page(html, "failed") == 0


def test_unexpected_error_renders_page(acme_key, monkeypatch) -> None:
    client = Client()
    key_login(client, acme_key.token)

    def broken(*args, **kwargs):
        raise RuntimeError("bug")

    monkeypatch.setattr("dashboard.stats.active_jobs", broken)
    response = client.get("/dashboard/panels")

    assert response.status_code == 500
    assert response["Content-Type"].startswith("text/html")
    assert "failed to build this page" in response.content.decode()


def test_staff_login_replaces_key_session(acme_key) -> None:
    User.objects.create_user("operator", password="pw-operator-1", is_staff=True)
    client = Client()
    key_login(client, acme_key.token)

    client.post(
        LOGIN_URL,
        {"sign_in": "staff", "staff-username": "operator", "staff-password": "pw-operator-1"},
    )

    session = Session.objects.get(session_key=client.cookies["sessionid"].value)
    assert "dashboard_api_key_id" not in session.get_decoded()
    assert count_on_page(client.get("/dashboard/").content.decode(), "failed") == 4

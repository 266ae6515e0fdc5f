"""The web dashboard in headless Chromium (Debian's package), driven by Playwright.

Only Playwright's driver is used: the browser is /usr/bin/chromium, never a
downloaded one. Screenshots go to test-artifacts/ at the repository root.
"""

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Browser, Page, expect, sync_playwright

from accounts.keys import IssuedKey, create_api_key
from accounts.models import Tenant
from conftest import REPO_ROOT

from .factories import Stage, Status, ago, make_job
from .test_workers import start_worker, stop_worker

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
SCREENSHOTS = REPO_ROOT / "test-artifacts"
STAFF_PASSWORD = "pw-staff-browser-1"

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.integration,
    pytest.mark.skipif(
        not CHROMIUM.exists() and shutil.which("chromium") is None,
        reason="Chromium is not installed: install the Debian package 'chromium' "
        "(make setup does) to run the browser tests.",
    ),
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # Playwright's sync API runs an event loop in this thread, which makes
    # Django treat the ORM calls of the test body as calls from async code.
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    executable = CHROMIUM if CHROMIUM.exists() else Path(shutil.which("chromium") or "")
    try:
        with sync_playwright() as playwright:
            chromium = playwright.chromium.launch(
                executable_path=str(executable), args=CHROMIUM_ARGS, headless=True
            )
            yield chromium
            chromium.close()
    finally:
        if previous is None:
            os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()


@pytest.fixture
def jobs() -> IssuedKey:
    """Jobs of two tenants; returns a dashboard key of the first, acme."""
    issued = create_api_key("acme", name="browser", scopes=["dashboard:read"])
    acme = issued.api_key.tenant
    for hours, duration in ((1, 1000), (2, 2000), (3, 4000)):
        make_job(acme, finished_at=ago(hours=hours), duration_ms=duration, pages=4)
    make_job(
        acme, status=Status.FAILED, stage=Stage.CONVERTING, finished_at=ago(minutes=20),
        duration_ms=3000, error_code="PDF_ENCRYPTED", filename="locked.pdf",
    )
    make_job(
        acme, status=Status.RUNNING, stage=Stage.CONVERTING, started_at=ago(seconds=75),
        pages=20, pages_done=5, filename="long-report.pdf",
    )
    globex = Tenant.objects.create(name="globex")
    make_job(globex, finished_at=ago(hours=4), duration_ms=45_000, pages=30)
    make_job(globex, finished_at=ago(hours=5), duration_ms=150_000, pages=60)
    make_job(
        globex, status=Status.FAILED, stage=Stage.CONVERTING, finished_at=ago(minutes=40),
        duration_ms=1_800_000, error_code="TIMEOUT",
    )
    make_job(
        globex, status=Status.QUARANTINED, stage=Stage.SCANNING, finished_at=ago(hours=2),
        duration_ms=40, error_code="VIRUS_FOUND",
    )
    User.objects.create_user("operator", password=STAFF_PASSWORD, is_staff=True)
    return issued


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"dashboard-{name}.png"), full_page=True)


def count(page: Page, status: str) -> str:
    return page.locator(f'[data-count="{status}"]').inner_text()


def chart_totals(page: Page, chart_id: str) -> list[int]:
    """Return the sum of each dataset of a rendered Chart.js chart."""
    page.wait_for_function(f"() => window.Chart && Chart.getChart('{chart_id}')")
    return page.evaluate(
        f"""() => Chart.getChart('{chart_id}').data.datasets
                 .map(d => d.data.reduce((a, b) => a + b, 0))"""
    )


def canvas_has_pixels(page: Page, chart_id: str) -> bool:
    return page.evaluate(
        f"""() => {{
            const canvas = document.getElementById('{chart_id}');
            const pixels = canvas.getContext('2d').getImageData(0, 0, canvas.width, canvas.height).data;
            return pixels.some(value => value !== 0);
        }}"""
    )


def test_staff_sees_all_tenants(page: Page, live_server, jobs: IssuedKey, tmp_path: Path) -> None:
    hostname = f"dashboard-browser-{uuid.uuid4().hex[:6]}@localhost"
    worker = start_worker(hostname, tmp_path / "worker.log", "--pool", "solo")
    try:
        page.goto(f"{live_server.url}/dashboard/")
        expect(page).to_have_url(f"{live_server.url}/dashboard/login?next=/dashboard/")
        page.fill("#id_staff-username", "operator")
        page.fill("#id_staff-password", STAFF_PASSWORD)
        page.click("#staff-login button[type=submit]")
        expect(page).to_have_url(f"{live_server.url}/dashboard/")

        assert count(page, "succeeded") == "5"
        assert count(page, "failed") == "2"
        assert count(page, "quarantined") == "1"
        assert count(page, "running") == "1"
        failures = page.locator("#recent-failures")
        expect(failures).to_contain_text("PDF_ENCRYPTED")
        expect(failures).to_contain_text("TIMEOUT")
        expect(failures).to_contain_text("VIRUS_FOUND")
        expect(page.locator("#workers")).to_contain_text(hostname)
        expect(page.locator("#active-jobs")).to_contain_text("5/20 pages")
        # Succeeded, then failed or quarantined, in the last 24 hours.
        assert chart_totals(page, "throughput-chart") == [5, 3]
        assert chart_totals(page, "duration-chart") == [8]
        assert canvas_has_pixels(page, "throughput-chart")
        assert canvas_has_pixels(page, "duration-chart")
        screenshot(page, "staff-all-tenants")

        page.select_option("#tenant-select", label="globex")
        page.click(".tenant-filter button")
        expect(page.locator('[data-count="succeeded"]')).to_have_text("2")
        assert count(page, "failed") == "1"
        expect(page.locator("#recent-failures")).not_to_contain_text("PDF_ENCRYPTED")
        screenshot(page, "staff-globex")
    finally:
        stop_worker(worker)


def test_tenant_key_sees_own_jobs(page: Page, live_server, jobs: IssuedKey) -> None:
    page.goto(f"{live_server.url}/dashboard/login")
    page.fill("#id_key-api_key", jobs.token)
    page.click("#key-login button[type=submit]")
    expect(page).to_have_url(f"{live_server.url}/dashboard/")

    expect(page.locator(".viewer")).to_contain_text("acme")
    assert count(page, "succeeded") == "3"
    assert count(page, "failed") == "1"
    assert count(page, "quarantined") == "0"
    expect(page.locator("#recent-failures")).to_contain_text("PDF_ENCRYPTED")
    expect(page.locator("#recent-failures")).not_to_contain_text("TIMEOUT")
    expect(page.locator("body")).not_to_contain_text("globex")
    assert page.locator("#tenant-select").count() == 0
    assert chart_totals(page, "throughput-chart") == [3, 1]
    assert canvas_has_pixels(page, "throughput-chart")
    screenshot(page, "tenant-key")

    page.click("#recent-failures a")
    expect(page.locator("#job-error")).to_contain_text("PDF_ENCRYPTED")
    expect(page.locator("#job-error")).to_contain_text("Test failure PDF_ENCRYPTED")
    screenshot(page, "tenant-failed-job")

    page.goto(f"{live_server.url}/dashboard/")
    page.click("text=Sign out")
    expect(page).to_have_url(f"{live_server.url}/dashboard/login")
    page.goto(f"{live_server.url}/dashboard/")
    expect(page).to_have_url(f"{live_server.url}/dashboard/login?next=/dashboard/")


def test_page_refreshes_itself(page: Page, live_server, jobs: IssuedKey, monkeypatch) -> None:
    monkeypatch.setattr("dashboard.web.REFRESH_SECONDS", 1)
    page.goto(f"{live_server.url}/dashboard/login")
    page.fill("#id_key-api_key", jobs.token)
    page.click("#key-login button[type=submit]")
    assert count(page, "failed") == "1"

    make_job(
        jobs.api_key.tenant, status=Status.FAILED, finished_at=ago(seconds=1), duration_ms=10,
        error_code="NEW_FAILURE",
    )

    expect(page.locator('[data-count="failed"]')).to_have_text("2", timeout=15_000)
    expect(page.locator("#recent-failures")).to_contain_text("NEW_FAILURE")
    assert chart_totals(page, "throughput-chart") == [3, 2]


def test_wrong_key_shows_message(page: Page, live_server, jobs: IssuedKey) -> None:
    page.goto(f"{live_server.url}/dashboard/login")
    page.fill("#id_key-api_key", "0000.wrong")
    page.click("#key-login button[type=submit]")

    expect(page.locator("#key-login .alert")).to_contain_text("unknown or revoked")
    screenshot(page, "login-error")


def test_broker_outage_message(page: Page, live_server, jobs: IssuedKey, settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"  # a closed loopback port
    page.goto(f"{live_server.url}/dashboard/login")
    page.fill("#id_key-api_key", jobs.token)
    page.click("#key-login button[type=submit]")

    expect(page.locator("#workers .alert")).to_contain_text("did not respond")
    expect(page.locator("#workers")).to_contain_text("queue docling: unknown")
    assert count(page, "succeeded") == "3"
    screenshot(page, "broker-outage")


def test_admin_key_created_once(page: Page, live_server, jobs: IssuedKey) -> None:
    User.objects.create_superuser("root", "root@example.invalid", STAFF_PASSWORD)
    page.goto(f"{live_server.url}/admin/login/?next=/admin/accounts/apikey/add/")
    page.fill("#id_username", "root")
    page.fill("#id_password", STAFF_PASSWORD)
    page.click("input[type=submit]")
    page.select_option("#id_tenant", label="acme")
    page.fill("#id_name", "ci")
    page.click("#apikey-create input[type=submit]")

    token = page.locator(".issued-token").inner_text()
    screenshot(page, "admin-key-issued")
    page.goto(f"{live_server.url}/admin/accounts/apikey/")
    changelist = page.content()
    screenshot(page, "admin-key-list")

    assert token.partition(".")[2] not in changelist
    assert f"…{token[-4:]}" in changelist

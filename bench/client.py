"""HTTP helpers, statistics and the machine and version header shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import requests

from .stack import REPO_ROOT

TERMINAL_STATUSES = {"SUCCEEDED", "FAILED", "CANCELED", "QUARANTINED"}


def unique_pdf_bytes(path: Path, tag: str | None = None) -> bytes:
    """Return the file's bytes with a PDF comment appended after %%EOF.

    PDF readers ignore bytes after the last %%EOF, but the SHA-256 changes,
    so the service's dedupe cannot reuse an earlier job's artifacts.
    """
    return path.read_bytes() + f"\n% bench {tag or uuid.uuid4()}\n".encode()


@dataclass
class UploadResult:
    status: int
    body: dict[str, Any]
    seconds: float

    @property
    def job_id(self) -> str | None:
        job = self.body.get("job") if isinstance(self.body, dict) else None
        return job["id"] if job else None


class ServiceClient:
    """A requests session with the API key; one per thread."""

    def __init__(self, base_url: str, token: str, timeout: float = 300) -> None:
        self.base_url = base_url
        self.timeout = timeout
        self.session = requests.Session()
        self.session.headers["Authorization"] = f"Api-Key {token}"

    def upload(
        self, data: bytes, filename: str, options: dict[str, Any] | None = None, ingest: bool = True
    ) -> UploadResult:
        form = {"ingest": "true" if ingest else "false"}
        if options is not None:
            form["options"] = json.dumps(options)
        started = time.perf_counter()
        response = self.session.post(
            f"{self.base_url}/v1/documents",
            files={"file": (filename, data, "application/pdf")},
            data=form,
            timeout=self.timeout,
        )
        seconds = time.perf_counter() - started
        try:
            body = response.json()
        except ValueError:
            body = {"raw": response.text[:500]}
        return UploadResult(response.status_code, body, seconds)

    def get_json(self, path: str, **params: Any) -> tuple[int, Any]:
        response = self.session.get(f"{self.base_url}{path}", params=params or None, timeout=self.timeout)
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, {"raw": response.text[:500]}

    def job(self, job_id: str, wait_seconds: int = 0) -> dict[str, Any]:
        params = {"wait": wait_seconds} if wait_seconds else {}
        status, body = self.get_json(f"/v1/jobs/{job_id}", **params)
        if status != 200:
            raise RuntimeError(f"GET /v1/jobs/{job_id} returned {status}: {body}")
        return body

    def wait_for_job(self, job_id: str, timeout: float, poll_seconds: float = 0.0) -> dict[str, Any]:
        """Return the job once it is terminal; raise TimeoutError after `timeout` seconds.

        With `poll_seconds` 0 the server keeps each request open until the
        job ends (`?wait=`). Otherwise the client polls at that interval.
        """
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            wait = max(1, min(30, int(remaining))) if poll_seconds == 0 else 0
            body = self.job(job_id, wait_seconds=wait)
            if body["status"] in TERMINAL_STATUSES:
                return body
            if time.monotonic() > deadline:
                raise TimeoutError(f"Job {job_id} is still {body['status']} at {body['stage']} after {timeout} s.")
            if poll_seconds:
                time.sleep(poll_seconds)

    def download(self, url_path: str) -> bytes:
        response = self.session.get(f"{self.base_url}{url_path}", timeout=self.timeout)
        response.raise_for_status()
        return response.content


def percentile(values: list[float], fraction: float) -> float:
    """Return the `fraction` percentile by linear interpolation (numpy's default method)."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    position = (len(ordered) - 1) * fraction
    lower = int(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def _package_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    result = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, check=False)
    return result.stdout.strip()


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return float("nan")


def postgres_version(database_url: str) -> str:
    import psycopg

    with psycopg.connect(database_url) as connection:
        row = connection.execute("SHOW server_version").fetchone()
    return str(row[0]) if row else "unknown"


def environment_header(database_url: str | None = None, redis_version: str | None = None) -> dict[str, str]:
    """Collect the date, versions and machine facts that every benchmark prints."""
    commit = _git("rev-parse", "--short=12", "HEAD")
    if _git("status", "--porcelain", "--untracked-files=no"):
        commit += " (with uncommitted changes)"
    header = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "commit": commit,
        "docling": _package_version("docling"),
        "docling-core": _package_version("docling-core"),
        "python": platform.python_version(),
        "celery": _package_version("celery"),
        "django": _package_version("Django"),
        "gunicorn": _package_version("gunicorn"),
        "cpus": str(os.cpu_count()),
        "cpu": cpu_model(),
        "memory": f"{memory_gib():.1f} GiB",
        "load average at start": " ".join(f"{value:.2f}" for value in os.getloadavg()),
    }
    if database_url:
        header["postgresql"] = postgres_version(database_url)
    if redis_version:
        header["redis"] = redis_version
    return header


def print_header(header: dict[str, str]) -> None:
    for key, value in header.items():
        print(f"# {key}: {value}")


def load_average() -> str:
    return " ".join(f"{value:.2f}" for value in os.getloadavg())

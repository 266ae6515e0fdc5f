"""Render the shipped deploy files and run them: Nginx, socket-activated Gunicorn, a worker.

Every template is rendered by deploy/install.sh's own `render_template`
(the script is sourced, not run), so the tests and the installer share one
renderer. The stack fixture runs the production shape on loopback. Nginx
runs from the shipped site file (TLS, X-Accel, upload limits) with its
workers as www-data. Gunicorn runs from deploy/gunicorn.conf.py on a unix
socket passed by systemd-socket-activate, beside a Celery worker of its own.
All of them use a DATA_ROOT prepared by install.sh's `prepare_data_root`.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from django.conf import settings

from conftest import REPO_ROOT, WorkerProcess, free_port, start_worker, test_database_url

if TYPE_CHECKING:
    import requests

DEPLOY_DIR = REPO_ROOT / "deploy"
INSTALL_SCRIPT = DEPLOY_DIR / "install.sh"
SITE_TEMPLATE = DEPLOY_DIR / "nginx" / "docling-service.conf"
NGINX_WORKER_USER = "www-data"
STACK_QUEUE = "deploy-stack"
START_TIMEOUT_SECONDS = 60

# The values deploy/nginx/docling-service.conf and deploy/README.md document.
DOCUMENTED_VALUES = {
    "SERVER_NAME": "docling.example.com",
    "HTTP_LISTEN": "80",
    "HTTPS_LISTEN": "443",
    "GUNICORN_SOCKET": "/run/docling-svc/gunicorn.sock",
    "DATA_ROOT": "/var/lib/docling-service",
    "STATIC_ROOT": "/var/www/docling-service/static",
    "NGINX_LOG_DIR": "/var/log/nginx",
    "ARTIFACT_ACCEL_PREFIX": "/protected-artifacts/",
    "CLIENT_MAX_BODY_SIZE_MB": "201",
    "APP_DIR": "/opt/docling-service",
    "ENV_FILE": "/etc/docling-service/env",
    "NGINX_GROUP": "www-data",
}


def run_install_function(script: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Source deploy/install.sh, then run `script` (bash) with `env` added."""
    return subprocess.run(
        ["bash", "-c", f'set -euo pipefail; source "{INSTALL_SCRIPT}"; {script}'],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def render(template: Path, values: dict[str, str]) -> str:
    result = run_install_function(f'render_template "{template}"', values)
    assert result.returncode == 0, result.stderr
    return result.stdout


def make_tls_pair(folder: Path, common_name: str = "localhost") -> tuple[Path, Path]:
    certificate = folder / "tls.pem"
    key = folder / "tls.key"
    subprocess.run(
        [
            "openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
            "-subj", f"/CN={common_name}", "-addext", f"subjectAltName=DNS:{common_name}",
            "-keyout", str(key), "-out", str(certificate),
        ],
        check=True,
        capture_output=True,
    )
    return certificate, key


def nginx_main_conf(prefix: Path, site: Path, user: str | None, log_dir: Path) -> str:
    """A minimal nginx.conf around the site, like Debian's, with its own paths."""
    user_line = f"user {user};" if user else ""
    temp_paths = "\n".join(
        f"    {name}_temp_path {prefix / 'temp' / name};"
        for name in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
{user_line}
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {log_dir / 'error.log'} info;
events {{ worker_connections 128; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    sendfile on;
{temp_paths}
    access_log {log_dir / 'access.log'};
    include {site};
}}
"""


def nginx_test(prefix: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["nginx", "-t", "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf")],
        capture_output=True,
        text=True,
        timeout=30,
    )


def write_nginx_prefix(prefix: Path, site_text: str, user: str | None, log_dir: Path | None = None) -> None:
    """Write conf/nginx.conf and the site under `prefix`; logs go to log_dir (prefix/logs)."""
    log_dir = log_dir or prefix / "logs"
    for folder in (prefix / "conf", prefix / "temp", log_dir):
        folder.mkdir(parents=True, exist_ok=True)
    site = prefix / "conf" / "docling-service.conf"
    site.write_text(site_text)
    (prefix / "conf" / "nginx.conf").write_text(nginx_main_conf(prefix, site, user, log_dir))


def wait_for(check: Any, what: str, timeout: float = START_TIMEOUT_SECONDS, logs: tuple[Path, ...] = ()) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    tails = "".join(
        f"\n--- {path}:\n{path.read_text(errors='replace')[-3000:]}" for path in logs if path.exists()
    )
    pytest.fail(f"Timed out after {timeout} s waiting for {what}{tails}")


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@dataclass
class DeployStack:
    """The running stack: URLs, paths and logs of each process."""

    https_url: str
    http_url: str
    data_root: Path
    static_root: Path
    prefix: Path
    log_dir: Path
    gunicorn_log: Path
    worker: WorkerProcess
    upload_max_size_mb: int
    accel_prefix: str
    certificate: Path

    def session(self) -> "requests.Session":
        """Return an HTTP session that trusts the stack's self-signed certificate."""
        import requests

        session = requests.Session()
        # Without this, REQUESTS_CA_BUNDLE from the environment replaces
        # session.verify, and proxy variables would apply to loopback.
        session.trust_env = False
        session.verify = str(self.certificate)
        return session

    @property
    def nginx_access_log(self) -> Path:
        return self.log_dir / "nginx" / "docling-service.access.log"


def stack_environment(data_root: Path, static_root: Path, upload_max_size_mb: int) -> dict[str, str]:
    """Settings of the stack's Gunicorn and worker, as the environment file would set them."""
    return {
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.test",
        "DATABASE_URL": test_database_url(),
        "DATA_ROOT": str(data_root),
        "STATIC_ROOT": str(static_root),
        "DJANGO_ALLOWED_HOSTS": "localhost,127.0.0.1",
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_QUEUE": STACK_QUEUE,
        "CLAMD_ADDRESS": settings.CLAMD_ADDRESS,
        "CLAMD_DATABASE_DIR": settings.CLAMD_DATABASE_DIR,
        "UPLOAD_MAX_SIZE_MB": str(upload_max_size_mb),
        "ARTIFACT_DELIVERY": "x-accel",
        "ARTIFACT_ACCEL_PREFIX": "/protected-artifacts/",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
        "HF_HUB_OFFLINE": "1",
        "CACHE_URL": os.environ.get("CACHE_URL", ""),
        "DOCLING_ARTIFACTS_PATH": os.environ.get("DOCLING_ARTIFACTS_PATH", ""),
        "DOCLING_LAYOUT_ENGINE": os.environ.get("DOCLING_LAYOUT_ENGINE", "auto"),
        "GUNICORN_WORKERS": "1",
        "GUNICORN_THREADS": "4",
    }


def prepare_data_root(data_root: Path, cache_dir: Path) -> None:
    result = run_install_function(
        "prepare_data_root",
        {
            "DATA_ROOT": str(data_root),
            "CACHE_DIR": str(cache_dir),
            "SERVICE_USER": "root",
            "NGINX_GROUP": NGINX_WORKER_USER,
        },
    )
    assert result.returncode == 0, result.stderr


def start_socket_activated_gunicorn(
    socket_path: Path, environment: dict[str, str], log_path: Path
) -> subprocess.Popen:
    """Start Gunicorn as docling-service-web.socket and .service do, with a 0660 www-data socket."""
    variables = {**environment, "PATH": os.environ["PATH"], "PYTHONDONTWRITEBYTECODE": "1"}
    command = ["systemd-socket-activate", "--listen", str(socket_path)]
    for name, value in variables.items():
        command += ["--setenv", f"{name}={value}"]
    command += [
        str(Path(sys.executable).parent / "gunicorn"),
        "--config", str(DEPLOY_DIR / "gunicorn.conf.py"),
        "docling_service.wsgi:application",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT, umask=0o027
        )
    wait_for(socket_path.exists, f"the socket {socket_path}")
    # What SocketGroup=www-data and SocketMode=0660 do in the .socket unit.
    shutil.chown(socket_path, group=NGINX_WORKER_USER)
    socket_path.chmod(0o660)
    return process


@pytest.fixture(scope="module")
def deploy_stack(
    django_db_setup: Any, django_db_blocker: Any, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DeployStack]:
    for tool in ("nginx", "openssl", "systemd-socket-activate", "setfacl"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed")
    if os.geteuid() != 0:
        pytest.skip("the stack runs Nginx's workers as www-data, which needs root")

    # Under /tmp and not pytest's 0700 folders, so that www-data can reach
    # the socket, DATA_ROOT (through its ACL) and the static files.
    base = Path(tempfile.mkdtemp(prefix="docling-deploy-"))
    base.chmod(0o711)
    data_root = base / "data"
    static_root = base / "static"
    prefix = base / "nginx"
    run_dir = base / "run"
    run_dir.mkdir(mode=0o711)
    prepare_data_root(data_root, base / "cache")

    upload_max_size_mb = 1
    environment = stack_environment(data_root, static_root, upload_max_size_mb)
    collect = subprocess.run(
        [sys.executable, "manage.py", "collectstatic", "--noinput"],
        cwd=REPO_ROOT, env={**os.environ, **environment}, capture_output=True, text=True, timeout=120,
    )
    assert collect.returncode == 0, collect.stderr
    for path in [static_root, *static_root.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)

    logs = tmp_path_factory.mktemp("deploy-logs")
    socket_path = run_dir / "gunicorn.sock"
    gunicorn = start_socket_activated_gunicorn(socket_path, environment, logs / "gunicorn.log")

    old_umask = os.umask(0o027)
    try:
        worker = start_worker("deploy-worker", logs, data_root, STACK_QUEUE, extra_env=environment)
    finally:
        os.umask(old_umask)

    certificate, key = make_tls_pair(base)
    http_port, https_port = free_port(), free_port()
    site = render(
        SITE_TEMPLATE,
        {
            "SERVER_NAME": "localhost",
            "HTTP_LISTEN": f"127.0.0.1:{http_port}",
            "HTTPS_LISTEN": f"127.0.0.1:{https_port}",
            "TLS_CERTIFICATE": str(certificate),
            "TLS_CERTIFICATE_KEY": str(key),
            "GUNICORN_SOCKET": str(socket_path),
            "DATA_ROOT": str(data_root),
            "STATIC_ROOT": str(static_root),
            # Nginx's master (root) opens the logs, so they can stay in
            # pytest's folder, which outlives the stack.
            "NGINX_LOG_DIR": str(logs / "nginx"),
            "ARTIFACT_ACCEL_PREFIX": environment["ARTIFACT_ACCEL_PREFIX"],
            "CLIENT_MAX_BODY_SIZE_MB": str(upload_max_size_mb + 1),
        },
    )
    write_nginx_prefix(prefix, site, NGINX_WORKER_USER, logs / "nginx")
    prefix.chmod(0o711)
    checked = nginx_test(prefix)
    assert checked.returncode == 0, checked.stderr
    nginx = subprocess.Popen(
        ["nginx", "-p", str(prefix), "-c", str(prefix / "conf" / "nginx.conf"), "-g", "daemon off;"],
        stdout=subprocess.DEVNULL,
        stderr=(logs / "nginx.log").open("wb"),
    )
    stack = DeployStack(
        https_url=f"https://localhost:{https_port}",
        http_url=f"http://localhost:{http_port}",
        data_root=data_root,
        static_root=static_root,
        prefix=prefix,
        log_dir=logs,
        gunicorn_log=logs / "gunicorn.log",
        worker=worker,
        upload_max_size_mb=upload_max_size_mb,
        accel_prefix=environment["ARTIFACT_ACCEL_PREFIX"],
        certificate=certificate,
    )
    try:
        wait_for(
            lambda: healthy(stack),
            "Nginx and Gunicorn to answer /healthz",
            logs=(logs / "nginx" / "error.log", logs / "nginx.log", logs / "gunicorn.log"),
        )
        yield stack
    finally:
        stop_process(nginx)
        worker.stop()
        stop_process(gunicorn)
        shutil.rmtree(base, ignore_errors=True)


def healthy(stack: DeployStack) -> bool:
    import requests

    try:
        return stack.session().get(f"{stack.https_url}/healthz", timeout=5).status_code == 200
    except requests.RequestException:
        return False

"""The shipped deploy files: rendering, `nginx -t`, `systemd-analyze verify`,
clamd's limits, DATA_ROOT permissions, the environment file and shellcheck."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.tests.conftest import (
    DEPLOY_DIR,
    DOCUMENTED_VALUES,
    INSTALL_SCRIPT,
    NGINX_WORKER_USER,
    REPO_ROOT,
    SITE_TEMPLATE,
    make_tls_pair,
    nginx_test,
    prepare_data_root,
    render,
    run_install_function,
    write_nginx_prefix,
)

UNIT_FILES = sorted(
    path for path in (DEPLOY_DIR / "systemd").iterdir() if path.suffix in {".service", ".socket", ".target"}
)
PLACEHOLDER = re.compile(r"@[A-Z_]+@")


# --- rendering ---------------------------------------------------------------------

@pytest.mark.parametrize(
    "template",
    [SITE_TEMPLATE, DEPLOY_DIR / "env.template", *UNIT_FILES],
    ids=lambda path: path.name,
)
def test_template_renders_every_placeholder(template: Path) -> None:
    values = {
        **DOCUMENTED_VALUES,
        "TLS_CERTIFICATE": "/etc/ssl/certs/example.pem",
        "TLS_CERTIFICATE_KEY": "/etc/ssl/private/example.key",
        "DJANGO_SECRET_KEY": "s" * 50,
        "DATABASE_URL": "postgres://docling-svc@/%2Frun%2Fpostgresql/docling_service",
    }
    text = render(template, values)
    assert not PLACEHOLDER.search(text)


def test_render_keeps_special_characters() -> None:
    values = {**DOCUMENTED_VALUES, "DJANGO_SECRET_KEY": "a&b|c\\d/e", "DATABASE_URL": "postgres://u:p&q@h/d"}
    text = render(DEPLOY_DIR / "env.template", {**values, "SERVER_NAME": "x.example.com"})
    assert "DJANGO_SECRET_KEY=a&b|c\\d/e\n" in text
    assert "DATABASE_URL=postgres://u:p&q@h/d\n" in text


def test_render_rejects_missing_value(tmp_path: Path) -> None:
    template = tmp_path / "site.conf"
    template.write_text("server_name @SERVER_NAME@;\n")
    result = run_install_function(f'render_template "{template}"', {"SERVER_NAME": ""})
    assert result.returncode != 0
    assert "needs SERVER_NAME" in result.stderr


def test_render_rejects_unknown_placeholder(tmp_path: Path) -> None:
    template = tmp_path / "site.conf"
    template.write_text("root @NO_SUCH_VALUE@;\n")
    result = run_install_function(f'render_template "{template}"', {})
    assert result.returncode != 0
    assert "unknown placeholders: @NO_SUCH_VALUE@" in result.stderr


def test_body_size_follows_upload_limit(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text(
        "DATA_ROOT=/var/lib/docling-service\nSTATIC_ROOT=/var/www/docling-service/static\n"
        "DJANGO_ALLOWED_HOSTS=docling.example.com,other.example.com\nUPLOAD_MAX_SIZE_MB=200\n"
    )
    result = run_install_function(
        'load_settings; echo "$CLIENT_MAX_BODY_SIZE_MB $SERVER_NAME"', {"ENV_FILE": str(env_file)}
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["201", "docling.example.com"]


# --- nginx -t ----------------------------------------------------------------------

@pytest.mark.skipif(shutil.which("nginx") is None, reason="nginx is not installed")
def test_nginx_accepts_site_with_documented_values(tmp_path: Path) -> None:
    certificate, key = make_tls_pair(tmp_path, "docling.example.com")
    values = {
        **DOCUMENTED_VALUES,
        "TLS_CERTIFICATE": str(certificate),
        "TLS_CERTIFICATE_KEY": str(key),
        # nginx -t opens the log files, so they go to the test's folder.
        "NGINX_LOG_DIR": str(tmp_path / "nginx" / "logs"),
    }
    write_nginx_prefix(tmp_path / "nginx", render(SITE_TEMPLATE, values), user=None)
    result = nginx_test(tmp_path / "nginx")
    assert result.returncode == 0, result.stderr
    assert "syntax is ok" in result.stderr


def test_site_body_limit_matches_documented_value() -> None:
    text = render(SITE_TEMPLATE, {**DOCUMENTED_VALUES, "TLS_CERTIFICATE": "/c", "TLS_CERTIFICATE_KEY": "/k"})
    assert "client_max_body_size 201m;" in text
    assert "proxy_request_buffering off;" in text
    assert "proxy_set_header X-Request-ID $request_id;" in text
    assert "location ^~ /protected-artifacts/artifacts/ {" in text
    assert "alias /var/lib/docling-service/artifacts/;" in text


# --- systemd-analyze verify ----------------------------------------------------------

def test_systemd_units_verify(tmp_path: Path) -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian package systemd)")
    env_file = tmp_path / "env"
    env_file.write_text("DJANGO_SETTINGS_MODULE=docling_service.settings.prod\n")
    values = {
        **DOCUMENTED_VALUES,
        # ExecStart must name executables that exist on this machine.
        "APP_DIR": str(REPO_ROOT),
        "ENV_FILE": str(env_file),
    }
    units = tmp_path / "units"
    units.mkdir()
    for unit in UNIT_FILES:
        (units / unit.name).write_text(render(unit, values))
    result = subprocess.run(
        ["systemd-analyze", "verify", *sorted(str(path) for path in units.iterdir())],
        capture_output=True, text=True, timeout=60,
    )
    if "Failed to " in result.stderr and "initialize" in result.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {result.stderr.strip()[:200]}")
    ours = [line for line in result.stderr.splitlines() if "docling-service" in line]
    assert result.returncode == 0, result.stderr
    assert ours == []


def test_units_share_hardening() -> None:
    for unit in UNIT_FILES:
        if unit.suffix != ".service":
            continue
        text = unit.read_text()
        for line in (
            "User=docling-svc",
            "UMask=0027",
            "EnvironmentFile=@ENV_FILE@",
            "Restart=on-failure",
            "ProtectSystem=strict",
            "ProtectHome=yes",
            "PrivateTmp=yes",
            "NoNewPrivileges=yes",
            "LimitNOFILE=65536",
        ):
            assert line in text.splitlines(), (unit.name, line)
        assert re.search(r"^ReadWritePaths=@DATA_ROOT@", text, re.MULTILINE), unit.name


# --- clamd -----------------------------------------------------------------------------

def clamd_conf_copy(tmp_path: Path) -> Path:
    source = Path("/etc/clamav/clamd.conf")
    if not source.exists():
        pytest.skip("the distribution's /etc/clamav/clamd.conf is not installed (clamav-daemon)")
    folder = tmp_path / "clamav"
    folder.mkdir()
    shutil.copy(source, folder / "clamd.conf")
    return folder / "clamd.conf"


def configure_clamd(conf: Path, upload_max_size_mb: int) -> None:
    result = run_install_function(
        f'configure_clamd "{conf}"',
        {"UPLOAD_MAX_SIZE_MB": str(upload_max_size_mb), "DATA_ROOT": str(conf.parent)},
    )
    assert result.returncode == 0, result.stderr


def test_clamd_limits_match_private_clamd(tmp_path: Path) -> None:
    conf = clamd_conf_copy(tmp_path)
    configure_clamd(conf, 200)
    limits = subprocess.run(
        ["bash", str(REPO_ROOT / "scripts" / "clamd.sh"), "limits"],
        env={**os.environ, "UPLOAD_MAX_SIZE_MB": "200"}, capture_output=True, text=True, check=True,
    ).stdout
    expected = [line for line in limits.splitlines() if line and not line.startswith("#")]
    lines = conf.read_text().splitlines()
    for line in expected:
        assert lines.count(line) == 1, line
    assert "StreamMaxLength 221M" in lines
    assert "AlertEncryptedDoc yes" in lines
    assert not any(line.startswith("ArchiveBlockEncrypted") for line in lines)


def test_configure_clamd_is_idempotent(tmp_path: Path) -> None:
    conf = clamd_conf_copy(tmp_path)
    configure_clamd(conf, 200)
    first = conf.read_text()
    configure_clamd(conf, 200)
    assert conf.read_text() == first
    configure_clamd(conf, 50)
    assert "StreamMaxLength 56M" in conf.read_text().splitlines()


@pytest.mark.skipif(shutil.which("clamconf") is None, reason="clamconf is not installed")
def test_clamconf_reads_configured_limits(tmp_path: Path) -> None:
    conf = clamd_conf_copy(tmp_path)
    configure_clamd(conf, 200)
    result = subprocess.run(
        ["clamconf", "-n", "-c", str(conf.parent)], capture_output=True, text=True, timeout=60
    )
    output = result.stdout
    assert f'StreamMaxLength = "{221 * 1024 * 1024}"' in output
    assert 'AlertEncrypted = "yes"' in output
    assert 'AlertEncryptedArchive = "yes"' in output
    assert 'AlertExceedsMax = "yes"' in output


# --- DATA_ROOT permissions ---------------------------------------------------------------

def as_web_server(*command: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["runuser", "-u", NGINX_WORKER_USER, "--", *command], capture_output=True, text=True, timeout=30
    )


def test_web_server_reads_only_artifacts(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setfacl") is None:
        pytest.skip("needs root and setfacl (Debian package acl)")
    base = Path("/tmp") / f"docling-acl-{os.getpid()}"
    try:
        base.mkdir(mode=0o711)
        data_root = base / "data"
        prepare_data_root(data_root, base / "cache")
        old_umask = os.umask(0o027)
        try:
            # As the worker writes them: folders by mkdir, files by write_atomic.
            subprocess.run(
                [
                    sys.executable, "-c",
                    "import sys; from pathlib import Path; "
                    "import django; from django.conf import settings; settings.configure(); "
                    "from documents import storage; "
                    "storage.write_atomic(Path(sys.argv[1]), b'artifact'); "
                    "storage.write_atomic(Path(sys.argv[2]), b'upload')",
                    str(data_root / "artifacts" / "t" / "j" / "document.md"),
                    str(data_root / "uploads" / "clean" / "t" / "d.pdf"),
                ],
                cwd=REPO_ROOT, check=True, capture_output=True, text=True,
            )
        finally:
            os.umask(old_umask)
        artifact = data_root / "artifacts" / "t" / "j" / "document.md"
        assert as_web_server("cat", str(artifact)).stdout == "artifact"
        assert as_web_server("cat", str(data_root / "uploads" / "clean" / "t" / "d.pdf")).returncode != 0
        assert as_web_server("ls", str(data_root)).returncode != 0
        assert as_web_server("touch", str(data_root / "artifacts" / "t" / "j" / "new")).returncode != 0
        assert as_web_server("rm", "-f", str(artifact)).returncode != 0
    finally:
        shutil.rmtree(base, ignore_errors=True)


def test_prepare_data_root_is_idempotent(tmp_path: Path) -> None:
    if os.geteuid() != 0 or shutil.which("setfacl") is None:
        pytest.skip("needs root and setfacl (Debian package acl)")
    data_root = tmp_path / "data"
    prepare_data_root(data_root, tmp_path / "cache")
    first = subprocess.run(["getfacl", "-R", "-p", str(data_root)], capture_output=True, text=True).stdout
    prepare_data_root(data_root, tmp_path / "cache")
    second = subprocess.run(["getfacl", "-R", "-p", str(data_root)], capture_output=True, text=True).stdout
    assert first == second
    assert f"group:{NGINX_WORKER_USER}:--x" in first
    assert f"default:group:{NGINX_WORKER_USER}:r-x" in first


# --- environment file ----------------------------------------------------------------------

def test_env_template_loads_prod_settings(tmp_path: Path) -> None:
    values = {
        **DOCUMENTED_VALUES,
        "DATA_ROOT": str(tmp_path / "data"),
        "DJANGO_SECRET_KEY": "k" * 50,
        "DATABASE_URL": "postgres://docling-svc@/%2Frun%2Fpostgresql/docling_service",
    }
    env_file = tmp_path / "env"
    env_file.write_text(render(DEPLOY_DIR / "env.template", values))
    signatures = tmp_path / "clamav"
    signatures.mkdir()
    for name in ("main.cvd", "daily.cld"):
        (signatures / name).write_text("x")
    lines = [line for line in env_file.read_text().splitlines() if re.match(r"^[A-Z_]+=", line)]
    environment = {"PATH": os.environ["PATH"], **dict(line.split("=", 1) for line in lines)}
    environment["CLAMD_DATABASE_DIR"] = str(signatures)
    script = (
        "import django; django.setup(); from django.conf import settings as s; "
        "print(s.ARTIFACT_DELIVERY, s.LOG_FORMAT, s.DATABASES['default']['HOST'], "
        "s.DATABASES['default']['USER'], s.UPLOAD_MAX_SIZE_MB, s.DEBUG)"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO_ROOT, env=environment, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["x-accel", "json", "/run/postgresql", "docling-svc", "200", "False"]


# --- shellcheck -----------------------------------------------------------------------------

def test_install_script_passes_shellcheck() -> None:
    if shutil.which("shellcheck") is None:
        pytest.skip("shellcheck is not installed")
    result = subprocess.run(
        ["shellcheck", "-x", str(INSTALL_SCRIPT)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout


# --- deploy/manage.sh -------------------------------------------------------------------------

@pytest.mark.django_db(transaction=True)
def test_manage_wrapper_runs_command(tmp_path: Path) -> None:
    from conftest import test_database_url

    env_file = tmp_path / "env"
    env_file.write_text(
        "# comment lines and blank lines are skipped\n\n"
        "DJANGO_SETTINGS_MODULE=docling_service.settings.test\n"
        f"DATABASE_URL={test_database_url()}\n"
        f"DATA_ROOT={tmp_path / 'data'}\n"
    )
    result = subprocess.run(
        [str(DEPLOY_DIR / "manage.sh"), "prune_storage", "--dry-run"],
        env={
            **os.environ,
            "ENV_FILE": str(env_file),
            "SERVICE_USER": "root",
            "CACHE_DIR": str(tmp_path / "cache"),
        },
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "Would delete 0 items (none), 0 bytes." in result.stdout


def test_env_file_written_once(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("write_env_file sets owner root, which needs root")
    env_file = tmp_path / "etc" / "env"
    values = {
        "ENV_FILE": str(env_file),
        "SERVICE_USER": "root",
        "SERVER_NAME": "docling.example.com",
        "DATABASE_URL": "postgres://u@h/d",
        "DATA_ROOT": str(tmp_path / "data"),
    }
    first = run_install_function("write_env_file", values)
    assert first.returncode == 0, first.stderr
    text = env_file.read_text()
    secret = re.search(r"^DJANGO_SECRET_KEY=(\S+)$", text, re.MULTILINE)
    assert secret is not None
    assert len(secret.group(1)) >= 50
    assert "DJANGO_ALLOWED_HOSTS=docling.example.com\n" in text
    assert oct(env_file.stat().st_mode & 0o777) == "0o640"

    second = run_install_function("write_env_file", values)
    assert second.returncode == 0, second.stderr
    assert "Keeping the existing" in second.stdout
    assert env_file.read_text() == text


def test_set_env_file_value_replaces_line(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("DOCLING_ARTIFACTS_PATH=\nOTHER=1\n")
    script = (
        'set_env_file_value DOCLING_ARTIFACTS_PATH "/var/lib/a&b|c"; '
        "set_env_file_value NEW_VALUE 2"
    )
    result = run_install_function(script, {"ENV_FILE": str(env_file)})
    assert result.returncode == 0, result.stderr
    assert env_file.read_text() == "DOCLING_ARTIFACTS_PATH=/var/lib/a&b|c\nOTHER=1\nNEW_VALUE=2\n"

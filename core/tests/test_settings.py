import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]


def import_prod_settings(tmp_path: Path, database_dir: Path, **extra: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.prod",
        "DJANGO_SECRET_KEY": "x" * 50,
        "DATA_ROOT": str(tmp_path),
        "CLAMD_DATABASE_DIR": str(database_dir),
        **extra,
    }
    env.pop("ALLOW_TEST_SIGNATURES", None)
    env.update(extra)
    return subprocess.run(
        [sys.executable, "-c", "import django; django.setup()"],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60,
    )


def test_prod_settings_reject_test_signatures(tmp_path: Path) -> None:
    database_dir = tmp_path / "db"
    database_dir.mkdir()
    (database_dir / "docling-service-test.ndb").write_text("x")
    result = import_prod_settings(tmp_path, database_dir)
    assert result.returncode != 0
    assert "no official ClamAV signatures" in result.stderr


def test_prod_settings_accept_official_signatures(tmp_path: Path) -> None:
    database_dir = tmp_path / "db"
    database_dir.mkdir()
    for name in ("main.cvd", "daily.cld", "bytecode.cvd"):
        (database_dir / name).write_text("x")
    result = import_prod_settings(tmp_path, database_dir)
    assert result.returncode == 0, result.stderr


def test_prod_settings_require_secret_key(tmp_path: Path) -> None:
    result = import_prod_settings(tmp_path, tmp_path, DJANGO_SECRET_KEY="", ALLOW_TEST_SIGNATURES="true")
    assert result.returncode != 0
    assert "DJANGO_SECRET_KEY must be set" in result.stderr

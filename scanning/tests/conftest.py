"""Fixtures that start a private clamd with scripts/clamd.sh.

Set CLAMD_SOCKET to reuse a clamd that already runs. Tests that need the
private instance's limits or TCP listener are then skipped.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scanning import ClamdScanner

REPO_ROOT = Path(__file__).resolve().parents[2]
CLAMD_SCRIPT = REPO_ROOT / "scripts" / "clamd.sh"
CORPUS_DIR = Path(os.environ.get("CORPUS_DIR", REPO_ROOT.parent / "shared" / "corpus"))

# The private clamd gets a small upload limit, so the tests for clamd's own
# limits need only a 20 MiB file (StreamMaxLength 18M) and a zip of 150 MiB
# of zeros (MaxScanSize 144M).
TEST_UPLOAD_MAX_SIZE_MB = 16
SCAN_TIMEOUT_SECONDS = 30.0


@dataclass(frozen=True)
class ClamdInstance:
    """A clamd that replies to PING, and what the tests know about it."""

    address: str
    # The fields below are None for a clamd reused through CLAMD_SOCKET.
    tcp_address: str | None
    stream_max_length_bytes: int | None
    max_scan_size_bytes: int | None
    max_files: int | None
    data_root: Path | None


def run_clamd_script(command: str, environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run scripts/clamd.sh COMMAND and fail the test with its output when it fails."""
    completed = subprocess.run(
        [str(CLAMD_SCRIPT), command],
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if completed.returncode != 0:
        pytest.fail(
            f"scripts/clamd.sh {command} exited with {completed.returncode}\n"
            f"stdout:\n{completed.stdout}\nstderr:\n{completed.stderr}"
        )
    return completed


def script_environment(data_root: Path, **overrides: str) -> dict[str, str]:
    """Return the environment for scripts/clamd.sh with all state under `data_root`, offline."""
    environment = {
        name: value
        for name, value in os.environ.items()
        if name not in {"CLAMD_SOCKET", "CLAMD_ADDRESS", "CLAMD_DATABASE_DIR"}
    }
    environment.update(
        DATA_ROOT=str(data_root),
        CLAMD_SKIP_FRESHCLAM="1",
        UPLOAD_MAX_SIZE_MB=str(TEST_UPLOAD_MAX_SIZE_MB),
    )
    environment.update(overrides)
    return environment


def free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def read_number_option(clamd_conf: Path, option: str) -> int:
    """Return a number option from a clamd.conf written by scripts/clamd.sh.

    An M suffix is read as MiB, as clamd reads it.
    """
    match = re.search(rf"^{option} (\d+)(M?)$", clamd_conf.read_text(), re.MULTILINE)
    if match is None:
        pytest.fail(f"no '{option} NUMBER' line in {clamd_conf}")
    number = int(match.group(1))
    return number * 1024 * 1024 if match.group(2) else number


@pytest.fixture(scope="session")
def clamd_instance(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ClamdInstance]:
    reused_socket = os.environ.get("CLAMD_SOCKET")
    if reused_socket:
        path = reused_socket.removeprefix("unix://")
        instance = ClamdInstance(
            address=f"unix://{path}",
            tcp_address=None,
            stream_max_length_bytes=None,
            max_scan_size_bytes=None,
            max_files=None,
            data_root=None,
        )
        ClamdScanner(instance.address, SCAN_TIMEOUT_SECONDS, 1).ping()
        yield instance
        return

    data_root = tmp_path_factory.mktemp("clamd")
    tcp_address = f"tcp://127.0.0.1:{free_loopback_port()}"
    environment = script_environment(data_root, CLAMD_ADDRESS=tcp_address)
    run_clamd_script("prepare", environment)
    run_clamd_script("start", environment)
    clamd_conf = data_root / "clamav" / "clamd.conf"
    try:
        yield ClamdInstance(
            address=f"unix://{data_root / 'clamav' / 'clamd.sock'}",
            tcp_address=tcp_address,
            stream_max_length_bytes=read_number_option(clamd_conf, "StreamMaxLength"),
            max_scan_size_bytes=read_number_option(clamd_conf, "MaxScanSize"),
            max_files=read_number_option(clamd_conf, "MaxFiles"),
            data_root=data_root,
        )
    finally:
        run_clamd_script("stop", environment)


@pytest.fixture
def private_clamd(clamd_instance: ClamdInstance) -> ClamdInstance:
    """Return the clamd started by the session fixture, or skip when CLAMD_SOCKET reuses another."""
    if clamd_instance.data_root is None:
        pytest.skip(
            "needs the private clamd started by scripts/clamd.sh, not the one at CLAMD_SOCKET"
        )
    return clamd_instance


@pytest.fixture
def scanner(clamd_instance: ClamdInstance) -> ClamdScanner:
    return ClamdScanner(
        clamd_instance.address,
        timeout_seconds=SCAN_TIMEOUT_SECONDS,
        stream_max_bytes=TEST_UPLOAD_MAX_SIZE_MB * 1024 * 1024,
    )


@pytest.fixture(scope="session")
def corpus_dir() -> Path:
    if not (CORPUS_DIR / "eicar.pdf").is_file():
        pytest.fail(
            f"test corpus not found in {CORPUS_DIR}; "
            "set CORPUS_DIR to the folder that holds eicar.pdf"
        )
    return CORPUS_DIR

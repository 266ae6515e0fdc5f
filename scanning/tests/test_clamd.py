from __future__ import annotations

import shutil
import socket
import subprocess
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from scanning import (
    ClamdScanner,
    ScanFailed,
    ScannerUnavailable,
    TcpAddress,
    UnixAddress,
    parse_address,
    signature_set,
)
from scanning.tests.conftest import ClamdInstance, run_clamd_script, script_environment

# --- Address parsing and arguments -------------------------------------------


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("unix:///run/clamd.sock", UnixAddress("/run/clamd.sock")),
        ("/run/clamd.sock", UnixAddress("/run/clamd.sock")),
        ("var/clamav/clamd.sock", UnixAddress("var/clamav/clamd.sock")),
        ("tcp://127.0.0.1:3310", TcpAddress("127.0.0.1", 3310)),
        ("tcp://localhost:3311", TcpAddress("localhost", 3311)),
        ("tcp://[::1]:3310", TcpAddress("::1", 3310)),
    ],
)
def test_parse_address_valid(address: str, expected: UnixAddress | TcpAddress) -> None:
    assert parse_address(address) == expected


@pytest.mark.parametrize(
    "address",
    [
        "",
        "unix://",
        "tcp://127.0.0.1",
        "tcp://:3310",
        "tcp://127.0.0.1:notaport",
        "http://127.0.0.1:3310",
    ],
)
def test_parse_address_invalid(address: str) -> None:
    with pytest.raises(ValueError, match="invalid clamd address"):
        parse_address(address)


@pytest.mark.parametrize(
    ("timeout_seconds", "stream_max_bytes", "chunk_size"),
    [(0, 1024, 1024), (1.0, 0, 1024), (1.0, 1024, 0), (1.0, 1024, 2**32)],
)
def test_scanner_rejects_invalid_arguments(
    timeout_seconds: float, stream_max_bytes: int, chunk_size: int
) -> None:
    with pytest.raises(ValueError):
        ClamdScanner("unix:///nonexistent.sock", timeout_seconds, stream_max_bytes, chunk_size)


# --- Unreachable clamd ---------------------------------------------------------


def missing_socket_scanner(tmp_path: Path, stream_max_bytes: int = 1024) -> ClamdScanner:
    return ClamdScanner(f"unix://{tmp_path / 'missing.sock'}", 1.0, stream_max_bytes)


def test_missing_socket_ping_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable, match="failed to connect"):
        missing_socket_scanner(tmp_path).ping()


def test_missing_socket_version_unavailable(tmp_path: Path) -> None:
    with pytest.raises(ScannerUnavailable, match="failed to connect"):
        missing_socket_scanner(tmp_path).version()


def test_missing_socket_scan_unavailable(tmp_path: Path) -> None:
    upload = tmp_path / "upload.pdf"
    upload.write_bytes(b"%PDF-1.4\n")

    with pytest.raises(ScannerUnavailable, match="failed to connect"):
        missing_socket_scanner(tmp_path).scan_file(upload)


def test_stale_socket_connection_refused(tmp_path: Path) -> None:
    # A socket file that nothing listens on, as clamd leaves after a crash.
    stale_path = tmp_path / "stale.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as stale:
        stale.bind(str(stale_path))

    with pytest.raises(ScannerUnavailable, match="Connection refused"):
        ClamdScanner(str(stale_path), 1.0, 1024).ping()


def test_closed_tcp_port_unavailable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # The port is free now, so a connection to it is refused.

    with pytest.raises(ScannerUnavailable, match="failed to connect"):
        ClamdScanner(f"tcp://127.0.0.1:{port}", 1.0, 1024).ping()


@pytest.fixture
def silent_listener(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts connections into its backlog and never replies."""
    path = tmp_path / "silent.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as listener:
        listener.bind(str(path))
        listener.listen(4)
        yield str(path)


def test_silent_server_times_out(silent_listener: str) -> None:
    scanner = ClamdScanner(silent_listener, 0.2, 1024)

    with pytest.raises(ScannerUnavailable, match="timed out"):
        scanner.ping()


@pytest.fixture
def closing_listener(tmp_path: Path) -> Iterator[str]:
    """A unix socket that accepts each connection and closes it without a reply."""
    path = tmp_path / "closing.sock"
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(str(path))
    listener.listen(4)
    listener.settimeout(5.0)

    def accept_and_close() -> None:
        try:
            while True:
                connection, _ = listener.accept()
                connection.close()
        except OSError:
            return

    thread = threading.Thread(target=accept_and_close, daemon=True)
    thread.start()
    yield str(path)
    # On Linux, shutdown() wakes the thread blocked in accept(), but close() alone does not.
    listener.shutdown(socket.SHUT_RDWR)
    listener.close()
    thread.join(timeout=5.0)


def test_closed_connection_unavailable(closing_listener: str, tmp_path: Path) -> None:
    scanner = ClamdScanner(closing_listener, 2.0, 1024 * 1024)
    upload = tmp_path / "upload.pdf"
    upload.write_bytes(b"%PDF-1.4\n" * 1000)

    with pytest.raises(ScannerUnavailable):
        scanner.ping()
    with pytest.raises(ScannerUnavailable):
        scanner.scan_file(upload)


# --- Size limit checked before streaming ----------------------------------------


def test_oversize_file_rejected_before_connecting(tmp_path: Path) -> None:
    upload = tmp_path / "upload.pdf"
    upload.write_bytes(b"x" * 1025)
    # The socket does not exist, so ScanFailed (not ScannerUnavailable)
    # shows that the size was checked before any connection was made.
    scanner = missing_socket_scanner(tmp_path, stream_max_bytes=1024)

    with pytest.raises(ScanFailed, match="1025 bytes, over the scan limit of 1024 bytes") as raised:
        scanner.scan_file(upload)

    assert "not sent" in str(raised.value)


def test_file_at_limit_is_streamed(tmp_path: Path) -> None:
    upload = tmp_path / "upload.pdf"
    upload.write_bytes(b"x" * 1024)

    # The size check passes, so the scanner tries to connect.
    with pytest.raises(ScannerUnavailable):
        missing_socket_scanner(tmp_path, stream_max_bytes=1024).scan_file(upload)


def test_missing_upload_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        missing_socket_scanner(tmp_path).scan_file(tmp_path / "missing.pdf")


# --- signature_set --------------------------------------------------------------


def test_signature_set_missing_folder(tmp_path: Path) -> None:
    assert signature_set(tmp_path / "missing") == "none"


def test_signature_set_empty_folder(tmp_path: Path) -> None:
    assert signature_set(tmp_path) == "none"


def test_signature_set_ignores_freshclam_state(tmp_path: Path) -> None:
    (tmp_path / "freshclam.dat").write_bytes(b"state")
    (tmp_path / "mirrors.txt").write_text("notes")

    assert signature_set(tmp_path) == "none"


def test_signature_set_test_only(tmp_path: Path) -> None:
    (tmp_path / "docling-service-test.hdb").write_text("")
    (tmp_path / "docling-service-test.ndb").write_text("")
    (tmp_path / "freshclam.dat").write_bytes(b"state")

    assert signature_set(tmp_path) == "test-only"


@pytest.mark.parametrize(
    "names",
    [
        ["main.cvd", "daily.cvd"],
        ["main.cvd", "daily.cld", "bytecode.cvd"],
        ["main.cld", "daily.cld", "docling-service-test.hdb"],
    ],
)
def test_signature_set_official(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")

    assert signature_set(tmp_path) == "official"


@pytest.mark.parametrize(
    "names",
    [
        ["daily.cvd"],
        ["local.ndb"],
        ["docling-service-test.hdb", "local.ldb"],
    ],
)
def test_signature_set_custom(tmp_path: Path, names: list[str]) -> None:
    for name in names:
        (tmp_path / name).write_bytes(b"")

    assert signature_set(tmp_path) == "custom"


# --- scripts/clamd.sh prepare, without clamd -------------------------------------


def test_prepare_installs_test_signatures(tmp_path: Path) -> None:
    completed = run_clamd_script("prepare", script_environment(tmp_path))

    database_dir = tmp_path / "clamav" / "db"
    assert signature_set(database_dir) == "test-only"
    assert "ONLY TEST SIGNATURES" in completed.stderr
    assert (
        "DoclingService.Test.EICAR-MD5" in (database_dir / "docling-service-test.hdb").read_text()
    )
    assert (
        "DoclingService.Test.EICAR-Body" in (database_dir / "docling-service-test.ndb").read_text()
    )


def test_prepare_writes_limits(tmp_path: Path) -> None:
    run_clamd_script("prepare", script_environment(tmp_path, UPLOAD_MAX_SIZE_MB="200"))

    config = (tmp_path / "clamav" / "clamd.conf").read_text().splitlines()
    for line in [
        "StreamMaxLength 221M",
        "MaxFileSize 884M",
        "MaxScanSize 1768M",
        "AlertExceedsMax yes",
        "AlertEncrypted yes",
        "AlertEncryptedArchive yes",
        "AlertEncryptedDoc yes",
        f"LocalSocket {tmp_path / 'clamav' / 'clamd.sock'}",
    ]:
        assert line in config
    assert not any(line.startswith(("TCPSocket", "User ")) for line in config)


def test_prepare_keeps_official_signatures(tmp_path: Path) -> None:
    database_dir = tmp_path / "clamav" / "db"
    database_dir.mkdir(parents=True)
    for name in ["main.cvd", "daily.cld", "docling-service-test.hdb", "docling-service-test.ndb"]:
        (database_dir / name).write_bytes(b"placeholder")

    completed = run_clamd_script("prepare", script_environment(tmp_path))

    assert (database_dir / "main.cvd").read_bytes() == b"placeholder"
    assert (database_dir / "daily.cld").read_bytes() == b"placeholder"
    assert not (database_dir / "docling-service-test.hdb").exists()
    assert signature_set(database_dir) == "official"
    assert "ONLY TEST SIGNATURES" not in completed.stderr


def test_prepare_rejects_remote_tcp_address(tmp_path: Path) -> None:
    completed = subprocess.run(
        ["scripts/clamd.sh", "prepare"],
        cwd=Path(__file__).resolve().parents[2],
        env=script_environment(tmp_path, CLAMD_ADDRESS="tcp://0.0.0.0:3310"),
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 1
    assert "127.0.0.1 only" in completed.stderr


# --- A real clamd -----------------------------------------------------------------


@pytest.mark.integration
def test_ping(scanner: ClamdScanner) -> None:
    scanner.ping()


@pytest.mark.integration
def test_version(scanner: ClamdScanner) -> None:
    assert scanner.version().startswith("ClamAV ")


@pytest.mark.integration
def test_eicar_found(scanner: ClamdScanner, corpus_dir: Path) -> None:
    result = scanner.scan_file(corpus_dir / "eicar.pdf")

    assert not result.clean
    assert result.signature
    assert "EICAR" in result.signature.upper()
    assert result.raw_reply == f"stream: {result.signature} FOUND"
    assert result.elapsed_ms >= 0


@pytest.mark.integration
def test_eicar_found_in_small_chunks(clamd_instance: ClamdInstance, corpus_dir: Path) -> None:
    scanner = ClamdScanner(clamd_instance.address, 30.0, 1024 * 1024, chunk_size=7)

    result = scanner.scan_file(corpus_dir / "eicar.pdf")

    assert not result.clean
    assert result.signature


@pytest.mark.integration
def test_born_digital_pdf_clean(scanner: ClamdScanner, corpus_dir: Path) -> None:
    result = scanner.scan_file(corpus_dir / "born_digital_lorem_1p.pdf")

    assert result.clean
    assert result.signature is None
    assert result.raw_reply == "stream: OK"


@pytest.mark.integration
def test_empty_file_clean(scanner: ClamdScanner, tmp_path: Path) -> None:
    empty = tmp_path / "empty.pdf"
    empty.write_bytes(b"")

    assert scanner.scan_file(empty).clean


@pytest.mark.integration
def test_encrypted_zip_found(scanner: ClamdScanner, tmp_path: Path) -> None:
    zip_program = shutil.which("zip")
    if zip_program is None:
        pytest.fail("the zip program is missing; install the Debian package zip")
    (tmp_path / "notes.txt").write_text("harmless text\n")
    subprocess.run(
        [zip_program, "-q", "-P", "secret", "encrypted.zip", "notes.txt"],
        cwd=tmp_path,
        check=True,
    )

    result = scanner.scan_file(tmp_path / "encrypted.zip")

    assert not result.clean
    assert result.signature is not None
    assert result.signature.startswith("Heuristics.Encrypted")


@pytest.mark.integration
def test_stream_over_clamd_limit_fails(private_clamd: ClamdInstance, tmp_path: Path) -> None:
    # The client allows more than clamd's StreamMaxLength, as a
    # misconfiguration would, so clamd itself rejects the stream.
    assert private_clamd.stream_max_length_bytes is not None
    too_large = tmp_path / "too_large.pdf"
    with too_large.open("wb") as file:
        file.truncate(private_clamd.stream_max_length_bytes + 1024 * 1024)
    scanner = ClamdScanner(private_clamd.address, 30.0, private_clamd.stream_max_length_bytes * 2)

    with pytest.raises(ScanFailed, match="size limit exceeded"):
        scanner.scan_file(too_large)


@pytest.mark.integration
def test_zip_over_max_scan_size_found(private_clamd: ClamdInstance, tmp_path: Path) -> None:
    # Zeros compress to a small archive that inflates past MaxScanSize.
    assert private_clamd.max_scan_size_bytes is not None
    archive = tmp_path / "zeros.zip"
    zero_chunk = bytes(1024 * 1024)
    member_count = 3
    chunks_per_member = private_clamd.max_scan_size_bytes // len(zero_chunk) // member_count + 1
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zip_file:
        for index in range(member_count):
            with zip_file.open(f"zeros{index}.bin", "w") as member:
                for _ in range(chunks_per_member):
                    member.write(zero_chunk)
    scanner = ClamdScanner(private_clamd.address, 30.0, 1024 * 1024)

    result = scanner.scan_file(archive)

    assert not result.clean
    assert result.signature == "Heuristics.Limits.Exceeded.MaxScanSize"


@pytest.mark.integration
def test_zip_over_max_files_found(private_clamd: ClamdInstance, tmp_path: Path) -> None:
    assert private_clamd.max_files is not None
    archive = tmp_path / "many.zip"
    with zipfile.ZipFile(archive, "w") as zip_file:
        for index in range(private_clamd.max_files + 1):
            zip_file.writestr(f"file{index}.txt", b"x")
    scanner = ClamdScanner(private_clamd.address, 30.0, 16 * 1024 * 1024)

    result = scanner.scan_file(archive)

    assert not result.clean
    assert result.signature == "Heuristics.Limits.Exceeded.MaxFiles"


@pytest.mark.integration
def test_clamav_testfiles_found(scanner: ClamdScanner) -> None:
    testfiles_dir = Path("/usr/share/clamav-testfiles")
    if not testfiles_dir.is_dir():
        pytest.skip("the Debian package clamav-testfiles is not installed")

    clean_files = [
        path.name for path in sorted(testfiles_dir.iterdir()) if scanner.scan_file(path).clean
    ]

    assert clean_files == []


@pytest.mark.integration
def test_tcp_address_scans(private_clamd: ClamdInstance, corpus_dir: Path) -> None:
    assert private_clamd.tcp_address is not None
    scanner = ClamdScanner(private_clamd.tcp_address, 30.0, 1024 * 1024)

    scanner.ping()
    result = scanner.scan_file(corpus_dir / "eicar.pdf")

    assert not result.clean


@pytest.mark.integration
def test_private_clamd_test_only(private_clamd: ClamdInstance) -> None:
    assert private_clamd.data_root is not None
    database_dir = private_clamd.data_root / "clamav" / "db"

    assert signature_set(database_dir) == "test-only"


@pytest.mark.integration
def test_start_prepares_empty_folder(tmp_path: Path) -> None:
    environment = script_environment(tmp_path)
    run_clamd_script("start", environment)
    try:
        ClamdScanner(f"unix://{tmp_path / 'clamav' / 'clamd.sock'}", 5.0, 1024).ping()
        assert signature_set(tmp_path / "clamav" / "db") == "test-only"
    finally:
        run_clamd_script("stop", environment)

    assert not (tmp_path / "clamav" / "clamd.pid").exists()


@pytest.mark.integration
def test_status_reports_running(private_clamd: ClamdInstance) -> None:
    assert private_clamd.data_root is not None

    completed = run_clamd_script("status", script_environment(private_clamd.data_root))

    assert "replies to PING" in completed.stdout
    assert "TEST ONLY" in completed.stdout


# Verdicts for the shared PDF corpus with the private clamd's limits. The
# user-password PDF is flagged because clamd.sh sets AlertEncryptedDoc. The
# owner-password PDF opens with an empty password, so clamd decrypts it.
# scan_rotated_90.pdf checks that MaxFileSize leaves room for inflated PDF
# images: its one image inflates to about 35 MB.
EXPECTED_CORPUS_SIGNATURE_PREFIXES = {
    "eicar.pdf": "DoclingService.Test.EICAR",
    "encrypted_user_password_rc4.pdf": "Heuristics.Encrypted.PDF",
}


@pytest.mark.integration
def test_corpus_verdicts(private_clamd: ClamdInstance, corpus_dir: Path) -> None:
    scanner = ClamdScanner(private_clamd.address, 30.0, 64 * 1024 * 1024)

    signatures = {
        path.name: scanner.scan_file(path).signature for path in sorted(corpus_dir.glob("*.pdf"))
    }

    assert len(signatures) > len(EXPECTED_CORPUS_SIGNATURE_PREFIXES)
    for name, signature in signatures.items():
        expected_prefix = EXPECTED_CORPUS_SIGNATURE_PREFIXES.get(name)
        if expected_prefix is None:
            assert signature is None, f"{name} was reported as {signature}"
        else:
            assert signature is not None, f"{name} was reported clean"
            assert signature.startswith(expected_prefix), f"{name} was reported as {signature}"

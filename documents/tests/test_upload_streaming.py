"""Uploads through a real Gunicorn: big files stream to disk, not to memory."""

import hashlib
import http.client
import os
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import psutil
import pytest

from accounts.keys import create_api_key
from documents.models import Document

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

BOUNDARY = "----docling-service-test-boundary"
BIG_UPLOAD_BYTES = 199 * 1024 * 1024
BLOCK = os.urandom(1024 * 1024)
# Peak memory a 199 MB upload may add to the Gunicorn worker.
MAX_RSS_GROWTH_BYTES = 16 * 1024 * 1024


def pdf_blocks(total: int) -> Iterator[bytes]:
    header = b"%PDF-1.7\n"
    yield header
    remaining = total - len(header)
    while remaining > 0:
        block = BLOCK[:remaining]
        remaining -= len(block)
        yield block


def post_streamed(base_url: str, token: str, total: int) -> tuple[int, bytes, str]:
    """POST a multipart body of `total` file bytes without building it in memory."""
    head = (
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"ingest\"\r\n\r\nfalse\r\n"
        f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.pdf\"\r\n"
        "Content-Type: application/pdf\r\n\r\n"
    ).encode()
    tail = f"\r\n--{BOUNDARY}--\r\n".encode()
    digest = hashlib.sha256()

    def body() -> Iterator[bytes]:
        yield head
        for block in pdf_blocks(total):
            digest.update(block)
            yield block
        yield tail

    url = urlsplit(base_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=120)
    connection.putrequest("POST", "/v1/documents")
    connection.putheader("Authorization", f"Api-Key {token}")
    connection.putheader("Content-Type", f"multipart/form-data; boundary={BOUNDARY}")
    connection.putheader("Content-Length", str(len(head) + total + len(tail)))
    connection.endheaders()
    for chunk in body():
        connection.send(chunk)
    response = connection.getresponse()
    return response.status, response.read(), digest.hexdigest()


def worker_peak_rss(server_pid: int) -> int:
    children = psutil.Process(server_pid).children()
    assert len(children) == 1
    status = Path(f"/proc/{children[0].pid}/status").read_text()
    line = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
    return int(line.split()[1]) * 1024


def test_big_upload_streams_to_disk(gunicorn_server) -> None:
    base_url, server = gunicorn_server
    token = create_api_key("acme").token
    # A small upload first, so imports and buffers are already counted.
    status, body, _ = post_streamed(base_url, token, 1024 * 1024)
    assert status == 201, body
    before = worker_peak_rss(server.pid)

    status, body, sha256 = post_streamed(base_url, token, BIG_UPLOAD_BYTES)
    assert status == 201, body

    growth = worker_peak_rss(server.pid) - before
    print(f"Gunicorn worker peak RSS growth for a {BIG_UPLOAD_BYTES >> 20} MB upload: {growth >> 10} KiB")
    assert growth < MAX_RSS_GROWTH_BYTES
    document = Document.objects.latest("created_at")
    assert document.size_bytes == BIG_UPLOAD_BYTES
    assert document.sha256 == sha256
    assert document.get_quarantine_path().stat().st_size == BIG_UPLOAD_BYTES

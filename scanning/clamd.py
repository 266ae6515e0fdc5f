"""Client for clamd, the ClamAV daemon, over its socket protocol.

This is the only module that talks to clamd. It sends the NUL-terminated
commands zPING, zVERSION and zINSTREAM described in clamd(8), one command per
connection, which clamd closes after its reply.
"""

from __future__ import annotations

import os
import socket
import struct
import time
from dataclasses import dataclass
from typing import BinaryIO
from urllib.parse import urlsplit

DEFAULT_CHUNK_SIZE = 64 * 1024

# A reply is one line such as "stream: OK". The bound only stops a broken
# peer from filling memory.
_MAX_REPLY_BYTES = 64 * 1024

# INSTREAM sends each chunk after its length as a 4-byte big-endian integer
# and ends the stream with a zero length.
_CHUNK_LENGTH = struct.Struct(">I")
_MAX_CHUNK_SIZE = 2**32 - 1

# Error replies that come from the clamd host's state (memory, temporary
# files, thread pool), not from the scanned file, so a retry may succeed.
# Texts from ClamAV 1.4: clamd/server-th.c and cl_strerror() in
# libclamav/others.c.
_TRANSIENT_ERROR_MESSAGES = (
    "Can't allocate memory",
    "Can't create new file",
    "Can't write to file",
    "Can't create temporary file",
    "Can't create temporary directory",
    "Can't map file into memory",
    "Error writing to temporary file",
    "Error processing command",
    "Mutex lock failed",
)


@dataclass(frozen=True)
class ScanResult:
    """Verdict of one INSTREAM scan.

    `signature` is the name clamd reported, such as "Win.Test.EICAR_HDB-1"
    or "Heuristics.Encrypted.Zip", and None when the file is clean.
    `elapsed_ms` is the wall time from connecting to receiving the reply.
    `raw_reply` is clamd's reply without the trailing NUL.
    """

    clean: bool
    signature: str | None
    elapsed_ms: int
    raw_reply: str


class ScannerUnavailable(Exception):
    """clamd could not be reached, timed out or dropped the connection.

    The fault is transient: a retry after a pause may succeed.
    """


class ScanFailed(Exception):
    """clamd cannot scan this file, and a retry would fail the same way.

    Raised for a file over the stream size limit and for a clamd error reply
    that is not transient.
    """


@dataclass(frozen=True)
class UnixAddress:
    path: str


@dataclass(frozen=True)
class TcpAddress:
    host: str
    port: int


def parse_address(address: str) -> UnixAddress | TcpAddress:
    """Parse `unix:///path/clamd.sock`, `tcp://host:port` or a plain socket path.

    Raises ValueError for an empty address, another scheme or a TCP address
    without a port.
    """
    if address.startswith("unix://"):
        path = address[len("unix://") :]
        if not path:
            raise ValueError(f"invalid clamd address {address!r}: the socket path is empty")
        return UnixAddress(path)

    if address.startswith("tcp://"):
        parts = urlsplit(address)
        try:
            port = parts.port
        except ValueError as error:
            raise ValueError(f"invalid clamd address {address!r}: {error}") from error
        if not parts.hostname or port is None:
            raise ValueError(
                f"invalid clamd address {address!r}: expected tcp://HOST:PORT, "
                "for example tcp://127.0.0.1:3310"
            )
        return TcpAddress(parts.hostname, port)

    if not address or "://" in address:
        raise ValueError(
            f"invalid clamd address {address!r}: expected unix:///path/to/clamd.sock, "
            "tcp://HOST:PORT or a socket path"
        )
    return UnixAddress(address)


class ClamdScanner:
    """Scans files with a running clamd.

    `timeout_seconds` bounds each socket operation: connecting, sending one
    chunk and waiting for the reply. The wait for the reply includes clamd's
    scan time, so it must exceed the slowest expected scan (clamd's own
    MaxScanTime defaults to 120 s).

    `stream_max_bytes` must not exceed clamd's StreamMaxLength. Larger files
    are rejected with ScanFailed before anything is sent.
    """

    def __init__(
        self,
        address: str,
        timeout_seconds: float,
        stream_max_bytes: int,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
    ) -> None:
        if timeout_seconds <= 0:
            raise ValueError(f"timeout_seconds must be positive, got {timeout_seconds}")
        if stream_max_bytes <= 0:
            raise ValueError(f"stream_max_bytes must be positive, got {stream_max_bytes}")
        if not 0 < chunk_size <= _MAX_CHUNK_SIZE:
            raise ValueError(
                f"chunk_size must be between 1 and {_MAX_CHUNK_SIZE}, got {chunk_size}"
            )

        self.address = address
        self.timeout_seconds = timeout_seconds
        self.stream_max_bytes = stream_max_bytes
        self.chunk_size = chunk_size
        self._target = parse_address(address)

    def ping(self) -> None:
        """Send PING and raise ScannerUnavailable unless clamd replies PONG."""
        reply = self._run_command(b"PING")
        if reply != "PONG":
            raise ScannerUnavailable(
                f"clamd at {self.address} replied {reply!r} to PING, expected 'PONG'"
            )

    def version(self) -> str:
        """Return clamd's VERSION reply, such as "ClamAV 1.4.6/27480/Fri Dec  4 08:30:00 2026".

        Raises ScannerUnavailable when clamd cannot be reached.
        """
        return self._run_command(b"VERSION")

    def scan_file(self, path: str | os.PathLike[str]) -> ScanResult:
        """Stream the file at `path` to clamd with INSTREAM and return the verdict.

        The file is read and sent in chunks of `chunk_size` bytes. An OSError
        from opening or reading the file itself propagates unchanged.
        """
        with open(path, "rb") as file:
            size = os.fstat(file.fileno()).st_size
            if size > self.stream_max_bytes:
                raise ScanFailed(
                    f"{path} is {size} bytes, over the scan limit of {self.stream_max_bytes} bytes "
                    "(clamd's StreamMaxLength); the file was not sent"
                )

            started = time.monotonic()
            with self._connect() as connection:
                reply = self._send_stream(connection, file, path)
            elapsed_ms = round((time.monotonic() - started) * 1000)

        return self._parse_scan_reply(reply, path, elapsed_ms)

    def _connect(self) -> socket.socket:
        target = self._target
        try:
            if isinstance(target, TcpAddress):
                return socket.create_connection(
                    (target.host, target.port), timeout=self.timeout_seconds
                )

            connection = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                connection.settimeout(self.timeout_seconds)
                connection.connect(target.path)
            except BaseException:
                connection.close()
                raise
            return connection
        except OSError as error:
            raise ScannerUnavailable(
                f"failed to connect to clamd at {self.address}: {error}"
            ) from error

    def _run_command(self, command: bytes) -> str:
        with self._connect() as connection:
            try:
                connection.sendall(b"z" + command + b"\0")
                return self._receive_reply(connection)
            except OSError as error:
                raise ScannerUnavailable(
                    f"{command.decode()} to clamd at {self.address} failed: {error}"
                ) from error

    def _send_stream(
        self, connection: socket.socket, file: BinaryIO, path: str | os.PathLike[str]
    ) -> str:
        sent_bytes = 0
        try:
            connection.sendall(b"zINSTREAM\0")
            while chunk := file.read(self.chunk_size):
                sent_bytes += len(chunk)
                if sent_bytes > self.stream_max_bytes:
                    raise ScanFailed(
                        f"{path} grew past the scan limit of {self.stream_max_bytes} bytes "
                        "while it was being sent"
                    )
                connection.sendall(_CHUNK_LENGTH.pack(len(chunk)) + chunk)
            connection.sendall(_CHUNK_LENGTH.pack(0))
        except (BrokenPipeError, ConnectionResetError) as error:
            # clamd sends an error reply, then closes the connection when it
            # rejects a stream (for example over StreamMaxLength). Read that
            # reply if it arrived, so the caller sees the real cause.
            reply = self._receive_reply_after_close(connection)
            if reply is None:
                raise ScannerUnavailable(
                    f"clamd at {self.address} closed the connection after {sent_bytes} bytes "
                    f"of {path}: {error}"
                ) from error
            return reply
        except OSError as error:
            raise ScannerUnavailable(
                f"sending {path} to clamd at {self.address} failed after {sent_bytes} bytes: "
                f"{error}"
            ) from error

        try:
            return self._receive_reply(connection)
        except OSError as error:
            raise ScannerUnavailable(
                f"waiting for clamd at {self.address} to reply about {path} failed: {error}"
            ) from error

    def _receive_reply(self, connection: socket.socket) -> str:
        """Read one NUL-terminated reply. Raises ScannerUnavailable when it is empty."""
        received = bytearray()
        while len(received) < _MAX_REPLY_BYTES:
            data = connection.recv(4096)
            if not data:
                break
            received += data
            if b"\0" in data:
                break

        reply = bytes(received).split(b"\0", 1)[0].decode("utf-8", errors="replace").strip()
        if not reply:
            raise ScannerUnavailable(
                f"clamd at {self.address} closed the connection without a reply"
            )
        return reply

    def _receive_reply_after_close(self, connection: socket.socket) -> str | None:
        try:
            return self._receive_reply(connection)
        except (OSError, ScannerUnavailable):
            return None

    def _parse_scan_reply(
        self, reply: str, path: str | os.PathLike[str], elapsed_ms: int
    ) -> ScanResult:
        if reply == "stream: OK":
            return ScanResult(clean=True, signature=None, elapsed_ms=elapsed_ms, raw_reply=reply)

        if reply.startswith("stream: ") and reply.endswith(" FOUND"):
            signature = reply[len("stream: ") : -len(" FOUND")]
            return ScanResult(
                clean=False, signature=signature, elapsed_ms=elapsed_ms, raw_reply=reply
            )

        if reply.endswith("ERROR"):
            if "size limit exceeded" in reply:
                raise ScanFailed(
                    f"clamd rejected {path} as too large: {reply!r}. clamd's StreamMaxLength "
                    f"is lower than the client's stream_max_bytes ({self.stream_max_bytes}); "
                    "make them match"
                )
            if any(message in reply for message in _TRANSIENT_ERROR_MESSAGES):
                raise ScannerUnavailable(
                    f"clamd at {self.address} failed to scan {path}: {reply!r}"
                )
            raise ScanFailed(f"clamd failed to scan {path}: {reply!r}")

        raise ScanFailed(
            f"unexpected reply from clamd at {self.address} to INSTREAM of {path}: {reply!r}"
        )

"""Run conversions in a long-lived child process under memory and CPU caps.

Why a child process: a hostile PDF can make pdfium allocate gigabytes just
to open it, and under an address-space cap the process aborts instead of
raising. Capping the Celery pool process itself would kill it, and with it
the task's chance to record what happened. So each Celery pool process
starts one conversion process (a fresh interpreter, not a fork: a fork of a
process whose model thread pools have run can hang). It loads Docling's
models once and converts job after job. Before each conversion it sets its
own soft limits to "what it uses now plus the cap", so the caps apply per
conversion while the models stay loaded. When a conversion breaks a cap or
crashes, only that process dies; the pool process reads how it died (signal, CPU
time, peak memory from wait4), reports it, and starts a new one for the
next job.

This module does not import Docling; the child runs conversion.sandbox_child.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from conversion.interface import ConversionError, ConversionOptions, ConversionResult, EngineConfig

logger = logging.getLogger(__name__)

READY_TIMEOUT_SECONDS = 300.0
# Exit statuses that mean the child stopped itself after a cap was hit.
EXIT_MEMORY_ERROR = 86


@dataclass(frozen=True)
class Limits:
    """Caps for one conversion: extra address space (MiB) and CPU seconds."""

    memory_mb: int
    cpu_seconds: int


class ProcessCrashed(Exception):
    """The conversion process died; `reason` is "memory", "cpu" or "crash"."""

    def __init__(self, reason: str, description: str, details: dict[str, Any]) -> None:
        super().__init__(description)
        self.reason = reason
        self.description = description
        self.details = details


class ConversionProcess:
    """One warm conversion child; restarted after it dies."""

    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._process: subprocess.Popen | None = None
        self._connection: Connection | None = None

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> None:
        """Start the child and wait until its models are loaded."""
        if self._process is not None and self._process.poll() is None:
            return
        parent_end, child_end = socket.socketpair()
        env = {**os.environ, "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2")}
        self._process = subprocess.Popen(
            [sys.executable, "-m", "conversion.sandbox_child", str(child_end.fileno())],
            pass_fds=[child_end.fileno()],
            env=env,
            cwd=Path(__file__).resolve().parent.parent,
        )
        child_end.close()
        self._connection = Connection(parent_end.detach())
        try:
            self._connection.send(("config", self.config))
            if not self._connection.poll(READY_TIMEOUT_SECONDS):
                self.stop()
                raise ConversionError(
                    "CONVERSION_FAILED", "The conversion process did not start in time."
                )
            message = self._connection.recv()
        except (EOFError, OSError):
            raise self._crash_report() from None
        if message[0] == "error":
            self._reap()
            raise message[1]
        logger.info("Conversion process %s ready", self._process.pid)

    def stop(self) -> None:
        """Kill the child (for example when the task hit its time limit)."""
        if self._process is None:
            return
        if self._process.poll() is None:
            self._process.kill()
        self._reap()

    def convert(
        self,
        pdf_path: Path,
        options: ConversionOptions,
        output_json_path: Path,
        document_name: str,
        limits: Limits,
        progress_callback: Callable[[int, int], None] | None = None,
    ) -> ConversionResult:
        """Convert in the child; raise ConversionError or ProcessCrashed."""
        message = ("convert", str(pdf_path), options, str(output_json_path), document_name, limits)
        return self._request(message, limits, progress_callback)

    def export(self, json_path: Path, formats: list[str], limits: Limits) -> dict[str, bytes]:
        """Return the requested exports (markdown, text, doctags) of a Docling JSON file."""
        return self._request(("call", "export", {"json_path": str(json_path), "formats": formats}, limits), limits)

    def chunk(self, json_path: Path, limits: Limits, **settings: Any) -> list[dict[str, Any]]:
        """Return the chunks of a Docling JSON file (see docling_engine.chunk for settings)."""
        return self._request(("call", "chunk", {"json_path": str(json_path), **settings}, limits), limits)

    def _request(
        self,
        message: tuple[Any, ...],
        limits: Limits,
        progress_callback: Callable[[int, int], None] | None = None,
    ) -> Any:
        self.start()
        assert self._connection is not None
        try:
            self._connection.send(message)
            while True:
                reply = self._connection.recv()
                kind = reply[0]
                if kind == "progress" and progress_callback is not None:
                    progress_callback(reply[1], reply[2])
                elif kind == "result":
                    return reply[1]
                elif kind == "error":
                    raise reply[1]
        except (EOFError, OSError):
            raise self._crash_report(limits) from None
        except ConversionError:
            raise
        except BaseException:
            # A time limit or cancel interrupted the wait: the child may be
            # mid-conversion, so it cannot take the next job.
            self.stop()
            raise

    def _reap(self) -> tuple[int, Any] | None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is None:
            return None
        process, self._process = self._process, None
        try:
            _, status, usage = os.wait4(process.pid, 0)
        except ChildProcessError:
            return None
        process.returncode = os.waitstatus_to_exitcode(status)
        return status, usage

    def _crash_report(self, limits: Limits | None = None) -> ProcessCrashed:
        """Reap the dead child and report whether a cap or a crash killed it."""
        waited = self._reap()
        if waited is None:
            return ProcessCrashed("crash", "The conversion process ended unexpectedly.", {})
        status, usage = waited
        cpu_seconds = round(usage.ru_utime + usage.ru_stime, 1)
        peak_mb = usage.ru_maxrss // 1024
        details: dict[str, Any] = {"cpu_seconds": cpu_seconds, "peak_rss_mb": peak_mb}
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            details["signal"] = signal.Signals(number).name
            if limits and number in (signal.SIGXCPU, signal.SIGKILL) and cpu_seconds >= limits.cpu_seconds * 0.9:
                return ProcessCrashed(
                    "cpu",
                    f"The conversion used its CPU time limit of {limits.cpu_seconds} seconds "
                    "(CONVERSION_MAX_CPU_SECONDS).",
                    details,
                )
            # Allocations that fail under the address-space cap end in abort()
            # or a fault inside native code rather than a Python exception.
            if limits and number in (signal.SIGABRT, signal.SIGSEGV, signal.SIGBUS):
                return ProcessCrashed(
                    "memory",
                    f"The conversion process was killed by {details['signal']}, most likely at "
                    f"the memory limit of {limits.memory_mb} MB (CONVERSION_MAX_MEMORY_MB).",
                    details,
                )
            return ProcessCrashed(
                "crash", f"The conversion process was killed by {details['signal']}.", details
            )
        code = os.WEXITSTATUS(status)
        details["exit_code"] = code
        if code == EXIT_MEMORY_ERROR and limits:
            return ProcessCrashed(
                "memory",
                f"The conversion ran out of its memory limit of {limits.memory_mb} MB "
                "(CONVERSION_MAX_MEMORY_MB).",
                details,
            )
        return ProcessCrashed("crash", f"The conversion process exited with status {code}.", details)


_processes: dict[EngineConfig, ConversionProcess] = {}


def conversion_process(config: EngineConfig) -> ConversionProcess:
    """Return this process's conversion child for `config`, created on first use."""
    process = _processes.get(config)
    if process is None:
        process = _processes[config] = ConversionProcess(config)
    return process


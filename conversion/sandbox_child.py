"""The conversion process: load Docling once, then convert job after job.

Started by conversion.sandbox.ConversionProcess with the number of a
socket file descriptor; messages are pickled tuples over that socket.
"""

from __future__ import annotations

import ctypes
import gc
import os
import resource
import signal
import sys
from multiprocessing.connection import Connection
from pathlib import Path

from conversion.interface import ConversionError
from conversion.sandbox import EXIT_MEMORY_ERROR, Limits

PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """Ask the kernel to kill this process when its parent dies.

    A canceled job's pool process is killed with SIGKILL; without this the
    conversion would go on using CPU with nobody waiting for it.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:
        os._exit(1)


def address_space_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[0]) * os.sysconf("SC_PAGE_SIZE")


def apply_limits(limits: Limits) -> None:
    """Cap what the next conversion may add: address space and CPU seconds."""
    used_cpu = resource.getrusage(resource.RUSAGE_SELF)
    cpu_now = int(used_cpu.ru_utime + used_cpu.ru_stime) + 1
    resource.setrlimit(resource.RLIMIT_CPU, (cpu_now + limits.cpu_seconds, resource.RLIM_INFINITY))
    memory = address_space_bytes() + limits.memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (memory, resource.RLIM_INFINITY))


def lift_limits() -> None:
    resource.setrlimit(resource.RLIMIT_CPU, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    resource.setrlimit(resource.RLIMIT_AS, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))


# How allocation failures read in Docling's error messages: numpy's
# "Unable to allocate", Python's MemoryError, C++'s std::bad_alloc.
MEMORY_ERROR_MARKERS = ("MemoryError", "Unable to allocate", "bad_alloc", "out of memory")


def mentions_memory_error(messages: tuple[str, ...]) -> bool:
    return any(marker in message for message in messages for marker in MEMORY_ERROR_MARKERS)


def ran_out_of_memory(error: ConversionError) -> bool:
    """True when Docling reported an allocation failure as a failed conversion."""
    return isinstance(error.__cause__, MemoryError) or mentions_memory_error(error.internal_errors)


def export(json_path: str, formats: list[str]) -> dict[str, bytes]:
    from conversion.docling_engine import export_bytes, load_document

    document = load_document(json_path)
    return {name: export_bytes(document, name) for name in formats}


def chunk(json_path: str, **settings: object) -> list[dict]:
    from conversion import docling_engine

    return docling_engine.chunk(docling_engine.load_document(json_path), **settings)


CALLS = {"export": export, "chunk": chunk}


def serve(connection: Connection) -> None:
    from conversion.docling_engine import get_engine

    _, config = connection.recv()
    try:
        engine = get_engine(config)
        engine.warm_up()
    except ConversionError as exc:
        connection.send(("error", exc))
        return
    # The loaded models are about 590,000 Python objects that live as long as
    # the process. A full collection traverses them all, which took 0.3 s per
    # job (Docling 2.142.1, 2-core EPYC). Once they are frozen, the collection
    # after a job takes about 1 ms and still frees the job's garbage.
    gc.freeze()
    connection.send(("ready",))
    while True:
        try:
            message = connection.recv()
        except EOFError:
            return
        if message[0] == "call":
            _, name, arguments, limits = message
            apply_limits(limits)
            try:
                result = CALLS[name](**arguments)
            except MemoryError:
                os._exit(EXIT_MEMORY_ERROR)
            except Exception as exc:  # noqa: BLE001 - reported to the worker, which fails the job
                lift_limits()
                connection.send(("error", ConversionError(
                    "CONVERSION_FAILED",
                    f"Docling failed to {name} the document ({type(exc).__name__}).",
                    {"exception": type(exc).__name__},
                    internal_errors=(repr(exc),),
                )))
                continue
            lift_limits()
            connection.send(("result", result))
            continue
        _, pdf_path, options, output_path, document_name, limits = message

        def progress(done: int, total: int) -> None:
            connection.send(("progress", done, total))

        apply_limits(limits)
        try:
            result = engine.convert(
                Path(pdf_path),
                options,
                Path(output_path),
                document_name=document_name,
                progress_callback=progress,
            )
        except ConversionError as exc:
            if ran_out_of_memory(exc):
                # The process may be left in a bad state: exit, and let the
                # parent report the memory limit and start a new process.
                os._exit(EXIT_MEMORY_ERROR)
            lift_limits()
            connection.send(("error", exc))
            continue
        except MemoryError:
            os._exit(EXIT_MEMORY_ERROR)
        if mentions_memory_error(result.partial_errors):
            # Docling skipped pages it had no memory for and called the
            # result partial; a document missing pages is not a success.
            os._exit(EXIT_MEMORY_ERROR)
        lift_limits()
        gc.collect()
        connection.send(("result", result))


def main() -> None:
    die_with_parent()
    # No core files from a conversion killed at its CPU limit (SIGXCPU).
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    connection = Connection(int(sys.argv[1]))
    serve(connection)


if __name__ == "__main__":
    main()

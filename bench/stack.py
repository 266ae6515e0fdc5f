"""Start the service's processes privately on loopback, for benchmarks and the load run.

A `Stack` owns every process it starts. These are a Redis server on a free
loopback port (never the machine's shared Redis), a clamd with its own
state folder (through scripts/clamd.sh), Celery workers, Gunicorn with the
production config (deploy/gunicorn.conf.py) and a reaper loop. Each runs
in a process group of its own, and `stop()` ends them by process id, never
by name.

Run `python -m bench.stack reaper` to call `documents.reaper.reap()` every
few seconds; the Stack starts it that way with the service's environment.
"""

from __future__ import annotations

import argparse
import logging
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(os.environ.get("BENCH_CORPUS") or REPO_ROOT.parent / "shared" / "corpus")
# The production settings, so that database connections persist
# (CONN_MAX_AGE) as they do in production; the test settings close them
# after every task. `Stack.env()` turns the rate limits off and allows the
# test-only ClamAV signatures, because these machines cannot download others.
SETTINGS_MODULE = "docling_service.settings.prod"
QUEUE = "docling"
# Only databases with this prefix are ever dropped and re-created.
BENCH_DATABASE_PREFIX = "docling_bench"
WORKER_START_TIMEOUT_SECONDS = 240
STOP_TIMEOUT_SECONDS = 30

logger = logging.getLogger("bench.stack")


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ManagedProcess:
    """A child process in its own process group, with its output in a log file."""

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.process: subprocess.Popen | None = None

    def start(self) -> ManagedProcess:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.argv,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, f"{self.name} was never started"
        return self.process.pid

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def signal_group(self, signum: int) -> None:
        """Send a signal to the process and every process it forked (its group)."""
        try:
            os.killpg(self.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, timeout: float = STOP_TIMEOUT_SECONDS) -> None:
        """Send SIGTERM to the group, then SIGKILL to whatever is left after `timeout` seconds."""
        if self.process is None:
            return
        if self.alive():
            self.signal_group(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning("%s (pid %s) ignored SIGTERM for %s s; killing it", self.name, self.pid, timeout)
        # Pool children may outlive their parent; the group id still reaches them.
        self.signal_group(signal.SIGKILL)
        if self.alive():
            self.process.wait(timeout=10)

    def log_tail(self, characters: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-characters:]
        except OSError:
            return ""


class RedisServer:
    """A private redis-server on a free loopback port, without persistence.

    A restart therefore loses every queued task message, which is the fault
    the load run wants: the reaper must requeue the jobs whose messages vanished.
    """

    def __init__(self, folder: Path, port: int | None = None) -> None:
        self.folder = folder
        self.port = port or free_port()
        self.process: ManagedProcess | None = None

    def url(self, database: int = 0) -> str:
        return f"redis://127.0.0.1:{self.port}/{database}"

    def start(self, timeout: float = 10) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        argv = [
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", str(self.folder), "--daemonize", "no",
        ]
        self.process = ManagedProcess("redis", argv, os.environ, self.folder / "redis.log").start()
        self._wait_ready(timeout)

    def _wait_ready(self, timeout: float) -> None:
        import redis

        client = redis.Redis.from_url(self.url(), socket_connect_timeout=0.5)
        deadline = time.monotonic() + timeout
        while True:
            try:
                client.ping()
                return
            except redis.RedisError:
                if time.monotonic() > deadline or not (self.process and self.process.alive()):
                    tail = self.process.log_tail() if self.process else ""
                    raise RuntimeError(f"redis-server on port {self.port} did not start:\n{tail}") from None
                time.sleep(0.05)
            finally:
                client.close()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop(timeout=10)

    def restart(self, down_seconds: float = 0.0) -> None:
        """Stop the server (losing its data), wait `down_seconds`, start it on the same port."""
        self.stop()
        time.sleep(down_seconds)
        self.start()

    def version(self) -> str:
        import redis

        client = redis.Redis.from_url(self.url())
        try:
            return str(client.info("server")["redis_version"])
        finally:
            client.close()


class Clamd:
    """A clamd run by scripts/clamd.sh with its state under `state_root`/clamav."""

    def __init__(self, state_root: Path) -> None:
        self.state_root = state_root
        self.socket_path = state_root / "clamav" / "clamd.sock"
        self.address = f"unix://{self.socket_path}"
        self.database_dir = state_root / "clamav" / "db"

    def _run(self, command: str) -> None:
        env = {
            **os.environ,
            "DATA_ROOT": str(self.state_root),
            "CLAMD_ADDRESS": self.address,
            "CLAMD_DATABASE_DIR": str(self.database_dir),
            "CLAMD_SKIP_FRESHCLAM": os.environ.get("CLAMD_SKIP_FRESHCLAM", "1"),
        }
        env.pop("CLAMD_SOCKET", None)
        subprocess.run(
            ["bash", str(REPO_ROOT / "scripts" / "clamd.sh"), command],
            cwd=REPO_ROOT, env=env, check=True, timeout=180,
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        self._run("start")

    def stop(self) -> None:
        self._run("stop")


def bench_database_url(name: str) -> str:
    """Return the URL of a benchmark database on the same server as TEST_DATABASE_URL."""
    if not name.startswith(BENCH_DATABASE_PREFIX):
        raise ValueError(f"Benchmark database names must start with {BENCH_DATABASE_PREFIX!r}, got {name!r}.")
    base = os.environ.get("TEST_DATABASE_URL") or "postgres://postgres@127.0.0.1:5432/docling_service"
    parts = urlsplit(base)
    return parts._replace(path=f"/{name}").geturl()


def recreate_database(database_url: str) -> None:
    """Drop and create a benchmark database, then apply the migrations.

    Only names that start with BENCH_DATABASE_PREFIX are accepted, so this
    never drops a database of the service or of another test run.
    """
    import psycopg

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    if not name.startswith(BENCH_DATABASE_PREFIX):
        raise ValueError(f"Refusing to drop {name!r}: not a benchmark database ({BENCH_DATABASE_PREFIX}*).")
    maintenance = parts._replace(path="/postgres").geturl()
    with psycopg.connect(maintenance, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        connection.execute(f'CREATE DATABASE "{name}"')
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "docling_service.settings.test",
        "DATABASE_URL": database_url,
    }
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=REPO_ROOT, env=env, check=True, timeout=300,
    )


def configure_django(env: Mapping[str, str]) -> None:
    """Set up Django in this process with the stack's environment (standalone scripts only)."""
    import django

    os.environ.update(env)
    django.setup()


class Stack:
    """The service on loopback: private Redis and clamd, workers, Gunicorn, a reaper.

    `settings` are extra environment variables for every service process,
    such as JOB_STALE_SECONDS for a fault run.
    """

    def __init__(
        self,
        folder: Path,
        database_url: str,
        data_root: Path,
        settings: Mapping[str, str] | None = None,
        clamd_root: Path | None = None,
    ) -> None:
        self.folder = folder
        self.database_url = database_url
        self.data_root = data_root
        self.settings = dict(settings or {})
        self.redis = RedisServer(folder / "redis")
        # clamd keeps its state outside DATA_ROOT, so that a full DATA_ROOT
        # does not stop clamd from writing its temporary files.
        self.clamd = Clamd(clamd_root or folder / "clamd")
        self.workers: dict[str, ManagedProcess] = {}
        self.gunicorn: ManagedProcess | None = None
        self.base_url = ""
        self.reaper: ManagedProcess | None = None
        self._celery = None
        self.secret_key = self.settings.pop("DJANGO_SECRET_KEY", "") or secrets.token_urlsafe(32)

    # --- environment --------------------------------------------------------

    def env(self, **overrides: str) -> dict[str, str]:
        """Return the environment of a service process."""
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": SETTINGS_MODULE,
            "DATABASE_URL": self.database_url,
            "DATA_ROOT": str(self.data_root),
            "CELERY_BROKER_URL": self.redis.url(0),
            "CACHE_URL": self.redis.url(1),
            "CELERY_QUEUE": QUEUE,
            "CLAMD_ADDRESS": self.clamd.address,
            "CLAMD_DATABASE_DIR": str(self.clamd.database_dir),
            "DJANGO_SECRET_KEY": self.secret_key,
            "ALLOW_TEST_SIGNATURES": "true",
            "RATE_LIMIT_BURST": "",
            "RATE_LIMIT_SUSTAINED": "",
            "RATE_LIMIT_UPLOAD_BURST": "",
            "RATE_LIMIT_UPLOAD_SUSTAINED": "",
            "LOG_FORMAT": "plain",
            "PYTHONUNBUFFERED": "1",
        }
        env.update(self.settings)
        env.update(overrides)
        return env

    def ping_workers(self, hostnames: list[str]) -> set[str]:
        """Send a Celery ping on the private broker; return the hostnames that replied."""
        from celery import Celery

        if self._celery is None:
            self._celery = Celery("bench", set_as_current=False)
            # Celery prefers this process's CELERY_BROKER_URL variable (the
            # test suite's broker) to a configured broker_url, but not to
            # explicit read and write URLs.
            self._celery.conf.broker_read_url = self.redis.url(0)
            self._celery.conf.broker_write_url = self.redis.url(0)
        replies = self._celery.control.ping(destination=hostnames, timeout=1.0)
        return {name for reply in replies for name in reply}

    # --- lifecycle ----------------------------------------------------------

    def start_infrastructure(self) -> None:
        self.data_root.mkdir(parents=True, exist_ok=True)
        self.redis.start()
        self.clamd.start()

    def start_worker(
        self, name: str, concurrency: int = 1, wait: bool = True, **env_overrides: str
    ) -> ManagedProcess:
        """Start a Celery worker on the private broker and, unless `wait` is False, wait for its ping reply."""
        hostname = f"{name}@{socket.gethostname()}"
        argv = [
            sys.executable, "-m", "celery", "-A", "docling_service", "worker",
            "--loglevel", "INFO", "--concurrency", str(concurrency), "--queues", QUEUE,
            "--without-mingle", "--without-gossip", "--hostname", hostname,
        ]
        worker = ManagedProcess(hostname, argv, self.env(**env_overrides), self.folder / "logs" / f"{name}.log")
        self.workers[hostname] = worker.start()
        if wait:
            self.wait_for_workers([worker])
        return worker

    def wait_for_workers(self, workers: list[ManagedProcess], timeout: float = WORKER_START_TIMEOUT_SECONDS) -> None:
        """Wait until every worker replies to a ping, which it does once its pool processes have loaded Docling."""
        pending = {worker.name: worker for worker in workers}
        deadline = time.monotonic() + timeout
        while pending:
            for name, worker in list(pending.items()):
                if not worker.alive():
                    raise RuntimeError(f"Worker {name} exited at start-up:\n{worker.log_tail()}")
            try:
                answered = self.ping_workers(list(pending))
            except Exception as exc:  # noqa: BLE001 - the broker may be restarting; ask again
                logger.warning("Ping of workers %s failed: %s", sorted(pending), exc)
                answered = set()
                time.sleep(1)
            for name in answered:
                pending.pop(name, None)
            if pending and time.monotonic() > deadline:
                raise RuntimeError(f"Workers {sorted(pending)} did not reply to a ping within {timeout} s; see their logs in {self.folder / 'logs'}.")

    def kill_worker(self, worker: ManagedProcess) -> None:
        """SIGKILL a worker and its pool processes at once, as a crash or an OOM kill would."""
        worker.signal_group(signal.SIGKILL)
        if worker.process is not None:
            worker.process.wait(timeout=10)
        self.workers.pop(worker.name, None)

    def start_gunicorn(self, workers: int = 2, threads: int = 4) -> str:
        """Start Gunicorn with deploy/gunicorn.conf.py on a free loopback port; return its base URL."""
        import requests

        port = free_port()
        env = self.env(
            GUNICORN_BIND=f"127.0.0.1:{port}",
            GUNICORN_WORKERS=str(workers),
            GUNICORN_THREADS=str(threads),
            GUNICORN_TIMEOUT="300",
        )
        argv = [
            sys.executable, "-m", "gunicorn", "docling_service.wsgi:application",
            "-c", str(REPO_ROOT / "deploy" / "gunicorn.conf.py"),
        ]
        self.gunicorn = ManagedProcess("gunicorn", argv, env, self.folder / "logs" / "gunicorn.log").start()
        self.base_url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self.base_url
            except requests.RequestException:
                pass
            if not self.gunicorn.alive() or time.monotonic() > deadline:
                raise RuntimeError(f"Gunicorn did not start:\n{self.gunicorn.log_tail()}")
            time.sleep(0.1)

    def start_reaper(self, interval_seconds: float, max_seconds: float) -> ManagedProcess:
        """Run documents.reaper.reap() every `interval_seconds` for at most `max_seconds`."""
        argv = [
            sys.executable, "-m", "bench.stack", "reaper",
            "--interval", str(interval_seconds), "--max-seconds", str(max_seconds),
        ]
        self.reaper = ManagedProcess("reaper", argv, self.env(), self.folder / "logs" / "reaper.log").start()
        return self.reaper

    def stop(self) -> None:
        """Stop every process this stack started, then clamd and Redis."""
        processes = [self.reaper, self.gunicorn, *self.workers.values()]
        for process in processes:
            if process is not None:
                process.stop()
        self.workers.clear()
        if self._celery is not None:
            self._celery.close()
            self._celery = None
        try:
            self.clamd.stop()
        except subprocess.SubprocessError as exc:
            logger.warning("Stopping clamd failed: %s", exc)
        self.redis.stop()

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextmanager
def tmpfs(mount_point: Path, size_mb: int) -> Iterator[Path]:
    """Mount a tmpfs of `size_mb` MiB at `mount_point` for the block; unmount it afterwards.

    Needs root (or CAP_SYS_ADMIN). Raises PermissionError when mounting is
    not allowed, so a caller can skip instead of failing.
    """
    mount_point.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size_mb}m,mode=0755", "tmpfs", str(mount_point)],
        capture_output=True, text=True, timeout=30,
    )
    if result.returncode != 0:
        raise PermissionError(f"Cannot mount a tmpfs at {mount_point}: {result.stderr.strip()}")
    try:
        yield mount_point
    finally:
        subprocess.run(["umount", str(mount_point)], check=False, timeout=60)
        if os.path.ismount(mount_point):
            subprocess.run(["umount", "-l", str(mount_point)], check=False, timeout=60)


def fill_disk(folder: Path, leave_bytes: int) -> Path:
    """Allocate a filler file in `folder` until its file system has about `leave_bytes` free."""
    filler = folder / ".bench-filler"
    stats = os.statvfs(folder)
    size = max(0, stats.f_bavail * stats.f_frsize - leave_bytes)
    with filler.open("ab") as handle:
        try:
            # Instant on tmpfs and ext4, so a running conversion cannot finish first.
            os.posix_fallocate(handle.fileno(), 0, size)
        except OSError:
            block = b"\0" * (1024 * 1024)
            while size > 0:
                try:
                    size -= handle.write(block[:size])
                    handle.flush()
                except OSError:
                    break
    return filler


def run_reaper(interval: float, max_seconds: float) -> None:
    """Call reap() every `interval` seconds until `max_seconds` pass or SIGTERM arrives."""
    import django

    django.setup()
    from documents.reaper import reap

    reaper_logger = logging.getLogger("bench.reaper")
    stopping = False

    def on_term(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, on_term)
    deadline = time.monotonic() + max_seconds
    while not stopping and time.monotonic() < deadline:
        try:
            counts = reap()
        except Exception:  # noqa: BLE001 - a failed pass is logged and the next one runs
            reaper_logger.exception("Reaper pass failed")
        else:
            if counts["requeued"] or counts["failed"]:
                reaper_logger.warning("Reaper pass: %s", counts)
        time.sleep(interval)


def main() -> None:
    parser = argparse.ArgumentParser(description="Helpers the benchmark stack runs as processes.")
    commands = parser.add_subparsers(dest="command", required=True)
    reaper = commands.add_parser("reaper", help="call documents.reaper.reap() in a loop")
    reaper.add_argument("--interval", type=float, default=5.0, help="seconds between passes")
    reaper.add_argument("--max-seconds", type=float, default=3600.0, help="stop after this many seconds")
    arguments = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if arguments.command == "reaper":
        run_reaper(arguments.interval, arguments.max_seconds)


if __name__ == "__main__":
    main()

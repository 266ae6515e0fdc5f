"""Celery worker status for the dashboard: inspect replies, heartbeats, queue depth.

Two sources are merged, so the page still responds when one is missing:

- `inspect` (ping, then active and stats for the workers that replied),
  with a short timeout, cached for INSPECT_CACHE_SECONDS in the Django
  cache so that many open dashboards cost one broadcast per interval;
- heartbeats that every worker writes to the Django cache from Celery's
  `heartbeat_sent` signal (every 2 s by default, written at most every
  HEARTBEAT_WRITE_SECONDS), with the pool, concurrency, active task count
  and memory of the worker.

Only counts leave this module: no task arguments, because workers are
shared by every tenant.
"""

import logging
import os
import time
from datetime import UTC, datetime
from typing import Any

import redis
from django.conf import settings
from django.core.cache import cache
from kombu.exceptions import OperationalError

logger = logging.getLogger(__name__)

INSPECT_TIMEOUT_SECONDS = 1.0
INSPECT_CACHE_SECONDS = 5
# A copy of the last inspect result, used while another request refreshes it.
INSPECT_LAST_SECONDS = 60
HEARTBEAT_WRITE_SECONDS = 5
# A worker whose last heartbeat is older than this is shown as offline.
HEARTBEAT_STALE_SECONDS = 30
# Heartbeats of a stopped worker stay listed (as offline) this long.
HEARTBEAT_KEEP_SECONDS = 600
BROKER_TIMEOUT_SECONDS = 1.0

INSPECT_CACHE_KEY = "dashboard:inspect"
INSPECT_LAST_KEY = "dashboard:inspect:last"
INSPECT_LOCK_KEY = "dashboard:inspect:lock"
HEARTBEAT_INDEX_KEY = "dashboard:heartbeats"
HEARTBEAT_KEY_PREFIX = "dashboard:heartbeat:"

# kombu's Redis transport keeps messages with a priority in extra lists
# named queue + "\x06\x16" + step, for the default steps 3, 6 and 9.
KOMBU_PRIORITY_SEPARATOR = "\x06\x16"
KOMBU_PRIORITY_STEPS = (3, 6, 9)

BROKER_UNAVAILABLE_MESSAGE = (
    "The Celery broker (Redis) did not respond, so worker and queue status are "
    "unknown. Check that Redis is running and reachable at CELERY_BROKER_URL."
)


# --- heartbeats, written by the worker ---------------------------------------

# Set in the worker's main process by record_worker_ready.
_worker_info: dict[str, Any] = {}
_last_write = 0.0


def heartbeat_key(hostname: str) -> str:
    return f"{HEARTBEAT_KEY_PREFIX}{hostname}"


def record_worker_ready(sender: Any = None, **kwargs: Any) -> None:
    """Remember the worker's pool and concurrency and write the first heartbeat.

    Connected to Celery's `worker_ready` signal, whose sender is the consumer.
    """
    controller = getattr(sender, "controller", None)
    pool = getattr(controller, "pool", None)
    _worker_info.update(
        hostname=getattr(sender, "hostname", "") or getattr(controller, "hostname", ""),
        pool=pool_name(type(pool).__module__ if pool is not None else ""),
        concurrency=getattr(controller, "concurrency", None),
    )
    write_heartbeat(force=True)


def record_heartbeat(sender: Any = None, **kwargs: Any) -> None:
    """Write the worker's heartbeat; connected to Celery's `heartbeat_sent` signal."""
    write_heartbeat()


def record_worker_shutdown(sender: Any = None, **kwargs: Any) -> None:
    """Drop the worker's heartbeat so it leaves the dashboard when it stops cleanly."""
    hostname = _worker_info.get("hostname")
    if not hostname:
        return
    try:
        cache.delete(heartbeat_key(hostname))
    except redis.RedisError as exc:
        logger.warning("Could not remove the heartbeat of %s: %s", hostname, exc)


def write_heartbeat(force: bool = False) -> None:
    """Store this worker's status in the cache, at most every HEARTBEAT_WRITE_SECONDS.

    Runs in the worker's event loop, so it never raises: a failed write is
    logged and the next heartbeat tries again.
    """
    global _last_write
    hostname = _worker_info.get("hostname")
    if not hostname:
        return
    now = time.monotonic()
    if not force and now - _last_write < HEARTBEAT_WRITE_SECONDS:
        return
    _last_write = now
    from celery.worker.state import active_requests, all_total_count

    try:
        record = {
            "hostname": hostname,
            "pid": os.getpid(),
            "pool": _worker_info.get("pool"),
            "concurrency": _worker_info.get("concurrency"),
            "active_tasks": len(active_requests),
            "processed": all_total_count[0],
            "rss_mb": worker_rss_mb(),
            "sent_at": datetime.now(UTC).isoformat(),
        }
        cache.set(heartbeat_key(hostname), record, timeout=HEARTBEAT_KEEP_SECONDS)
        index = cache.get(HEARTBEAT_INDEX_KEY) or []
        if hostname not in index:
            # Two workers starting together may overwrite each other's entry;
            # the loser adds itself again on its next heartbeat.
            cache.set(HEARTBEAT_INDEX_KEY, sorted({*index, hostname}), timeout=None)
    except Exception as exc:  # noqa: BLE001 - must not break the worker's event loop
        logger.warning("Could not write the heartbeat of %s: %s", hostname, exc)


def worker_rss_mb() -> float | None:
    """Return the resident memory of this process and its pool processes, in MiB.

    Pages shared between the main process and its forked children are
    counted once per process, so this is an upper bound.
    """
    import psutil

    try:
        process = psutil.Process()
        total = process.memory_info().rss
        for child in process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except psutil.Error:
                continue
    except psutil.Error:
        return None
    return round(total / (1024 * 1024), 1)


def pool_name(module: str) -> str:
    """Turn 'celery.concurrency.prefork' or 'celery.concurrency.prefork:TaskPool' into 'prefork'."""
    module = module.split(":", 1)[0]
    return module.rsplit(".", 1)[-1] if module else ""


def read_heartbeats() -> dict[str, dict[str, Any]]:
    """Return the stored heartbeats by hostname, pruning the index of expired ones."""
    index = cache.get(HEARTBEAT_INDEX_KEY) or []
    if not index:
        return {}
    found = cache.get_many([heartbeat_key(hostname) for hostname in index])
    heartbeats = {record["hostname"]: record for record in found.values()}
    if len(heartbeats) < len(index):
        cache.set(HEARTBEAT_INDEX_KEY, sorted(heartbeats), timeout=None)
    return heartbeats


def heartbeat_age_seconds(record: dict[str, Any], now: datetime) -> float:
    sent_at = datetime.fromisoformat(record["sent_at"])
    return (now - sent_at).total_seconds()


# --- broker: queue depth and inspect ------------------------------------------

class BrokerUnavailable(Exception):
    """The broker did not respond."""


def queue_depths() -> dict[str, int]:
    """Return the number of messages waiting in each queue, read from Redis.

    Raises BrokerUnavailable when Redis does not respond within
    BROKER_TIMEOUT_SECONDS, and ValueError for a broker that is not Redis.
    """
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"Queue depth needs a Redis broker; the broker is {url.split(':', 1)[0]}.")
    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    names = [queue, *(f"{queue}{KOMBU_PRIORITY_SEPARATOR}{step}" for step in KOMBU_PRIORITY_STEPS)]
    client = redis.Redis.from_url(
        url,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
    )
    try:
        pipeline = client.pipeline(transaction=False)
        for name in names:
            pipeline.llen(name)
        lengths = pipeline.execute()
    except redis.RedisError as exc:
        raise BrokerUnavailable(str(exc)) from exc
    finally:
        client.close()
    return {queue: int(sum(lengths))}


def inspect_workers(expected_workers: int) -> dict[str, dict[str, Any]]:
    """Ask every worker for ping, active and stats; return a summary by hostname.

    `inspect` waits for its whole timeout unless it is given the number of
    replies to expect. So the ping uses the number of workers with a fresh
    heartbeat as its limit, and active and stats go only to the workers that
    replied.
    A worker started since the last heartbeat read can be missed by one
    refresh. Raises BrokerUnavailable when the broker cannot be reached.
    """
    from docling_service.celery import app

    try:
        pings = app.control.inspect(
            timeout=INSPECT_TIMEOUT_SECONDS, limit=expected_workers or None
        ).ping() or {}
        hostnames = sorted(pings)
        if not hostnames:
            return {}
        inspector = app.control.inspect(
            destination=hostnames, timeout=INSPECT_TIMEOUT_SECONDS, limit=len(hostnames)
        )
        active = inspector.active() or {}
        stats = inspector.stats() or {}
    except (OperationalError, OSError, redis.RedisError) as exc:
        raise BrokerUnavailable(str(exc)) from exc

    workers = {}
    for hostname in hostnames:
        pool = (stats.get(hostname) or {}).get("pool") or {}
        tasks = active.get(hostname)
        workers[hostname] = {
            "active_tasks": len(tasks) if tasks is not None else None,
            "pool": pool_name(pool.get("implementation", "")) or None,
            "concurrency": pool.get("max-concurrency"),
        }
    return workers


def cached_inspect(expected_workers: int) -> dict[str, Any]:
    """Return the inspect result, refreshed at most every INSPECT_CACHE_SECONDS.

    One request at a time refreshes it (a cache lock); the others use the
    last result meanwhile. The result is {"workers": {...}, "error": str|None,
    "checked_at": iso}.
    """
    cached = cache.get(INSPECT_CACHE_KEY)
    if cached is not None:
        return cached
    if not cache.add(INSPECT_LOCK_KEY, 1, timeout=int(INSPECT_TIMEOUT_SECONDS * 3) + 1):
        return cache.get(INSPECT_LAST_KEY) or {"workers": {}, "error": None, "checked_at": None}
    try:
        result = run_inspect(expected_workers)
        cache.set(INSPECT_CACHE_KEY, result, timeout=INSPECT_CACHE_SECONDS)
        cache.set(INSPECT_LAST_KEY, result, timeout=INSPECT_LAST_SECONDS)
    finally:
        cache.delete(INSPECT_LOCK_KEY)
    return result


def run_inspect(expected_workers: int) -> dict[str, Any]:
    checked_at = datetime.now(UTC).isoformat()
    try:
        workers = inspect_workers(expected_workers)
    except BrokerUnavailable as exc:
        logger.warning("Celery inspect failed: %s", exc)
        return {"workers": {}, "error": BROKER_UNAVAILABLE_MESSAGE, "checked_at": checked_at}
    return {"workers": workers, "error": None, "checked_at": checked_at}


# --- the merged view ------------------------------------------------------------

def worker_status(now: datetime | None = None) -> dict[str, Any]:
    """Build the body of GET /v1/dashboard/workers.

    An unreachable broker or cache (Redis connection errors) is reported in
    `errors`, and the rest of the body is filled from what could be read.
    """
    now = now or datetime.now(UTC)
    errors: list[str] = []

    try:
        heartbeats = read_heartbeats()
    except redis.RedisError as exc:
        logger.warning("Could not read worker heartbeats from the cache: %s", exc)
        heartbeats = {}
        errors.append("Worker heartbeats could not be read from the cache.")

    queue = settings.CELERY_TASK_DEFAULT_QUEUE
    broker_ok = True
    try:
        queues: dict[str, int | None] = dict(queue_depths())
    except BrokerUnavailable as exc:
        logger.warning("Could not read the queue depth from the broker: %s", exc)
        queues = {queue: None}
        broker_ok = False
        errors.append(BROKER_UNAVAILABLE_MESSAGE)
    except ValueError as exc:
        queues = {queue: None}
        errors.append(str(exc))

    fresh = [
        hostname
        for hostname, record in heartbeats.items()
        if heartbeat_age_seconds(record, now) <= HEARTBEAT_STALE_SECONDS
    ]
    inspected: dict[str, Any] = {"workers": {}, "error": None, "checked_at": None}
    if broker_ok:
        try:
            inspected = cached_inspect(len(fresh))
        except redis.RedisError as exc:
            logger.warning("Could not use the cache for inspect results: %s", exc)
            inspected = run_inspect(len(fresh))
        if inspected["error"] and inspected["error"] not in errors:
            errors.append(inspected["error"])

    rows = merge_workers(inspected["workers"], heartbeats, now)
    return {
        "workers_online": sum(1 for row in rows if row["online"]),
        "workers": rows,
        "queues": queues,
        "inspected_at": inspected["checked_at"],
        "errors": errors,
    }


def merge_workers(
    inspected: dict[str, dict[str, Any]], heartbeats: dict[str, dict[str, Any]], now: datetime
) -> list[dict[str, Any]]:
    """Combine inspect replies and heartbeats into one row per worker.

    A worker is online when it replied to ping or its heartbeat is fresh.
    Inspect values win where both exist, except memory, which only the
    heartbeat measures across the pool processes.
    """
    rows = []
    for hostname in sorted({*inspected, *heartbeats}):
        reply = inspected.get(hostname, {})
        beat = heartbeats.get(hostname, {})
        age = heartbeat_age_seconds(beat, now) if beat else None
        fresh = age is not None and age <= HEARTBEAT_STALE_SECONDS
        rows.append(
            {
                "hostname": hostname,
                "online": hostname in inspected or fresh,
                "answered_ping": hostname in inspected,
                "active_tasks": first_known("active_tasks", reply, beat),
                "pool": first_known("pool", reply, beat),
                "concurrency": first_known("concurrency", reply, beat),
                "rss_mb": beat.get("rss_mb"),
                "last_heartbeat": beat.get("sent_at"),
                "heartbeat_age_seconds": None if age is None else round(max(age, 0.0), 1),
            }
        )
    return rows


def first_known(field: str, *sources: dict[str, Any]) -> Any:
    """Return the first value of `field` that is not None in the sources."""
    for source in sources:
        value = source.get(field)
        if value is not None:
            return value
    return None

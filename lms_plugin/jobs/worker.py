"""The worker: an in-process polling loop, or RQ on Redis fed by a dispatcher.

Either way the outbox table stays the single source of truth: the loop claims rows itself;
in RQ mode the dispatcher only hands job *ids* to RQ and the RQ job claims the row with the
same locking, so an id queued twice (two dispatchers, a Redis hiccup) still runs once.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import uuid
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from typing import Any, Protocol

from flask import Flask, current_app, has_app_context
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from lms_plugin.config import DEFAULT_JOB_QUEUE
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs import heartbeat, schedule, services

log = logging.getLogger(__name__)

DEFAULT_QUEUE = DEFAULT_JOB_QUEUE


def queue_name() -> str:
    """The RQ queue: ``LMS_JOB_QUEUE`` (parsed by ``load_config``) or the default."""
    return current_app.config.get("LMS_JOB_QUEUE") or DEFAULT_QUEUE


def make_worker_id() -> str:
    """Unique per process and start: the lease owner recorded in ``locked_by``."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


# --------------------------------------------------------------------------- heartbeat


class Pulse:
    """A worker's heartbeat, written at most every ``heartbeat.beat_interval()`` seconds.

    Commits its own small transaction (the worker is an edge). A failed beat (database
    restarting, migrations not applied) is logged once per streak and never stops the
    worker: sending grades matters more than saying so.
    """

    def __init__(self, worker_id: str, kind: str) -> None:
        self.worker_id = worker_id
        self.kind = kind
        self._last: datetime | None = None
        self._failing = False

    def __call__(self, now: datetime | None = None) -> None:
        now = now or utcnow()
        if self._last is not None and \
                abs((now - self._last).total_seconds()) < heartbeat.beat_interval():
            return
        try:
            db.session.rollback()
            heartbeat.beat(self.worker_id, self.kind, now)
            db.session.commit()
        except SQLAlchemyError as exc:
            db.session.rollback()
            if not self._failing:
                log.warning("worker %s: heartbeat not recorded (%s)", self.worker_id,
                            str(exc).splitlines()[0])
            self._failing = True
            return
        self._failing = False
        self._last = now


# --------------------------------------------------------------------------- in-process


def drain(worker_id: str, *, limit: int = 50, now: Callable[[], datetime] = utcnow,
          rng: random.Random | None = None) -> Counter[str]:
    """Run jobs until none is due (``lms-plugin worker --once``); outcome counts.

    A job that is due again at once (a zero delay) is tried at most twice per drain, so the
    drain always ends.
    """
    totals: Counter[str] = Counter()
    seen: set[int] = set()
    while True:
        schedule.enqueue_due(now())
        report = services.run_due_jobs(worker_id, limit, now(), rng=rng)
        totals.update(report.outcomes)
        if report.claimed == 0 or set(report.job_ids) <= seen:
            return totals
        seen.update(report.job_ids)


def run_loop(worker_id: str, stop: threading.Event, *, limit: int = 50,
             poll_interval: float | None = None,
             now: Callable[[], datetime] = utcnow, kind: str = "loop") -> Counter[str]:
    """Poll the outbox until ``stop`` is set (SIGTERM/SIGINT); sleep when there is no work.

    A stop request lets the job in hand finish and record its outcome, then returns. Beats
    (``worker_heartbeat``, as ``kind``) so pages can tell whether any worker runs.
    """
    interval = services.setting("LMS_JOB_POLL_INTERVAL") if poll_interval is None \
        else poll_interval
    pulse = Pulse(worker_id, kind)
    totals: Counter[str] = Counter()
    while not stop.is_set():
        pulse(now())
        try:
            schedule.enqueue_due(now())
            report = services.run_due_jobs(worker_id, limit, now())
        except OperationalError as exc:  # database restarting: wait, then carry on
            log.warning("worker %s: database unavailable (%s); retrying", worker_id,
                        str(exc).splitlines()[0])
            db.session.rollback()
            stop.wait(interval)
            continue
        totals.update(report.outcomes)
        if report.claimed == 0:
            stop.wait(interval)
    return totals


# --------------------------------------------------------------------------- RQ on Redis


class QueueLike(Protocol):
    def enqueue(self, f: Any, *args: Any, **kwargs: Any) -> Any: ...


def dispatch(queue: QueueLike, redis: Any, *, now: datetime | None = None,
             limit: int = 500) -> list[int]:
    """Hand due outbox ids to RQ; the ids queued.

    A short-lived Redis marker per job state keeps several dispatchers (and repeated
    polls) from queueing the same attempt over and over; it expires after the lease, so an
    id lost from Redis is queued again. Duplicates that slip through are harmless: the RQ
    job claims the row and does nothing if it is not due.
    """
    now = now or utcnow()
    schedule.enqueue_due(now)
    lease = int(services.setting("LMS_JOB_LEASE")) or 1
    queued = []
    name = getattr(queue, "name", DEFAULT_QUEUE)
    for job_id, version in services.due_job_ids(now, limit):
        if redis.set(f"lms:outbox:dispatched:{name}:{job_id}:{version}", "1", nx=True,
                     ex=lease):
            queue.enqueue(rq_run_job, job_id, job_timeout=lease, result_ttl=0,
                          failure_ttl=24 * 3600)
            queued.append(job_id)
    return queued


_rq_app: Flask | None = None


def rq_run_job(job_id: int) -> str | None:
    """The RQ job: claim outbox row ``job_id`` and run it (no-op if taken or not due).

    Inside ``lms-plugin worker`` the app context is already there; under a bare ``rq worker``
    one application is created per process.
    """
    global _rq_app
    if has_app_context():
        return services.run_job(job_id, _rq_worker_id())
    if _rq_app is None:
        from lms_plugin import create_app

        _rq_app = create_app()
    with _rq_app.app_context():
        return services.run_job(job_id, _rq_worker_id())


_RQ_WORKER_ID = make_worker_id()


def _rq_worker_id() -> str:
    return f"rq:{_RQ_WORKER_ID}"


def run_rq(redis_url: str, stop: threading.Event, *, once: bool = False,
           queue_name: str = DEFAULT_QUEUE, poll_interval: float | None = None) -> None:
    """Dispatcher thread + RQ worker in this process (more RQ workers may run elsewhere).

    With ``once``: dispatch everything due, run the queue in burst mode, repeat until
    nothing is due.
    """
    from redis import Redis
    from rq import Queue, SimpleWorker

    redis = Redis.from_url(redis_url)
    queue = Queue(queue_name, connection=redis)
    # SimpleWorker runs jobs in this process: the app, its engine and pool are reused
    # instead of being forked (and duplicated) per job.
    worker = SimpleWorker([queue], connection=redis, name=f"lms-{uuid.uuid4().hex[:8]}")
    if once:
        Pulse(_rq_worker_id(), "once")()
        while dispatch(queue, redis):
            worker.work(burst=True, with_scheduler=False)
        return

    app = current_app._get_current_object()  # type: ignore[attr-defined]
    interval = services.setting("LMS_JOB_POLL_INTERVAL") if poll_interval is None \
        else poll_interval

    pulse = Pulse(_rq_worker_id(), "rq")

    def _dispatcher() -> None:
        with app.app_context():
            while not stop.is_set():
                pulse()
                try:
                    dispatch(queue, redis)
                except Exception:  # keep dispatching through a database or Redis blip
                    log.exception("outbox dispatcher: pass failed")
                    db.session.rollback()
                stop.wait(interval)

    thread = threading.Thread(target=_dispatcher, name="outbox-dispatcher", daemon=True)
    thread.start()
    try:
        worker.work(with_scheduler=False)  # RQ handles SIGTERM/SIGINT as a warm shutdown
    finally:
        stop.set()
        thread.join(timeout=5)


# --------------------------------------------------------------------------- embedded


class EmbeddedWorker:
    """The outbox loop in a daemon thread of the development server (``lms-plugin run``).

    ``stop()`` lets the job in hand finish, then joins the thread; the process exiting
    ends it anyway (a job cut off mid-flight is taken over after ``LMS_JOB_LEASE``).
    """

    def __init__(self, worker_id: str, thread: threading.Thread,
                 stop_event: threading.Event) -> None:
        self.worker_id = worker_id
        self.thread = thread
        self._stop = stop_event

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self.thread.join(timeout)


def start_embedded(app: Flask, *, poll_interval: float | None = None,
                   limit: int = 50) -> EmbeddedWorker:
    """Start the in-process outbox loop beside a development server; returns its handle.

    Always the in-process loop, even with ``REDIS_URL`` (RQ's worker needs the main thread
    for its signals; the outbox table is the source of truth either way, so the RQ workers
    of a production setup and this loop never run a job twice). An unexpected error is
    logged and the loop starts again after ``LMS_JOB_POLL_INTERVAL``: a thread that died
    silently is exactly the "grades stay pending forever" fault this exists to end.
    """
    stop = threading.Event()
    worker_id = make_worker_id()

    def _run() -> None:
        with app.app_context():
            interval = services.setting("LMS_JOB_POLL_INTERVAL") if poll_interval is None \
                else poll_interval
            try:
                while not stop.is_set():
                    try:
                        run_loop(worker_id, stop, limit=limit, poll_interval=interval,
                                 kind="embedded")
                    except Exception:
                        log.exception("embedded worker %s: loop failed; restarting", worker_id)
                        db.session.rollback()
                        stop.wait(max(interval, 1.0))
            finally:
                db.session.remove()

    thread = threading.Thread(target=_run, name="outbox-worker", daemon=True)
    thread.start()
    return EmbeddedWorker(worker_id, thread, stop)

"""RQ mode: the dispatcher hands ids to a queue; each RQ job claims its row, so duplicates
in the queue never run a job twice. Real Redis and RQ when ``REDIS_URL`` is set (CI's second
run); otherwise an in-memory stand-in for the queue and Redis's ``SET NX``, same assertions.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from lms_plugin.extensions import db
from lms_plugin.jobs import services, worker
from tests.jobs import kinds
from tests.jobs.helpers import all_jobs


class MemoryRedis:
    def __init__(self) -> None:
        self.keys: dict[str, str] = {}

    def set(self, key: str, value: str, nx: bool = False, ex: int | None = None) -> bool:
        if nx and key in self.keys:
            return False
        self.keys[key] = value
        return True


class MemoryQueue:
    name = "memory"

    def __init__(self) -> None:
        self.items: list[tuple[Any, tuple]] = []

    def enqueue(self, f: Any, *args: Any, **kwargs: Any) -> None:
        self.items.append((f, args))


class Backend:
    """The queue, Redis, and "run what is queued" for this run's flavour."""

    def __init__(self) -> None:
        url = os.environ.get("REDIS_URL")
        self.real = bool(url)
        if self.real:
            from redis import Redis
            from rq import Queue

            self.redis = Redis.from_url(url)
            self.queue = Queue(f"lms-test-{uuid.uuid4().hex[:8]}", connection=self.redis)
        else:
            self.redis = MemoryRedis()
            self.queue = MemoryQueue()

    def queued(self) -> int:
        return len(self.queue) if self.real else len(self.queue.items)

    def work(self) -> None:
        if self.real:
            from rq import SimpleWorker

            SimpleWorker([self.queue], connection=self.redis).work(burst=True,
                                                                   with_scheduler=False)
        else:
            items, self.queue.items = self.queue.items, []
            for f, args in items:
                f(*args)

    def close(self) -> None:
        if self.real:
            self.queue.delete(delete_jobs=True)


@pytest.fixture
def backend() -> Iterator[Backend]:
    b = Backend()
    yield b
    b.close()


def test_dispatched_ids_run_once_even_when_queued_twice(app, backend):
    with app.app_context():
        ids = [services.enqueue("test.record", {"n": n}).id for n in range(6)]
        db.session.commit()
        assert sorted(worker.dispatch(backend.queue, backend.redis)) == ids
        assert worker.dispatch(backend.queue, backend.redis) == []  # already handed out
        for job_id in ids[:3]:  # a second dispatcher, a replayed queue…
            backend.queue.enqueue(worker.rq_run_job, job_id)
        assert backend.queued() == 9
        backend.work()
    assert [kinds.calls[i] for i in ids] == [1] * 6
    assert {job.status for job in all_jobs(app)} == {"succeeded"}


def test_rq_job_leaves_retries_to_the_outbox(app, backend):
    """A retry is recorded in the table (not as an RQ retry) and dispatched when due."""
    with app.app_context():
        job_id = services.enqueue("test.record", {"outcome": "retry", "after": 3600}).id
        db.session.commit()
        worker.dispatch(backend.queue, backend.redis)
        backend.work()
        assert worker.dispatch(backend.queue, backend.redis) == []  # not due for an hour
    [job] = all_jobs(app)
    assert (job.status, job.attempts, kinds.calls[job_id]) == ("pending", 1, 1)


def test_rq_job_outside_the_worker_creates_its_app(app, monkeypatch):
    """Under a bare ``rq worker`` there is no app context: the job builds its own app."""
    built = []

    def fake_create_app():
        built.append(True)
        return app

    monkeypatch.setattr("lms_plugin.create_app", fake_create_app)
    monkeypatch.setattr(worker, "_rq_app", None)
    with app.app_context():
        job_id = services.enqueue("test.record", {}).id
        db.session.commit()
    assert worker.rq_run_job(job_id) == "succeeded"
    assert worker.rq_run_job(job_id) is None  # already done: nothing to claim
    assert built == [True] and kinds.calls[job_id] == 1

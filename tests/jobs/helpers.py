"""Helpers shared by the jobs tests (and ``tests/test_authz.py``'s sample job)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Flask
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs import services
from lms_plugin.jobs.models import OutboxJob


def make_job(app: Flask, organisation_id: int | None, *, kind: str = "test.noop",
             status: str = "pending", payload: dict[str, Any] | None = None,
             last_error: str | None = None, now: datetime | None = None) -> int:
    """A committed job, moved to ``status`` directly (for pages and commands, not the worker)."""
    with app.app_context():
        job = services.enqueue(kind, payload or {}, organisation_id=organisation_id, now=now)
        job.status = status
        job.last_error = last_error
        if status in {"failed", "rejected", "succeeded"}:
            job.attempts = 3
            job.finished_at = now or utcnow()
        db.session.commit()
        return job.id


def job_row(app: Flask, job_id: int) -> OutboxJob:
    with app.app_context():
        job = db.session.get(OutboxJob, job_id)
        db.session.expunge(job)
        return job


def all_jobs(app: Flask) -> list[OutboxJob]:
    with app.app_context():
        jobs = list(db.session.scalars(select(OutboxJob).order_by(OutboxJob.id)))
        for job in jobs:
            db.session.expunge(job)
        return jobs

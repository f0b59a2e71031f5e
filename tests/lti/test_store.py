"""LTI state storage: values expire, consume is single-use, the DB table is purged."""

from __future__ import annotations

import os
import uuid
from contextlib import nullcontext
from datetime import timedelta

import pytest
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiStoredValue
from lms_plugin.lti.store import LtiStore, purge_expired
from tests.dbapi import rowcount_unknown

BACKENDS = ["database"] + (["redis"] if os.environ.get("REDIS_URL") else [])


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_get_consume(app, backend):
    with app.app_context():
        url = os.environ.get("REDIS_URL") if backend == "redis" else None
        store = LtiStore(url, prefix=f"lms-test:{uuid.uuid4().hex}:")
        store.set_value("nonce-a", True, exp=60)
        store.set_value("state-b", {"x": 1}, exp=60)
        store.set_value("state-b", {"x": 2}, exp=60)  # overwrite
        assert store.get_value("state-b") == {"x": 2}
        assert store.check_value("nonce-a")
        assert store.consume("nonce-a") is True
        assert store.consume("nonce-a") is False
        assert store.get_value("nonce-a") is None
        db.session.commit()


def test_expired_database_values_are_invisible_and_purged(app):
    with app.app_context():
        store = LtiStore(None)
        store.set_value("old", 1, exp=60)
        db.session.get(LtiStoredValue, "lms:lti:lti1p3-old").expires_at = (
            db.session.get(LtiStoredValue, "lms:lti:lti1p3-old").expires_at.replace(year=2000))
        db.session.commit()
        assert store.get_value("old") is None
        assert store.consume("old") is False
        assert purge_expired() == 1
        db.session.commit()
        assert db.session.get(LtiStoredValue, "lms:lti:lti1p3-old") is None


@pytest.mark.parametrize("rowcount", ["reported", "unknown"])
def test_database_nonce_claim_is_first_use_only(app, rowcount):
    """Issue 9: the claim trusted ``rowcount``, which SQLAlchemy 2.1 reports as -1 for
    ``INSERT … ON CONFLICT DO NOTHING`` on PostgreSQL, so every first use was refused."""
    store = LtiStore(None, prefix=f"lms-test:{uuid.uuid4().hex}:")
    with rowcount_unknown(app) if rowcount == "unknown" else nullcontext(), app.app_context():
        assert store.claim("nonce-1", 60) is True  # first use
        db.session.commit()
        assert store.claim("nonce-1", 60) is False  # replay
        assert store.claim("nonce-2", 60) is True  # another nonce is unaffected
        db.session.commit()
        rows = db.session.scalars(select(LtiStoredValue.key).where(
            LtiStoredValue.key.like(f"{store._key_prefix}%"))).all()
        assert sorted(rows) == [store._key("nonce-1"), store._key("nonce-2")]
        # consume (OIDC state) and purge count the rows they removed, also by RETURNING
        store.set_value("state-1", {"x": 1}, exp=60)
        assert store.consume("state-1") is True
        assert store.consume("state-1") is False
        db.session.get(LtiStoredValue, store._key("nonce-2")).expires_at = (
            utcnow() - timedelta(seconds=1))
        db.session.commit()
        assert purge_expired() == 1
        db.session.commit()
        assert db.session.get(LtiStoredValue, store._key("nonce-2")) is None
        assert db.session.get(LtiStoredValue, store._key("nonce-1")) is not None


def test_an_hourly_job_purges_expired_state_in_batches_and_keeps_live_values(app,
                                                                            monkeypatch):
    """Used nonces and expired state are deleted by the scheduled ``lti.purge_state`` job (in
    batches, continuing when more remain), no longer by 1 login in 100."""
    from datetime import timedelta

    from sqlalchemy import func, insert, select

    from lms_plugin.db import utcnow
    from lms_plugin.jobs import schedule
    from lms_plugin.jobs import services as jobs
    from lms_plugin.jobs.models import OutboxJob
    from lms_plugin.lti import store as store_module
    from lms_plugin.lti import tasks

    jobs.discover_handlers()
    assert {p.kind: p.interval for p in schedule.periodic_jobs()}[tasks.PURGE_KIND] \
        == timedelta(hours=1)
    now = utcnow()
    with app.app_context():
        db.session.execute(insert(LtiStoredValue), [
            {"key": f"old-{i}", "value": "true", "expires_at": now - timedelta(minutes=1)}
            for i in range(5)] + [
            {"key": "live", "value": "true", "expires_at": now + timedelta(minutes=5)}])
        jobs.enqueue(tasks.PURGE_KIND, {}, coalesce_key=f"schedule:{tasks.PURGE_KIND}",
                     now=now)
        db.session.commit()
        monkeypatch.setattr(store_module, "PURGE_BATCH", 2)
        monkeypatch.setattr(tasks, "PURGE_BATCHES_PER_RUN", 2)
        runs = 0
        while db.session.scalar(select(func.count()).select_from(OutboxJob).where(
                OutboxJob.kind == tasks.PURGE_KIND, OutboxJob.status == "pending")):
            assert jobs.run_due_jobs("w", now=now + timedelta(seconds=runs)).outcomes \
                == {"succeeded": 1}
            runs += 1
        assert runs == 2  # 2 + 2, then 1 (fewer than a batch: done)
        assert list(db.session.scalars(select(LtiStoredValue.key))) == ["live"]

"""LTI state storage: values expire, consume is single-use, the DB table is purged."""

from __future__ import annotations

import os
import uuid

import pytest

from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiStoredValue
from lms_plugin.lti.store import LtiStore, purge_expired

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

"""Precomputed holdings give the matrix the same figures as computing live: after a build,
with completions recorded since (those people computed live), after a retraining publish
(everything live until the rebuild), and as time passes (expiry read from held_until)."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.jobs.runner import run_due_jobs
from lms_plugin.reports import exports, holdings, matrix
from lms_plugin.reports.models import CompetencyHolding, HoldingState
from tests.learning.builders import add_version
from tests.reports.helpers import _complete, build_fixture

EXPECTED = [("ED", 2, 100.0, 0.0, 0.0), ("ICU", 2, 50.0, 50.0, 0.0)]


@pytest.fixture(autouse=True)
def _no_margin(monkeypatch):
    """Without the in-flight margin every completion of these small tests would count as
    new, and the table would never be read."""
    monkeypatch.setattr(holdings, "IN_FLIGHT", 0)


def _rows(app, org, now=None, args=None):
    with app.app_context():
        table = matrix.matrix_table(org, matrix.clean_filters(args or {}), now or utcnow())
        return [tuple(r) for r in exports.iter_rows(table)]


def _stored(app):
    with app.app_context():
        return sorted(db.session.execute(select(
            CompetencyHolding.user_id, CompetencyHolding.competency_id)).all())


def test_the_import_job_builds_the_table_and_figures_stay(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    assert _stored(app) == []  # just imported: computed live
    assert _rows(app, org) == EXPECTED
    with app.app_context():
        run_due_jobs("test-worker")  # the reports.holdings job the import queued
        assert db.session.get(HoldingState, fx["framework_id"]) is not None
        assert holdings.stored_since([1]) is not None
    people = fx["people"]
    # p1: C1 and C2; p2 (expired) is stored too; p3, p4 (departed), p5: C1.
    assert {u for u, _ in _stored(app)} == {people[p] for p in ("p1", "p2", "p3", "p4", "p5")}
    assert _rows(app, org) == EXPECTED
    # Live and stored give the same answer when the table is the only source (no margin).
    with app.app_context():
        from lms_plugin.reports.frameworks import live_holdings

        ids = [c.id for c in matrix.competencies(org, {"group": "department"})]
        live = sorted(db.session.execute(live_holdings(utcnow(), ids)).all())
        table = sorted(db.session.execute(
            select(holdings.held_now(utcnow(), ids, 10**9, lambda u: live_holdings(
                utcnow(), ids, u)))).all())
        assert live == table


def test_completions_since_the_build_count_at_once(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    with app.app_context():
        run_due_jobs("test-worker")
    b2 = fx["b2"]
    _complete(app, fx["people"]["p3"], fx["b"], b2)  # p3 now holds C2 too
    assert _rows(app, org) == [("ED", 2, 100.0, 50.0, 0.0), ("ICU", 2, 50.0, 50.0, 0.0)]
    with app.app_context():
        holdings.fold(fx["framework_id"], utcnow())
        db.session.commit()
    assert _rows(app, org) == [("ED", 2, 100.0, 50.0, 0.0), ("ICU", 2, 50.0, 50.0, 0.0)]


def test_time_passing_and_a_retraining_publish(app, factory):
    fx = build_fixture(app, factory)
    org = fx["a"]["organisation_id"]
    with app.app_context():
        run_due_jobs("test-worker")
    # 400 days on, every 300-day completion has lapsed; p1's mod-b v2 never expires.
    later = utcnow() + timedelta(days=400)
    assert _rows(app, org, later) == [("ED", 2, 0.0, 0.0, 0.0), ("ICU", 2, 0.0, 0.0, 0.0)]
    # mod-a v2 requires retraining: nobody's mod-a (v1) counts any more, live at once.
    add_version(app, fx["a"]["module_id"], number=2, retraining_required=True)
    with app.app_context():
        assert holdings.stored_since([1]) is None
    assert _rows(app, org) == [("ED", 2, 0.0, 0.0, 0.0), ("ICU", 2, 0.0, 0.0, 0.0)]
    with app.app_context():
        run_due_jobs("test-worker", now=utcnow() + timedelta(minutes=11))
        holdings.fold(fx["framework_id"], utcnow())
        db.session.commit()
        assert holdings.stored_since([1]) is not None
    assert _rows(app, org) == [("ED", 2, 0.0, 0.0, 0.0), ("ICU", 2, 0.0, 0.0, 0.0)]

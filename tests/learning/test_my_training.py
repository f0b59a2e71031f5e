""""My training", the learner home (issue 14): assigned modules by urgency with due dates
and status, a progress figure, completed modules with expiry, other modules below; the same
statuses as ``assignments.status_rows``; a constant number of statements."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import time_machine
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.learning import assignments
from lms_plugin.learning.assignments import RuleSpec
from lms_plugin.learning.models import Completion
from tests.conftest import login
from tests.learning.builders import build_module
from tests.statements import counted

T0 = datetime(2026, 3, 2, 9, tzinfo=UTC)


def _rule(app, org: int, slug: str, days: int) -> None:
    with app.app_context():
        assignments.add_rule(org, RuleSpec(slug, due_days=days), actor=None, now=T0)
        db.session.commit()


def _complete(app, user_id: int, built: dict, at: datetime) -> None:
    with app.app_context():
        db.session.add(Completion(user_id=user_id, module_id=built["module_id"],
                                  module_version_id=built["version_id"], score=100,
                                  passed=True, completed_at=at,
                                  expires_at=at + timedelta(days=365)))
        db.session.commit()


def test_my_training_orders_by_urgency(app, client, factory):
    late = build_module(app, slug="late-module")
    soon = build_module(app, slug="soon-module")
    done = build_module(app, slug="done-module")
    build_module(app, slug="optional-module")
    org = late["organisation_id"]
    user_id = factory.user("learner")
    _rule(app, org, "soon-module", 20)
    _rule(app, org, "late-module", 5)
    _rule(app, org, "done-module", 5)
    _complete(app, user_id, done, T0 - timedelta(days=1))
    with time_machine.travel(T0 + timedelta(days=10), tick=False):
        login(client, factory.email_of(user_id))
        html = client.get("/home").get_data(as_text=True)
    todo, _, rest = html.partition("<h2>Completed</h2>")
    completed, _, available = rest.partition("Other available modules")
    assert "Assigned training complete: 1 of 3 (33%)" in html
    assert todo.index("/modules/late-module") < todo.index("/modules/soon-module")
    assert "Overdue" in todo and "Not started" in todo
    assert re.search(r"due <time[^>]*>7 Mar 2026", todo)
    assert "/modules/done-module" in completed
    assert re.search(r"valid until <time[^>]*>1 Mar 2027", completed)
    assert "/modules/optional-module" in available
    with app.app_context():  # the page says what the one status function says
        rows = {r.module_id: r.status for r in assignments.status_rows(
            org, user_id=user_id, now=T0 + timedelta(days=10))}
    assert rows == {late["module_id"]: "overdue", soon["module_id"]: "not_started",
                    done["module_id"]: "completed"}


def test_my_training_statements_do_not_grow_with_assignments(app, client, login_as):
    built = [build_module(app, slug=f"module-{i:02d}") for i in range(3)]
    org = built[0]["organisation_id"]
    login_as("learner")
    for b in built:
        _rule(app, org, b["slug"], 10)
    client.get("/home")
    with counted() as few:
        assert client.get("/home").status_code == 200
    more = [build_module(app, slug=f"module-{i:02d}") for i in range(3, 15)]
    for b in more:
        _rule(app, org, b["slug"], 10)
    with app.app_context():
        user_id = db.session.scalar(select(User.id).order_by(User.id.desc()))
    for b in more[:6]:
        _complete(app, user_id, b, datetime.now(UTC) - timedelta(days=1))
    with counted() as many:
        html = client.get("/home").get_data(as_text=True)
    assert "Assigned training complete: 6 of 15" in html
    assert len(many) == len(few), (len(few), len(many))

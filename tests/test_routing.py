"""Integers from outside are limited to what the database holds (issue 9, item 6).

``/admin/users/99999999999999999999`` was a 500 (the driver cannot bind the number). Every
``<int:…>`` route now answers 404 beyond ``DB_INT_MAX``; integers in query strings, forms and
command lines get a 4xx / usage error naming the value. The URL map is walked, so a new
route is covered the day it is added.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select
from werkzeug.routing import IntegerConverter

from lms_plugin.accounts.models import AuditEvent, User
from lms_plugin.db import DB_INT_MAX
from lms_plugin.extensions import db
from lms_plugin.jobs.models import OutboxJob
from lms_plugin.lti.models import LtiPlatform
from lms_plugin.quizzes.models import Attempt, AttemptAnswer
from lms_plugin.routing import DatabaseIntegerConverter
from tests.conftest import csrf_token
from tests.learning.builders import build_module

HUGE = [str(DB_INT_MAX + 1), str(2**63), "99999999999999999999"]
SAMPLE = {"slug": "cpoe-basics", "path": "images/a.png", "filename": "app.css"}


def int_routes(app) -> list[tuple[str, str, list[str]]]:
    """(rule, method, integer argument names) of every route with an integer argument."""
    found = []
    for rule in app.url_map.iter_rules():
        ints = [name for name, conv in rule._converters.items()
                if isinstance(conv, IntegerConverter)]
        if ints:
            for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
                found.append((rule, method, ints))
    return found


def _rows(app) -> dict[str, int]:
    with app.app_context():
        counts = {m.__name__: db.session.scalar(select(func.count()).select_from(m))
                  for m in (User, AuditEvent, OutboxJob, Attempt, LtiPlatform)}
        db.session.remove()
        return counts


def test_every_int_route_uses_the_database_range(app):
    routes = int_routes(app)
    assert len({r.rule for r, _, _ in routes}) >= 5  # users, jobs, courses, lessons, content
    for rule, _, _ in routes:
        for conv in rule._converters.values():
            if isinstance(conv, IntegerConverter):
                assert isinstance(conv, DatabaseIntegerConverter), rule.rule
                assert conv.max is not None and conv.max <= DB_INT_MAX, rule.rule


@pytest.mark.parametrize("value", HUGE)
def test_out_of_range_ids_in_urls_are_404_not_500(app, client, login_as, value):
    build_module(app)
    login_as("admin", "author", "learner")
    token = csrf_token(client, "/admin/users")
    before = _rows(app)
    adapter = app.url_map.bind("tool.test")
    for rule, method, ints in int_routes(app):
        values = {name: SAMPLE.get(name, "1") for name in rule.arguments}
        values.update(dict.fromkeys(ints, 7777777))
        path = adapter.build(rule.endpoint, values, method=method).replace("7777777", value)
        assert value in path, (rule.rule, path)
        response = client.open(path, method=method, data={"csrf_token": token})
        assert response.status_code == 404, (method, path, response.status_code)
    assert _rows(app) == before


@pytest.mark.parametrize("query, status", [
    ("after=99999999999999999999", 400), ("after=-1", 400), ("after=0", 400),
    ("after=%C2%B2", 400), ("after=abc", 400), ("after=", 200),
])
def test_page_cursor_out_of_range_is_a_clear_4xx(client, login_as, query, status):
    login_as("admin")
    response = client.get(f"/admin/users?{query}")
    assert response.status_code == status, response.get_data(as_text=True)
    if status == 400:
        assert "a person&#39;s id, as the page&#39;s Next link gives" in \
            response.get_data(as_text=True)


def test_out_of_range_attempt_numbers_are_refused(app, client, login_as):
    build_module(app)
    login_as("learner")
    for attempt in ("99999999999999999999", str(DB_INT_MAX + 1), "-3", "x"):
        response = client.get(f"/modules/cpoe-basics/result?attempt={attempt}")
        assert response.status_code == 422, (attempt, response.status_code)
        assert "attempt number must be" in response.get_data(as_text=True)
    token = csrf_token(client, "/modules/cpoe-basics")
    client.post("/modules/cpoe-basics/quiz/start", data={"csrf_token": token})
    before = _rows(app)
    response = client.post("/modules/cpoe-basics/quiz/submit", data={
        "csrf_token": token, "attempt_id": "99999999999999999999"})
    assert response.status_code == 422 and "which attempt" in response.get_data(as_text=True)
    assert _rows(app) == before
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AttemptAnswer)) == 0


@pytest.mark.parametrize("args", [
    ["platform", "show", "99999999999999999999"],
    ["platform", "disable", str(DB_INT_MAX + 1)],
    ["platform", "enable", str(2**63)],
    ["platform", "add-deployment", "99999999999999999999", "d-1"],
    ["outbox", "retry", "99999999999999999999"],
])
def test_out_of_range_ids_on_the_command_line_are_usage_errors(app, args):
    before = _rows(app)
    result = app.test_cli_runner().invoke(args=args)
    assert result.exit_code == 2, result.output
    assert "is not in the range 1<=x<=2147483647" in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert _rows(app) == before


def test_a_nul_character_anywhere_is_a_400_not_a_database_error(app, client, login_as,
                                                                factory):
    """PostgreSQL refuses NUL in text: a search, a sign-in or a path holding %00 was a 500
    there (run with TEST_DATABASE_URL to see it)."""
    login_as("admin")
    for path in ("/admin/users?q=Zed%00", "/modules/a%00b", "/admin/users?role=%00"):
        response = client.get(path)
        assert response.status_code == 400, path
        assert "NUL character" in response.get_data(as_text=True)
    client.post("/auth/logout", data={"csrf_token": csrf_token(client, "/home")})
    token = csrf_token(client, "/auth/forgot")
    for path in ("/auth/forgot", "/auth/login"):
        response = client.post(path, data={"csrf_token": token, "email": "a\x00@example.org",
                                           "password": "x" * 12})
        assert response.status_code == 400, path
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(OutboxJob).where(
            OutboxJob.kind == "accounts.password_reset")) == 0

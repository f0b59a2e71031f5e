from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import LocalCredential, RoleGrant, User
from lms_plugin.extensions import db
from tests.conftest import login


@pytest.fixture(autouse=True)
def _one_organisation(request, factory) -> None:
    if "fresh_install" not in request.node.name:
        factory.organisation("General Hospital")


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_create_admin_prints_one_time_password_that_works(app, client):
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "--email",
                                                "cmio@example.org"])
    assert result.exit_code == 0, result.output
    password = result.output.split("One-time password (change it at first sign-in): ")[1].strip()
    response = login(client, "cmio@example.org", password)
    assert response.status_code == 302
    assert response.headers["Location"] == "/account/password"  # must change it first
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == "cmio@example.org"))
        assert user.role_names == {"admin"}


def test_create_admin_from_prompt(app, client):
    result = app.test_cli_runner().invoke(
        args=["users", "create-admin", "--email", "cnio@example.org", "--password-prompt"],
        input="a long enough password\na long enough password\n")
    assert result.exit_code == 0, result.output
    assert "One-time password" not in result.output
    assert login(client, "cnio@example.org", "a long enough password").status_code == 302


def test_create_admin_bad_input_changes_nothing(app):
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["users", "create-admin", "--email", "not-an-email"])
    assert bad.exit_code != 0
    assert "not a valid email address" in bad.output
    assert _count(app, User) == 0
    runner.invoke(args=["users", "create-admin", "--email", "a@example.org"])
    dup = runner.invoke(args=["users", "create-admin", "--email", "A@example.org"])
    assert dup.exit_code != 0
    assert "already exists" in dup.output
    assert _count(app, User) == 1 and _count(app, LocalCredential) == 1


def test_ensure_admin_is_idempotent(app):
    runner = app.test_cli_runner()
    first = runner.invoke(args=["users", "ensure-admin"])
    assert "One-time password" in first.output
    second = runner.invoke(args=["users", "ensure-admin"])
    assert "exists already" in second.output
    assert _count(app, RoleGrant) == 1

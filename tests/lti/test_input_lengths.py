# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Over-long platform registrations and roster emails are refused, never cut (issue 9,
item 6): a cut client id, URL or email is a different one."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiContext, LtiDeployment, LtiIdentity, LtiPlatform
from tests.lti.ags_helpers import INSTRUCTOR, fake_lms, services  # noqa: F401
from tests.lti.platform import LIS
from tests.lti.test_cli import ADD

LONG_EMAIL = "nurse." + "a" * 50 + "@" + "ward-" * 60 + "example.org"


@pytest.fixture(autouse=True)
def _metro_health(factory) -> None:
    factory.organisation("Metro Health")  # the organisation ADD names (never created by it)


def _replace(args: list[str], option: str, value: str) -> list[str]:
    out = list(args)
    out[out.index(option) + 1] = value
    return out


@pytest.mark.parametrize("option, limit, what", [
    ("--name", 200, "platform name"),
    ("--client-id", 255, "client id"),
    ("--issuer", 255, "issuer"),
    ("--auth-login-url", 500, "login URL"),
    ("--deployment-id", 255, "deployment id"),
    ("--organisation", 200, "No organisation 'xxx"),  # unknown, never created (12.1)
])
def test_over_long_registration_values_are_refused(app, option, limit, what):
    value = ("https://moodle.example.org/" + "p" * limit) if "url" in option or \
        option == "--issuer" else "x" * (limit + 1)
    result = app.test_cli_runner().invoke(args=_replace(ADD, option, value))
    assert result.exit_code == 1, result.output
    if what.startswith("No organisation"):
        assert what in result.output and "known organisations: 'Metro Health'" in result.output
    else:
        assert f"{what} is {len(value)} characters long; at most {limit}" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiPlatform)) == 0
        assert db.session.scalar(select(func.count()).select_from(LtiDeployment)) == 0


def test_over_long_deployment_added_later_is_refused(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=ADD).exit_code == 0
    with app.app_context():
        platform_id = db.session.scalar(select(LtiPlatform.id))
    result = runner.invoke(args=["platform", "add-deployment", str(platform_id), "d" * 256])
    assert result.exit_code == 1 and "at most 255" in result.output
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiDeployment)) == 2


def test_roster_member_with_an_over_long_email_is_kept_without_it(app, client, launcher,
                                                                  services):
    services.lms.members["course-1"] = [
        {"user_id": "teacher-1", "status": "Active", "roles": [LIS + "membership#Instructor"],
         "name": "Teacher"},
        {"user_id": "nurse-long", "status": "Active", "roles": [LIS + "membership#Learner"],
         "name": "Nurse Long", "email": LONG_EMAIL},
        {"user_id": "nurse-ok", "status": "Active", "roles": [LIS + "membership#Learner"],
         "name": "Nurse Ok", "email": "Nurse.Ok@Example.org"},
    ]
    services.launch(launcher, client, sub="teacher-1", module="m1", roles=INSTRUCTOR,
                    nrps=True)
    with app.app_context():
        from lms_plugin.lti import nrps

        context_id = db.session.scalar(select(LtiContext.id))
        nrps.sync_context(context_id)
        db.session.commit()
        emails = dict(db.session.execute(
            select(LtiIdentity.sub, User.email).join(User, User.id == LtiIdentity.user_id)).all())
    assert emails["nurse-long"] is None  # not a cut address that belongs to someone else
    assert emails["nurse-ok"] == "nurse.ok@example.org"

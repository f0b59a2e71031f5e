"""Over-long input is refused with a message, never cut and never a driver error (issue 9,
item 6): emails (RFC 5321 limits), names and organisation names, through the CLI and the
services, with the database unchanged."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts import services
from lms_plugin.accounts.models import LocalCredential, Organisation, RoleGrant, User
from lms_plugin.errors import ValidationFailed
from lms_plugin.extensions import db

LONG_EMAIL = "nurse." + "a" * 50 + "@" + "ward-" * 50 + "example.org"  # 312 characters
LONG_LOCAL = "a" * 65 + "@example.org"
EMAIL_254 = "a" * 64 + "@" + ("b" * 62 + ".") * 2 + "c" * 59 + ".org"  # exactly 254


def _counts(app) -> tuple[int, ...]:
    with app.app_context():
        return tuple(db.session.scalar(select(func.count()).select_from(m))
                     for m in (User, LocalCredential, RoleGrant, Organisation))


def test_the_limits_are_rfc_5321s():
    assert len(EMAIL_254) == 254 and len(LONG_EMAIL) > 254
    assert services.normalise_email(" " + EMAIL_254.upper() + " ") == EMAIL_254
    with pytest.raises(ValidationFailed, match="255 characters long; at most 254"):
        services.normalise_email("x" + EMAIL_254)
    with pytest.raises(ValidationFailed, match="before the @ is 65 characters long"):
        services.normalise_email(LONG_LOCAL)


@pytest.mark.parametrize("args, message", [
    (["users", "create-admin", "--email", LONG_EMAIL], "at most 254 are allowed"),
    (["users", "create-admin", "--email", LONG_LOCAL], "before the @ is 65 characters"),
    (["users", "ensure-admin", "--email", LONG_EMAIL], "at most 254 are allowed"),
    (["setup", "--admin-email", LONG_EMAIL], "at most 254 are allowed"),  # make run's
    (["users", "create-admin", "--email", "cmio@example.org", "--organisation", "O" * 201],
     "No organisation 'OOO"),  # never created by a command (issue 12.1): unknown, listed
    (["content", "export", "/nonexistent/never-written", "--organisation", "O" * 201],
     "known organisations: 'General Hospital'"),
    (["org", "create", "O" * 201], "organisation name is 201 characters long; at most 200"),
])
def test_over_long_input_on_the_command_line_is_refused_and_writes_nothing(app, factory,
                                                                          args, message):
    from lms_plugin.cli import setup

    factory.organisation("General Hospital")
    before = _counts(app)
    runner = app.test_cli_runner()
    result = runner.invoke(setup, args[1:]) if args[0] == "setup" else runner.invoke(args=args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception,
                                                                     SystemExit)
    assert _counts(app) == before


def test_an_email_of_exactly_254_characters_is_kept_whole(app, factory):
    factory.organisation("General Hospital")
    result = app.test_cli_runner().invoke(args=["users", "create-admin", "--email", EMAIL_254])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert db.session.scalar(select(LocalCredential.email)) == EMAIL_254
        assert db.session.scalar(select(User.email)) == EMAIL_254


def test_over_long_name_is_refused_by_the_service(app):
    with app.app_context():
        org = services.get_or_create_organisation("General Hospital")
        db.session.commit()
        with pytest.raises(ValidationFailed, match="name is 201 characters long"):
            services.create_local_user(org, "x@example.org", "N" * 201, "a long password 1")
        db.session.rollback()
    assert _counts(app) == (0, 0, 0, 1)

"""Migration 0008_lti_launch removes the organisation-wide roles old launches gave.

Before it, a course's Instructor, TeachingAssistant or Mentor became an author of the whole
organisation (issue 10 item 5); people who only ever arrived by LTI (an identity, no local
credential) keep only ``learner`` (marked ``lti``), local accounts keep everything.
"""

from __future__ import annotations

from flask_migrate import upgrade
from sqlalchemy import text

from lms_plugin import create_app, health
from lms_plugin.extensions import db
from tests.test_migrations import empty_database_url  # noqa: F401  (fixture)

ROWS = """
INSERT INTO organisation (id, slug, name, timezone, created_at)
  VALUES (1, 'gh', 'General Hospital', 'UTC', CURRENT_TIMESTAMP);
INSERT INTO user_account (id, organisation_id, name, active, session_token, created_at)
  VALUES (1, 1, 'LTI instructor', TRUE, 't1', CURRENT_TIMESTAMP),
         (2, 1, 'Local author', TRUE, 't2', CURRENT_TIMESTAMP);
INSERT INTO lti_identity (id, organisation_id, issuer, sub, user_id, created_at)
  VALUES (1, 1, 'https://lms.example', 'teacher', 1, CURRENT_TIMESTAMP);
INSERT INTO local_credential (id, user_id, email, password_hash, must_change_password,
                              updated_at)
  VALUES (1, 2, 'author@example.org', 'x', FALSE, CURRENT_TIMESTAMP);
INSERT INTO role_grant (id, user_id, organisation_id, role, created_at)
  VALUES (1, 1, 1, 'author', CURRENT_TIMESTAMP), (2, 1, 1, 'learner', CURRENT_TIMESTAMP),
         (3, 1, 1, 'officer', CURRENT_TIMESTAMP), (4, 2, 1, 'author', CURRENT_TIMESTAMP);
"""


def test_upgrade_keeps_only_learner_for_lti_only_people(empty_database_url):  # noqa: F811
    app = create_app({"SQLALCHEMY_DATABASE_URI": empty_database_url, "TESTING": True,
                      "SECRET_KEY": "x" * 40})
    with app.app_context():
        upgrade(directory=str(health.MIGRATIONS_DIR), revision="0006")
        with db.engine.begin() as conn:
            for statement in ROWS.split(";"):
                if statement.strip():
                    conn.execute(text(statement))
        upgrade(directory=str(health.MIGRATIONS_DIR), revision="0008_lti_launch")
        with db.engine.connect() as conn:
            grants = conn.execute(text(
                "SELECT user_id, role, source FROM role_grant ORDER BY user_id, role")).all()
            platforms_default = conn.execute(text(
                "SELECT column_name FROM information_schema.columns WHERE "
                "table_name = 'lti_platform' AND column_name = 'grant_org_roles'")).all() \
                if conn.dialect.name == "postgresql" else [("grant_org_roles",)]
        db.engine.dispose()
    assert [tuple(g) for g in grants] == [(1, "learner", "lti"), (2, "author", "local")]
    assert platforms_default == [("grant_org_roles",)]

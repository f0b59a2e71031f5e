"""Organisations are never created by accident (issue 12.1): only ``org create`` (and the
first-run setup on an empty install) makes one; every command that takes an organisation
uses the one there is, or refuses an unknown name listing the known ones. Through the CLI
runner, with the organisation table checked afterwards."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent, Organisation, User
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiPlatform
from tests.catalog.helpers import VALID

PLATFORM = ["platform", "add", "--issuer", "https://moodle.example.org",
            "--client-id", "abc123",
            "--auth-login-url", "https://moodle.example.org/mod/lti/auth.php",
            "--auth-token-url", "https://moodle.example.org/mod/lti/token.php",
            "--key-set-url", "https://moodle.example.org/mod/lti/certs.php",
            "--deployment-id", "3"]


def orgs(app) -> list[tuple[str, str]]:
    with app.app_context():
        return [(o.name, o.timezone) for o in db.session.scalars(
            select(Organisation).order_by(Organisation.id))]


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def run(app, *args: str, **kwargs):
    return app.test_cli_runner().invoke(args=list(args), **kwargs)


# ------------------------------------------------------------------ org create / list

def test_org_create_and_list(app):
    result = run(app, "org", "create", "Mercy Health", "--timezone", "Europe/Dublin")
    assert result.exit_code == 0, result.output
    assert "Created organisation Mercy Health (slug mercy-health" in result.output
    result = run(app, "org", "create", "St Elsewhere")
    assert result.exit_code == 0, result.output
    assert orgs(app) == [("Mercy Health", "Europe/Dublin"),
                         ("St Elsewhere", app.config["LMS_DEFAULT_TIMEZONE"])]
    listing = run(app, "org", "list").output
    assert "mercy-health\tMercy Health\tEurope/Dublin" in listing
    assert "st-elsewhere\tSt Elsewhere" in listing
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "organisation.create")) == 2


def test_org_list_on_a_fresh_install_says_how_to_create_one(app):
    result = run(app, "org", "list")
    assert result.exit_code == 0
    assert "No organisations yet" in result.output and "lms-plugin org create" in result.output


@pytest.mark.parametrize("args, message", [
    (["org", "create", "mercy health"], "An organisation 'Mercy Health' exists already"),
    (["org", "create", "  "], "Organisation name is required"),
    (["org", "create", "Elsewhere", "--timezone", "Mars/Olympus"], "Unknown time zone"),
    (["org", "create", "Elsewhere", "--timezone", ""], "Unknown time zone"),
])
def test_org_create_bad_input_writes_nothing(app, args, message):
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    before = (orgs(app), count(app, AuditEvent))
    result = run(app, *args)
    assert result.exit_code == 1, result.output
    assert message in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (orgs(app), count(app, AuditEvent)) == before


# ------------------------------------------------------------------ platform add

def test_platform_add_with_the_guides_example_name_refuses_and_lists_the_known_ones(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, *PLATFORM, "--organisation", "Mercy Health")
    assert result.exit_code == 1
    assert "No organisation 'Mercy Health'" in result.output
    assert "known organisations: 'General Hospital'" in result.output
    assert orgs(app) == [("General Hospital", app.config["LMS_DEFAULT_TIMEZONE"])]
    assert count(app, LtiPlatform) == 0


def test_platform_add_without_organisation_uses_the_one_there_is(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, *PLATFORM)
    assert result.exit_code == 0, result.output
    assert "for General Hospital" in result.output
    assert [name for name, _ in orgs(app)] == ["General Hospital"]  # no "moodle.example.org"
    with app.app_context():
        assert db.session.scalar(select(LtiPlatform)).organisation.name == "General Hospital"


def test_platform_add_by_slug_names_the_existing_organisation(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    result = run(app, *PLATFORM, "--organisation", "mercy-health")
    assert result.exit_code == 0, result.output
    assert len(orgs(app)) == 2


def test_platform_add_with_several_and_none_named_refuses_to_guess(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    result = run(app, *PLATFORM)
    assert result.exit_code == 1
    assert "There are 2 organisations ('General Hospital', 'Mercy Health')" in result.output
    assert "--organisation" in result.output
    assert count(app, LtiPlatform) == 0 and len(orgs(app)) == 2


def test_platform_add_on_a_fresh_install_says_how_to_create_one(app):
    result = run(app, *PLATFORM)
    assert result.exit_code == 1
    assert "no organisation yet" in result.output and "lms-plugin org create" in result.output
    assert orgs(app) == [] and count(app, LtiPlatform) == 0


def test_platform_add_twice_points_at_the_existing_platform(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    assert run(app, *PLATFORM).exit_code == 0
    result = run(app, *PLATFORM)
    assert result.exit_code == 1
    with app.app_context():
        pid = db.session.scalar(select(LtiPlatform.id))
    assert f"lms-plugin platform show {pid}" in result.output
    shown = run(app, "platform", "show", str(pid))  # the advice works
    assert shown.exit_code == 0 and "abc123" in shown.output


# ------------------------------------------------------------------ content

def test_content_import_with_a_typo_refuses_and_writes_nothing(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, "content", "import", str(VALID), "--organisation",
                 "Genral Hospital")
    assert result.exit_code == 1
    assert "No organisation 'Genral Hospital'" in result.output
    assert "'General Hospital'" in result.output
    assert [name for name, _ in orgs(app)] == ["General Hospital"]
    from lms_plugin.catalog.models import Module
    assert count(app, Module) == 0


@pytest.mark.parametrize("command", [
    ["content", "export", "{tmp}/out"],
    ["content", "export-gift", "safe-ordering"],
    ["content", "export-moodle-xml", "safe-ordering"],
])
def test_content_exports_refuse_an_unknown_organisation(app, tmp_path, command):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = run(app, *args, "--organisation", "Nowhere")
    assert result.exit_code == 1, result.output
    assert "No organisation 'Nowhere' (known organisations: 'General Hospital')" in result.output
    assert len(orgs(app)) == 1


def test_content_import_without_organisation_uses_the_one_there_is(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, "content", "import", str(VALID))
    assert result.exit_code == 0, result.output
    assert "Imported into General Hospital" in result.output
    assert len(orgs(app)) == 1


# ------------------------------------------------------------------ users, settings

def test_create_admin_refuses_an_unknown_organisation(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, "users", "create-admin", "--email", "cmio@example.org",
                 "--organisation", "Mercy Health")
    assert result.exit_code == 1
    assert "known organisations: 'General Hospital'" in result.output
    assert len(orgs(app)) == 1 and count(app, User) == 0


def test_create_admin_on_a_fresh_install_creates_no_organisation(app):
    result = run(app, "users", "create-admin", "--email", "cmio@example.org")
    assert result.exit_code == 1
    assert "lms-plugin org create" in result.output
    assert orgs(app) == [] and count(app, User) == 0


def test_set_grade_policy_of_an_unknown_organisation_lists_the_known_ones(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    result = run(app, "org", "set-grade-policy", "Mercy", "highest")
    assert result.exit_code == 1
    assert "known organisations: 'General Hospital'" in result.output


def test_first_run_setup_creates_the_first_organisation_explicitly(app, monkeypatch):
    monkeypatch.setitem(app.config, "LMS_DEFAULT_TIMEZONE", "Europe/Dublin")
    result = run(app, "users", "ensure-admin")
    assert result.exit_code == 0, result.output
    assert "in Default Health System" in result.output
    assert orgs(app) == [("Default Health System", "Europe/Dublin")]  # the setting applies
    # Later organisations do not change where the first-run setup puts things.
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    assert "exists already" in run(app, "users", "ensure-admin").output
    assert len(orgs(app)) == 2


def test_ensure_admin_with_several_organisations_refuses_to_guess(app):
    assert run(app, "org", "create", "General Hospital").exit_code == 0
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    result = run(app, "users", "ensure-admin")
    assert result.exit_code == 1 and "name one with --organisation" in result.output
    result = run(app, "users", "ensure-admin", "--organisation", "Mercy Health")
    assert result.exit_code == 0, result.output
    assert "in Mercy Health" in result.output and len(orgs(app)) == 2


def test_setup_imports_into_the_first_admins_organisation_also_with_more_organisations(app):
    from lms_plugin.catalog.models import Module
    from lms_plugin.cli import setup

    runner = app.test_cli_runner()
    first = runner.invoke(setup, [])
    assert first.exit_code == 0, first.output
    assert "into Default Health System" in first.output
    modules = count(app, Module)
    assert modules > 0
    assert run(app, "org", "create", "Mercy Health").exit_code == 0
    again = runner.invoke(setup, [])
    assert again.exit_code == 0, again.output
    assert "into Default Health System" in again.output
    assert count(app, Module) == modules and len(orgs(app)) == 2

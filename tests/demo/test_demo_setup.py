"""`make run` with the demo LMS (issue 12.3): its own setup step and a link in the closing
message; the config refuses it in production unless asked for by name; a Dynamic
Registration never joins the demo's organisation."""

from __future__ import annotations

import re

import pytest
from click.testing import CliRunner
from flask.cli import ScriptInfo
from sqlalchemy import select

from lms_plugin import create_app, serve
from lms_plugin.accounts.models import Organisation
from lms_plugin.cli import cli
from lms_plugin.config import ConfigError, load_config
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiPlatform
from lms_plugin.lti.registration import registration_organisation


def test_make_run_prepares_the_demo_and_prints_its_link_before_the_password(
        tmp_path, monkeypatch):
    fresh = create_app({"TESTING": True, "LMS_ENV": "testing", "LMS_DEMO": True,
                        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests",
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
                        "LMS_BASE_URL": "http://tool.test"})
    monkeypatch.setattr(serve, "serve", lambda *a, ready, **k: ready())
    result = CliRunner().invoke(
        cli, ["run", "--setup", "--no-worker", "--first-step", "2", "--port", "5124"],
        obj=ScriptInfo(create_app=lambda: fresh), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    steps = re.findall(r"^\[(\d)/6\] ([^…\n]+)", result.output, re.M)
    assert [text.strip() for _, text in steps][-2:] == ["Preparing the demo LMS",
                                                        "Starting the server"]
    assert re.search(r"Preparing the demo LMS … created its organisation, registration, "
                     r"content, course link", result.output)
    tail = result.output[result.output.index("[6/6]"):]
    assert "Try it now         http://tool.test/demo/" in tail
    assert tail.index("Try it now") > tail.index("One-time password")
    with fresh.app_context():
        orgs = db.session.scalars(select(Organisation).order_by(Organisation.id)).all()
        assert [(o.slug, o.is_demo) for o in orgs] == [("default-health-system", False),
                                                       ("demo-lms", True)]
        assert db.session.scalar(select(LtiPlatform.organisation_id)) == orgs[1].id
        # The shipped content went to the hospital's organisation as before, and the demo's
        # has its own published copy.
        again = serve.prepare_demo()
        assert again == "ready"
        # A Dynamic Registration with no admin signed in joins the one real organisation.
        org, approved = registration_organisation(None, "https://moodle.example.org")
        assert (org.slug, approved) == ("default-health-system", False)
        db.engine.dispose()


def test_without_the_demo_make_run_has_five_steps_and_no_demo_link(tmp_path, monkeypatch):
    fresh = create_app({"TESTING": True, "LMS_ENV": "testing",
                        "SECRET_KEY": "test-secret-key-that-is-long-enough-for-tests",
                        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'fresh.db'}",
                        "LMS_BASE_URL": "http://tool.test"})
    assert fresh.config["LMS_DEMO"] is False
    assert serve.setup_steps(fresh, True) == 4
    assert "/demo/" not in serve.welcome("http://x", "http://tool.test", None, worker=True)
    with fresh.app_context():
        db.engine.dispose()


@pytest.mark.parametrize(("value", "env", "on"), [
    ("", "development", False), ("0", "development", False), ("1", "development", True),
    ("production", "production", True), ("0", "production", False)])
def test_the_lms_demo_setting(tmp_path, value, env, on):
    config = load_config(tmp_path, _env(env, LMS_DEMO=value))
    assert config["LMS_DEMO"] is on


def test_production_refuses_lms_demo_1_and_nonsense(tmp_path):
    with pytest.raises(ConfigError, match="LMS_DEMO=production"):
        load_config(tmp_path, _env("production", LMS_DEMO="1"))
    with pytest.raises(ConfigError, match="LMS_DEMO must be 1 or 0"):
        load_config(tmp_path, _env("development", LMS_DEMO="maybe"))


def _env(lms_env: str, **extra: str) -> dict[str, str]:
    env = {"LMS_ENV": lms_env}
    if lms_env == "production":
        env.update(SECRET_KEY="x" * 40, DATABASE_URL="postgresql+psycopg://db/lms",
                   LMS_BASE_URL="https://tool.example.org")
    env.update(extra)
    return env

"""``lms-plugin platform …`` and ``lms-plugin keys …`` through the real CLI runner."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiDeployment, LtiPlatform, LtiToolKey

ADD = ["platform", "add", "--issuer", "https://moodle.example.org",
       "--client-id", "abc123", "--auth-login-url", "https://moodle.example.org/mod/lti/auth.php",
       "--auth-token-url", "https://moodle.example.org/mod/lti/token.php",
       "--key-set-url", "https://moodle.example.org/mod/lti/certs.php",
       "--deployment-id", "3", "--deployment-id", "4", "--name", "Hospital Moodle",
       "--organisation", "Metro Health"]


@pytest.fixture(autouse=True)
def _metro_health(app) -> None:
    """The organisation the commands name, created the documented way (issue 12.1)."""
    result = app.test_cli_runner().invoke(args=["org", "create", "Metro Health"])
    assert result.exit_code == 0, result.output


def _count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def test_platform_add_prints_tool_urls_and_stores_the_registration(app):
    result = app.test_cli_runner().invoke(args=ADD)
    assert result.exit_code == 0, result.output
    for line in ("http://tool.test/lti/login", "http://tool.test/lti/launch",
                 "http://tool.test/lti/jwks"):
        assert line in result.output
    with app.app_context():
        platform = db.session.scalar(select(LtiPlatform))
        assert (platform.issuer, platform.client_id, platform.name) == (
            "https://moodle.example.org", "abc123", "Hospital Moodle")
        assert platform.deployment_ids == ["3", "4"]
        assert platform.organisation.name == "Metro Health" and platform.enabled
    assert _count(app, LtiToolKey) == 1  # the tool has a key to publish from the start


def test_same_issuer_and_client_id_twice_is_refused(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=ADD).exit_code == 0
    result = runner.invoke(args=ADD)
    assert result.exit_code != 0 and "exists" in result.output
    assert _count(app, LtiPlatform) == 1


def test_same_issuer_other_client_id_is_a_second_platform(app):
    runner = app.test_cli_runner()
    assert runner.invoke(args=ADD).exit_code == 0
    other = list(ADD)
    other[other.index("abc123")] = "xyz789"
    assert runner.invoke(args=other).exit_code == 0
    assert _count(app, LtiPlatform) == 2


def test_bad_input_writes_nothing(app):
    runner = app.test_cli_runner()
    bad = list(ADD)
    bad[bad.index("https://moodle.example.org/mod/lti/token.php")] = "not a url"
    result = runner.invoke(args=bad)
    assert result.exit_code != 0 and "auth_token_url" in result.output
    no_keys = [a for a in ADD if a not in ("--key-set-url",
                                           "https://moodle.example.org/mod/lti/certs.php")]
    result = runner.invoke(args=no_keys)
    assert result.exit_code != 0 and "key set URL" in result.output
    assert _count(app, LtiPlatform) == 0 and _count(app, LtiDeployment) == 0


def test_list_show_disable_enable_add_deployment(app):
    runner = app.test_cli_runner()
    runner.invoke(args=ADD)
    with app.app_context():
        pid = db.session.scalar(select(LtiPlatform.id))
    listing = runner.invoke(args=["platform", "list"]).output
    assert "abc123" in listing and "enabled" in listing and "3, 4" in listing
    shown = runner.invoke(args=["platform", "show", str(pid)]).output
    assert "https://moodle.example.org/mod/lti/certs.php" in shown
    assert "http://tool.test/lti/jwks" in shown
    assert runner.invoke(args=["platform", "disable", str(pid)]).exit_code == 0
    assert "DISABLED" in runner.invoke(args=["platform", "list"]).output
    assert runner.invoke(args=["platform", "enable", str(pid)]).exit_code == 0
    result = runner.invoke(args=["platform", "add-deployment", str(pid), "7"])
    assert result.exit_code == 0, result.output
    again = runner.invoke(args=["platform", "add-deployment", str(pid), "7"])
    assert again.exit_code != 0 and "already" in again.output
    with app.app_context():
        assert db.session.get(LtiPlatform, pid).deployment_ids == ["3", "4", "7"]
    missing = runner.invoke(args=["platform", "show", "999"])
    assert missing.exit_code != 0 and "no platform" in missing.output


def test_keys_rotate_and_list(app, client):
    runner = app.test_cli_runner()
    first = client.get("/lti/jwks").get_json()["keys"][0]["kid"]
    result = runner.invoke(args=["keys", "rotate", "--grace-days", "3"])
    assert result.exit_code == 0, result.output
    kids = [k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]]
    assert len(kids) == 2 and first in kids
    listing = runner.invoke(args=["keys", "list"]).output
    assert "retiring" in listing and "active" in listing
    runner.invoke(args=["keys", "rotate", "--grace-days", "0"])
    kids = [k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]]
    assert len(kids) == 2 and first in kids  # 3-day grace of the first key still running

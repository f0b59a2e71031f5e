"""Login throttling (issue 10 item 8): limits shared by every process (database without
Redis), forwarded headers trusted only from configured proxies, slow-down per account and
address instead of locking the account holder out, throttling in the audit log."""

from __future__ import annotations

from datetime import timedelta

import pytest
import time_machine
from sqlalchemy import func, select

from lms_plugin import create_app
from lms_plugin.accounts.models import AuditEvent, RateLimitHit
from lms_plugin.config import ConfigError, load_config, parse_networks
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from tests.conftest import PASSWORD, csrf_token

ATTACKER, HOLDER, PROXY = "203.0.113.66", "10.20.30.40", "10.0.0.5"


def attempt(client, email: str, password: str, address: str, *, forwarded: str | None = None):
    environ = {"REMOTE_ADDR": address}
    token = csrf_token(client)  # GET: never counted
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    return client.post("/auth/login", data={"email": email, "password": password,
                                            "csrf_token": token},
                       environ_base=environ, headers=headers)


def _sibling_app(app, **config):
    """Another web process on the same database (and Redis, when the run has it)."""
    keys = ("SECRET_KEY", "SQLALCHEMY_DATABASE_URI", "RATELIMIT_STORAGE_URI",
            "RATELIMIT_KEY_PREFIX", "LMS_BASE_URL", "WTF_CSRF_ENABLED", "TESTING", "LMS_ENV")
    return create_app({**{k: app.config[k] for k in keys}, "SERVER_NAME": None, **config})


def test_guesses_from_another_address_do_not_lock_the_holder_out(app, client, factory):
    factory.user("admin", email="ada@example.org")
    guesser = app.test_client()
    for _ in range(5):
        assert attempt(guesser, "ada@example.org", "wrong guess!!", ATTACKER).status_code == 422
    blocked = attempt(guesser, "ada@example.org", PASSWORD, ATTACKER)
    assert blocked.status_code == 429
    assert "Too many attempts. Try again in a minute." in blocked.get_data(as_text=True)
    # the account holder at their own workstation signs in at once
    assert attempt(client, "ada@example.org", PASSWORD, HOLDER).status_code == 302


def test_the_pair_slows_down_in_tiers(app, factory):
    factory.user("admin", email="ada@example.org")
    guesser = app.test_client()
    with time_machine.travel(utcnow(), tick=False) as clock:
        for _ in range(5):
            assert attempt(guesser, "ada@example.org", "wrong guess!!", ATTACKER).status_code \
                == 422
        assert attempt(guesser, "ada@example.org", "x" * 12, ATTACKER).status_code == 429
        clock.shift(timedelta(seconds=61))  # the first tier (5 a minute) has passed
        for _ in range(5):
            assert attempt(guesser, "ada@example.org", "wrong guess!!", ATTACKER).status_code \
                == 422
        slower = attempt(guesser, "ada@example.org", "x" * 12, ATTACKER)
        assert slower.status_code == 429  # 10 in 15 minutes: now a longer wait
        assert "Try again in 14 minutes." in slower.get_data(as_text=True)
        clock.shift(timedelta(minutes=14, seconds=30))
        assert attempt(guesser, "ada@example.org", PASSWORD, ATTACKER).status_code == 302


def test_throttling_is_audited_once_per_minute(app, factory):
    user_id = factory.user("admin", email="ada@example.org")
    guesser = app.test_client()
    for _ in range(5):
        attempt(guesser, "ada@example.org", "wrong guess!!", ATTACKER)
    for _ in range(3):
        assert attempt(guesser, "ada@example.org", "wrong guess!!", ATTACKER).status_code == 429
    with app.app_context():
        events = db.session.scalars(select(AuditEvent)
                                    .where(AuditEvent.action == "login.throttled")).all()
        assert len(events) == 1
        event = events[0]
        assert event.target_id == str(user_id)
        assert event.organisation_id == factory.org_of(user_id)
        assert event.details["address"] == ATTACKER
        assert event.details["email"] == "ada@example.org"
        assert event.details["scope"] == "account+address"


def test_one_address_guessing_many_accounts_is_throttled(app, factory):
    guesser = app.test_client()
    for n in range(30):
        response = attempt(guesser, f"user{n}@example.org", "wrong guess!!", ATTACKER)
        assert response.status_code == 422
    assert attempt(guesser, "another@example.org", "wrong guess!!", ATTACKER).status_code == 429
    # other addresses behind other NATs are not affected
    assert attempt(app.test_client(), "another@example.org", "wrong guess!!",
                   HOLDER).status_code == 422


def test_limits_are_shared_by_every_process(app, factory):
    """A second web process (a new app and a new limiter storage) sees the same counts;
    with in-memory storage (before) it started from zero."""
    factory.user("admin", email="ada@example.org")
    for _ in range(5):
        attempt(app.test_client(), "ada@example.org", "wrong guess!!", ATTACKER)
    other_process = _sibling_app(app)
    try:
        blocked = attempt(other_process.test_client(), "ada@example.org", PASSWORD, ATTACKER)
        assert blocked.status_code == 429
    finally:
        _sibling_app(app)  # rebind the shared limiter to this run's settings
    if not app.config.get("REDIS_URL"):
        with app.app_context():
            assert db.session.scalar(select(func.count()).select_from(RateLimitHit)) >= 5


def test_forwarded_for_is_ignored_from_clients_that_bypass_the_proxy(app, factory):
    factory.user("admin", email="ada@example.org")
    proxied = _sibling_app(app, LMS_PROXY_FIX=1,
                           LMS_TRUSTED_PROXIES=parse_networks("t", "10.0.0.0/24"))
    try:
        direct = proxied.test_client()
        # a client reaching the app directly cannot rotate its address with the header
        for n in range(5):
            assert attempt(direct, "ada@example.org", "wrong guess!!", ATTACKER,
                           forwarded=f"198.51.100.{n}").status_code == 422
        assert attempt(direct, "ada@example.org", PASSWORD, ATTACKER,
                       forwarded="198.51.100.200").status_code == 429
        # through the trusted proxy the forwarded address is the client's
        via_proxy = proxied.test_client()
        assert attempt(via_proxy, "ada@example.org", PASSWORD, PROXY,
                       forwarded=HOLDER).status_code == 302
        with proxied.app_context():
            logins = db.session.scalars(select(AuditEvent.details)
                                        .where(AuditEvent.action == "login.throttled")).all()
            assert [d["address"] for d in logins] == [ATTACKER]
    finally:
        _sibling_app(app)


def test_proxy_settings_are_checked_at_start(tmp_path):
    base = {"SECRET_KEY": "x" * 40}
    with pytest.raises(ConfigError, match="LMS_PROXY_FIX needs LMS_TRUSTED_PROXIES"):
        load_config(tmp_path, {**base, "LMS_PROXY_FIX": "1"})
    with pytest.raises(ConfigError, match="'10.0.0.300' is not an IP address"):
        load_config(tmp_path, {**base, "LMS_TRUSTED_PROXIES": "10.0.0.0/8, 10.0.0.300"})
    config = load_config(tmp_path, {**base, "LMS_TRUSTED_PROXIES": "10.0.0.0/8,192.0.2.7"})
    assert config["LMS_PROXY_FIX"] == 1
    assert [str(n) for n in config["LMS_TRUSTED_PROXIES"]] == ["10.0.0.0/8", "192.0.2.7/32"]
    with pytest.raises(ConfigError, match="LMS_LOGIN_RATE_LIMIT"):
        load_config(tmp_path, {**base, "LMS_LOGIN_RATE_LIMIT": "lots"})
    with pytest.raises(ConfigError, match="LMS_SESSION_IDLE"):
        load_config(tmp_path, {**base, "LMS_SESSION_IDLE": "0"})
    with pytest.raises(ConfigError, match="LMS_SESSION_IDLE must not be longer"):
        load_config(tmp_path, {**base, "LMS_SESSION_IDLE": "13h"})
    assert load_config(tmp_path, base)["LMS_SESSION_IDLE"] == timedelta(minutes=30)

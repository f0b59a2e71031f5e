"""LMS_PASSWORD_HASH_PROFILE: the argon2 cost of local passwords (tests run on ``fast``)."""

from __future__ import annotations

from argon2 import extract_parameters
from sqlalchemy import select

from lms_plugin.accounts import services as accounts
from lms_plugin.accounts.models import LocalCredential
from lms_plugin.extensions import db
from tests.conftest import PASSWORD


def _stored_hash(app, user_id: int) -> str:
    with app.app_context():
        return db.session.scalar(select(LocalCredential.password_hash).where(
            LocalCredential.user_id == user_id))


def test_the_suite_hashes_cheaply_and_the_standard_profile_upgrades_at_sign_in(
        app, factory, monkeypatch):
    assert app.config["LMS_PASSWORD_HASH_PROFILE"] == "fast"  # from tests/conftest.py
    user_id = factory.user("learner")
    cheap = extract_parameters(_stored_hash(app, user_id))
    assert (cheap.time_cost, cheap.memory_cost, cheap.parallelism) == (1, 8, 1)

    # The same database under the standard profile: the password still verifies, and the
    # cheap hash is replaced by a full-cost one (RFC 9106 section 4: t=3, 64 MiB, p=4).
    monkeypatch.setitem(app.config, "LMS_PASSWORD_HASH_PROFILE", "standard")
    with app.app_context():
        email = factory.email_of(user_id)
        assert accounts.authenticate(email, "wrong password") is None
        assert accounts.authenticate(email, PASSWORD).id == user_id
        db.session.commit()
    full = extract_parameters(_stored_hash(app, user_id))
    assert (full.time_cost, full.memory_cost, full.parallelism) == (3, 65536, 4)

"""Signed OIDC nonces: the login stores nothing, the launch accepts only a nonce we issued,
unexpired, once (replay and concurrency are covered in test_security.py)."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.lti import nonces
from lms_plugin.lti.models import LtiStoredValue
from tests.lti.platform import oidc_login

SECRET = "a-secret-key-for-nonce-tests-long-enough"


def test_issued_nonce_is_valid_until_it_expires():
    now = time.time()
    nonce = nonces.issue(SECRET, now=now, ttl=600)
    assert nonces.expiry(SECRET, nonce, now=now) == int(now) + 600
    assert nonces.expiry(SECRET, nonce, now=now + 599) == int(now) + 600
    assert nonces.expiry(SECRET, nonce, now=now + 601) is None
    assert nonces.issue(SECRET) != nonces.issue(SECRET)


@pytest.mark.parametrize("forge", [
    lambda n: n[:-1] + ("0" if n[-1] != "0" else "1"),  # MAC altered
    lambda n: "ffffffff" + n[n.index("."):],  # expiry pushed out, MAC kept
    lambda n: n.rsplit(".", 1)[0],  # MAC dropped
    lambda n: "",
    lambda n: "made-up-nonce",
    lambda n: "é.é.é",  # not ASCII
    lambda n: n + "." + "x" * 200,
])
def test_forged_or_malformed_nonces_are_refused(forge):
    assert nonces.expiry(SECRET, forge(nonces.issue(SECRET))) is None


def test_nonce_from_another_secret_key_is_refused():
    assert nonces.expiry("another-secret-key-entirely-different", nonces.issue(SECRET)) is None


def test_login_stores_nothing(app, client, moodle):
    def stored() -> int:
        with app.app_context():
            count = db.session.scalar(select(func.count()).select_from(LtiStoredValue))
            db.session.remove()
            return count

    before = stored()
    for _ in range(3):
        assert oidc_login(client, moodle).status_code == 302
    assert stored() == before


@pytest.mark.parametrize("case", ["expired", "tampered"])
def test_launch_with_expired_or_tampered_nonce_is_refused(case, app, client, moodle, launcher,
                                                          count_rows):
    login = launcher.login(client, moodle)
    if case == "expired":  # issued by us with our key, but eleven minutes ago
        nonce = nonces.issue(app.config["SECRET_KEY"], now=time.time() - 660)
    else:
        nonce = login.nonce[:-4] + "0000" if not login.nonce.endswith("0000") else (
            login.nonce[:-4] + "1111")
    before = count_rows()
    token = moodle.sign(moodle.claims(nonce))
    response = client.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert response.status_code == 401
    assert "nonce" in response.get_data(as_text=True)
    assert count_rows() == before
    # The genuine nonce of that login still works: a refused forgery burns nothing.
    token = moodle.sign(moodle.claims(login.nonce))
    assert client.post("/lti/launch", data={"id_token": token,
                                            "state": login.state}).status_code == 302

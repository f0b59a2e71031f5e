"""Key rotation on both sides: the tool's signing keys and the platform's JWKS."""

from __future__ import annotations

from datetime import timedelta

import jwt
import pytest
from cryptography.exceptions import InvalidTag
from sqlalchemy import select

from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.lti import keys
from lms_plugin.lti.models import LtiToolKey
from lms_plugin.lti.tool import DbToolConf


def test_jwks_publishes_a_generated_key(client, app):
    response = client.get("/lti/jwks")
    assert response.status_code == 200
    published = response.get_json()["keys"]
    assert len(published) == 1
    assert published[0]["kid"] and published[0]["alg"] == "RS256"
    assert published[0]["kty"] == "RSA" and "d" not in published[0]
    assert client.get("/lti/jwks").get_json() == {"keys": published}  # stable


def test_private_key_is_encrypted_at_rest_with_a_key_from_secret_key(app):
    with app.app_context():
        signing = keys.current_signing_key()
        db.session.commit()
        row = db.session.scalar(select(LtiToolKey))
        assert "PRIVATE KEY" not in row.private_key_encrypted
        assert keys.decrypt_private_pem(row.private_key_encrypted, row.kid) == signing.private_pem
        with pytest.raises(InvalidTag):
            keys.decrypt_private_pem(row.private_key_encrypted, row.kid,
                                     secret_key="another-secret-key-of-enough-length")


def test_tool_key_rotation_publishes_both_and_signs_with_the_new(app, client):
    with app.app_context():
        old = keys.current_signing_key()
        new_row = keys.rotate(timedelta(days=7))
        db.session.commit()
        new = keys.current_signing_key()
    assert new.kid == new_row.kid != old.kid
    kids = [k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]]
    assert set(kids) == {old.kid, new.kid}
    # A token signed by the tool now verifies with the newest published key.
    token = jwt.encode({"x": 1}, new.private_pem, algorithm="RS256", headers={"kid": new.kid})
    jwk = next(k for k in client.get("/lti/jwks").get_json()["keys"]
               if k["kid"] == jwt.get_unverified_header(token)["kid"])
    assert jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=["RS256"]) == {"x": 1}
    # A pylti1p3 registration signs with the new key too.
    with app.app_context():
        conf = DbToolConf()
        assert conf.get_jwks()["keys"][0]["kid"] == new.kid


def test_old_key_is_retired_after_the_grace_period(app, client):
    with app.app_context():
        old = keys.current_signing_key()
        keys.rotate(timedelta(days=7))
        db.session.commit()
        row = db.session.scalar(select(LtiToolKey).where(LtiToolKey.kid == old.kid))
        assert row.status == "retiring"
        row.retire_after = utcnow() - timedelta(seconds=1)  # the grace period has passed
        db.session.commit()
    assert old.kid not in [k["kid"] for k in client.get("/lti/jwks").get_json()["keys"]]
    with app.app_context():
        keys.retire_expired()
        db.session.commit()
        assert db.session.scalar(select(LtiToolKey.status)
                                 .where(LtiToolKey.kid == old.kid)) == "retired"


def test_platform_key_rotation_refetches_the_jwks_once(client, moodle, launcher, app):
    assert launcher.launch(client, moodle).status_code == 302
    assert moodle.fetches == 1
    assert launcher.launch(app.test_client(), moodle, sub="user-2").status_code == 302
    assert moodle.fetches == 1  # cached
    moodle.rotate_key()
    assert launcher.launch(app.test_client(), moodle, sub="user-3").status_code == 302
    assert moodle.fetches == 2  # unknown kid: exactly one refetch, then success


def test_unknown_kid_after_refetch_is_refused_without_refetch_loop(client, moodle, launcher,
                                                                   app):
    from tests.lti.platform import new_key

    assert launcher.launch(client, moodle).status_code == 302
    stray = new_key()
    response = launcher.launch(app.test_client(), moodle, sign={"key": stray})
    assert response.status_code == 401
    assert moodle.fetches == 2


def test_static_public_key_registration(app, client, make_platform, launcher):
    platform = make_platform(register=False)
    with app.app_context():
        platform.platform_id = platform.register(
            key_set_url=None, public_key_pem=platform.key.public_pem.decode())
    assert launcher.launch(client, platform).status_code == 302
    assert platform.fetches == 0
    from tests.lti.platform import new_key

    response = launcher.launch(app.test_client(), platform, sign={
        "key": new_key(), "headers": {"kid": platform.key.kid}})
    assert response.status_code == 401


def test_key_set_url_down_is_a_clear_refusal(app, client, make_platform, launcher,
                                            count_rows):
    platform = make_platform(register=False)
    with app.app_context():
        platform.platform_id = platform.register(
            key_set_url="http://127.0.0.1:9/nothing-listens-here")
    before = count_rows()
    response = launcher.launch(client, platform)
    assert response.status_code == 401
    assert "could not fetch the platform key set" in response.get_data(as_text=True)
    assert count_rows() == before

"""Every bad id_token or login is refused with a clear 400/401/403, logged, and writes nothing."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import pytest

from lms_plugin.extensions import db
from lms_plugin.lti import services
from tests.lti.platform import CLAIM, TestPlatform, login_state, new_key, oidc_login

OTHER_KEY = new_key()


def _now() -> int:
    return int(time.time())


# name -> (launch kwargs built from the platform, expected status, words in the page)
CASES: dict[str, tuple[Callable[[TestPlatform], dict[str, Any]], int, str]] = {
    "bad signature": (lambda p: {"sign": {"key": OTHER_KEY, "headers": {"kid": p.key.kid}}},
                      401, "Signature verification failed"),
    "unknown kid": (lambda p: {"sign": {"key": OTHER_KEY}}, 401, "unknown key id"),
    "alg none": (lambda p: {"sign": {"alg": "none"}}, 401, "algorithm"),
    "alg HS256 with the public key as secret": (lambda p: {"sign": {"alg": "HS256"}}, 401,
                                                "algorithm"),
    "alg RS512": (lambda p: {"sign": {"alg": "RS512"}}, 401, "RS256 only"),
    "unknown issuer": (lambda p: {"claims": {"iss": "https://evil.example"}}, 401,
                       "no registration"),
    "aud is another client": (lambda p: {"claims": {"aud": "someone-else"}}, 401,
                              "no registration"),
    "aud array without azp": (lambda p: {"claims": {"aud": [p.client_id, "other"]}}, 401,
                              "no azp"),
    "aud array with foreign azp": (lambda p: {"claims": {"aud": ["other", p.client_id],
                                                         "azp": "other"}}, 401,
                                   "no registration"),
    "azp not among aud": (lambda p: {"claims": {"azp": "other"}}, 401, "azp"),
    "no aud": (lambda p: {"drop": ("aud",)}, 401, "audience"),
    "expired": (lambda p: {"claims": {"exp": _now() - 600, "iat": _now() - 900}}, 401,
                "expired"),
    "iat in the future beyond skew": (lambda p: {"claims": {"iat": _now() + 600}}, 401,
                                      "future"),
    "no exp": (lambda p: {"drop": ("exp",)}, 401, "exp"),
    "missing nonce": (lambda p: {"drop": ("nonce",)}, 401, "nonce"),
    "nonce never issued": (lambda p: {"claims": {"nonce": "made-up-nonce"}}, 401, "nonce"),
    "mismatched state": (lambda p: {"state": "state-not-mine"}, 401, "state"),
    "unknown deployment": (lambda p: {"claims": {"lti:deployment_id": "99"}}, 403,
                           "deployment"),
    "deployment id not a string": (lambda p: {"claims": {"lti:deployment_id": 1}}, 403,
                                   "deployment"),
    "missing message_type": (lambda p: {"drop": ("lti:message_type",)}, 400, "message"),
    "unknown message_type": (lambda p: {"claims": {"lti:message_type": "Nope"}}, 400,
                             "message"),
    "wrong version": (lambda p: {"claims": {"lti:version": "1.1"}}, 400, "version"),
    "missing roles": (lambda p: {"drop": ("lti:roles",)}, 400, "Roles"),
    "missing resource_link": (lambda p: {"drop": ("lti:resource_link",)}, 400,
                              "Resource Link"),
    "missing target_link_uri": (lambda p: {"drop": ("lti:target_link_uri",)}, 400,
                                "target_link_uri"),
    "missing sub": (lambda p: {"drop": ("sub",)}, 401, "sub"),
    "overlong sub": (lambda p: {"claims": {"sub": "x" * 300}}, 400, "sub"),
    "overlong context id": (lambda p: {"claims": {"lti:context": {"id": "c" * 300}}}, 400,
                            "context"),
    "context not an object": (lambda p: {"claims": {"lti:context": "course-1"}}, 400,
                              "context"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_launch_is_refused_and_writes_nothing(case, client, moodle, launcher, count_rows,
                                                  caplog):
    build, status, words = CASES[case]
    before = count_rows()
    with caplog.at_level(logging.WARNING, logger="lms_plugin.lti.views"):
        response = launcher.launch(client, moodle, **build(moodle))
    page = response.get_data(as_text=True)
    assert response.status_code == status, page
    assert "LTI launch refused" in page and words.lower() in page.lower()
    assert count_rows() == before
    with client.session_transaction() as sess:
        assert "_user_id" not in sess and "lti" not in sess
    assert any("LTI launch refused" in r.getMessage() and words.lower() in
               r.getMessage().lower() for r in caplog.records)


def test_problem_json_when_asked(client, moodle, launcher):
    login = launcher.login(client, moodle)
    token = moodle.sign(moodle.claims(login.nonce), key=OTHER_KEY)
    response = client.post("/lti/launch", data={"id_token": token, "state": login.state},
                           headers={"Accept": "application/json"})
    assert response.status_code == 401
    assert "unknown key id" in response.get_json()["detail"]


def test_missing_id_token_or_state(client, moodle, launcher, count_rows):
    before = count_rows()
    login = launcher.login(client, moodle)
    assert client.post("/lti/launch", data={"state": login.state}).status_code == 400
    token = moodle.sign(moodle.claims(login.nonce))
    assert client.post("/lti/launch", data={"id_token": token}).status_code == 401
    assert client.post("/lti/launch", data={"id_token": "not-a-jwt",
                                            "state": login.state}).status_code == 401
    assert client.post("/lti/launch", data={"id_token": "a.b.c",
                                            "state": login.state}).status_code == 401
    assert count_rows() == before


def test_state_cookie_from_another_browser_is_refused(app, client, moodle, launcher,
                                                      count_rows):
    """Login CSRF: an id_token obtained in one browser posted from another."""
    before = count_rows()
    login = launcher.login(client, moodle)
    token = moodle.sign(moodle.claims(login.nonce))
    victim = app.test_client()
    response = victim.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert response.status_code == 401
    assert "state" in response.get_data(as_text=True)
    assert count_rows() == before


def test_replayed_id_token_is_refused(client, moodle, launcher, count_rows):
    login = launcher.login(client, moodle)
    token = moodle.sign(moodle.claims(login.nonce))
    first = client.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert first.status_code == 302
    after_first = count_rows()
    # Same browser, state cookie still there: only the consumed nonce stops the replay.
    assert client.get_cookie(f"lti1p3-{login.state}") is not None
    replay = client.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert replay.status_code == 401
    assert "already used" in replay.get_data(as_text=True)
    assert count_rows() == after_first


def test_small_clock_skew_is_tolerated(client, moodle, launcher):
    """PyJWT >= 2.6 rejects an iat a second ahead without leeway; LMS clocks drift."""
    response = launcher.launch(client, moodle, {"iat": _now() + 20})
    assert response.status_code == 302


def test_aud_array_with_azp_is_accepted(client, moodle, launcher):
    response = launcher.launch(client, moodle, {"aud": ["other", moodle.client_id],
                                                "azp": moodle.client_id})
    assert response.status_code == 302


def test_disabled_registration_refuses_login_and_launch(app, client, moodle, launcher,
                                                        count_rows):
    login = launcher.login(client, moodle)  # started before the admin disabled it
    with app.app_context():
        services.set_enabled(moodle.platform_id, False)
        db.session.commit()
    before = count_rows()
    token = moodle.sign(moodle.claims(login.nonce))
    response = client.post("/lti/launch", data={"id_token": token, "state": login.state})
    assert response.status_code == 403
    assert "disabled" in response.get_data(as_text=True)
    again = oidc_login(client, moodle)
    assert again.status_code == 403
    assert count_rows() == before


def test_login_from_unknown_platform_or_without_hint(client, moodle, make_platform):
    stranger = make_platform(register=False)
    assert oidc_login(client, stranger).status_code == 400
    assert oidc_login(client, moodle, login_hint="").status_code == 400
    assert oidc_login(client, moodle, iss="").status_code == 400


def test_deep_linking_request_from_a_learner_is_refused(client, moodle, launcher,
                                                         count_rows):
    settings = {"deep_link_return_url": "https://lms.example/dl/return",
                "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"]}
    before = count_rows()
    response = launcher.launch(client, moodle, {
        "lti:message_type": "LtiDeepLinkingRequest",
        "https://purl.imsglobal.org/spec/lti-dl/claim/deep_linking_settings": settings,
    }, drop=("lti:resource_link",))
    assert response.status_code == 403  # the default role is Learner
    assert "only instructors" in response.get_data(as_text=True)
    assert count_rows() == before
    # Without its settings claim it fails validation instead.
    response = launcher.launch(client, moodle, {"lti:message_type": "LtiDeepLinkingRequest"},
                               drop=("lti:resource_link",))
    assert response.status_code == 400
    assert "Deep Linking Settings" in response.get_data(as_text=True)
    assert count_rows() == before


def test_login_over_https_sets_samesite_none_secure_cookie(client, moodle):
    response = client.get("/lti/login", base_url="https://tool.test", query_string={
        "iss": moodle.issuer, "login_hint": "h", "client_id": moodle.client_id,
        "lti1p3_new_window": "1"})
    login = login_state(response)
    cookie = next(c for c in response.headers.getlist("Set-Cookie")
                  if c.startswith(f"lti1p3-{login.state}="))
    assert "Secure" in cookie and "SameSite=None" in cookie


def test_claim_helper_is_the_lti_namespace():
    assert CLAIM == "https://purl.imsglobal.org/spec/lti/claim/"


def test_concurrent_replay_signs_in_once(app, moodle, launcher, count_rows):
    """Two browsers holding the same id_token and state race: the nonce lets one through."""
    import threading

    first = app.test_client()
    login = launcher.login(first, moodle)
    token = moodle.sign(moodle.claims(login.nonce))
    second = app.test_client()
    second.set_cookie(f"lti1p3-{login.state}", login.state)
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def post(browser) -> None:
        barrier.wait()
        response = browser.post("/lti/launch", data={"id_token": token, "state": login.state})
        statuses.append(response.status_code)

    threads = [threading.Thread(target=post, args=(b,)) for b in (first, second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [302, 401]
    assert count_rows()["User"] == 1


def test_concurrent_first_launches_of_one_person_make_one_user(app, moodle, launcher,
                                                               count_rows):
    import threading

    prepared = []
    for _ in range(2):
        browser = app.test_client()
        login = launcher.login(browser, moodle)
        prepared.append((browser, login.state, moodle.sign(moodle.claims(login.nonce))))
    statuses: list[int] = []
    barrier = threading.Barrier(2)

    def post(browser, state, token) -> None:
        barrier.wait()
        statuses.append(browser.post("/lti/launch", data={"id_token": token,
                                                          "state": state}).status_code)

    threads = [threading.Thread(target=post, args=args) for args in prepared]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [302, 302]
    counts = count_rows()
    assert counts["LtiIdentity"] == 1 and counts["User"] == 1
    assert counts["LtiContext"] == 1 and counts["LtiMembership"] == 1


def test_malformed_header_is_a_400_not_a_500(client, moodle, launcher, count_rows):
    import base64

    login = launcher.login(client, moodle)
    token = moodle.sign(moodle.claims(login.nonce))
    _, body, signature = token.split(".")
    header = base64.urlsafe_b64encode(b"[1, 2]").rstrip(b"=").decode()
    before = count_rows()
    response = client.post("/lti/launch", data={"id_token": f"{header}.{body}.{signature}",
                                                "state": login.state})
    assert response.status_code in (400, 401)
    assert count_rows() == before


def test_deactivated_person_is_refused(app, client, moodle, launcher):
    from sqlalchemy import select

    from lms_plugin.accounts.models import User

    assert launcher.launch(client, moodle).status_code == 302
    with app.app_context():
        db.session.scalar(select(User)).active = False
        db.session.commit()
    other = app.test_client()
    response = launcher.launch(other, moodle)
    assert response.status_code == 403
    with other.session_transaction() as sess:
        assert "_user_id" not in sess

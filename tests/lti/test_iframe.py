"""Launches inside an LMS iframe: the cookie check page and postMessage storage (no cookies)."""

from __future__ import annotations

import re
from html import unescape

from tests.lti.platform import oidc_login


def _attr(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name} in page"
    return unescape(match.group(1))


def test_login_without_new_window_serves_the_cookie_check_page(client, moodle, count_rows):
    before = count_rows()
    response = oidc_login(client, moodle, new_window=False)
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert "/static/lti/lti.js" in html and "<script>" not in html  # CSP: no inline script
    url = _attr(html, "data-continue-url")
    assert "lti1p3_new_window=1" in url and "login_hint=hint-1" in url
    assert "Open in a new tab" in html
    assert client.get("/static/lti/lti.js").status_code == 200
    assert count_rows() == before
    # The page's continue URL performs the real login.
    follow = client.get(url.replace("http://localhost", ""))
    assert follow.status_code == 302 and follow.headers["Location"].startswith(
        moodle.auth_login_url)


def test_cookie_check_still_refuses_unknown_platforms(client, make_platform):
    assert oidc_login(client, make_platform(register=False), new_window=False).status_code == 400


def test_launch_without_cookies_via_platform_postmessage_storage(app, moodle, count_rows):
    """Canvas sends lti_storage_target; the browser keeps no cookie of ours at all."""
    browser = app.test_client(use_cookies=False)
    response = oidc_login(browser, moodle, new_window=False,
                          lti_storage_target="post_message_forwarding")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert _attr(html, "data-target") == "post_message_forwarding"
    assert _attr(html, "data-platform-origin") == moodle.server.url("")
    auth_url = _attr(html, "data-auth-url")
    state, nonce = _attr(html, "data-state"), _attr(html, "data-nonce")
    assert f"state={state}" in auth_url and f"nonce={nonce}" in auth_url

    token = moodle.sign(moodle.claims(nonce))
    before = count_rows()
    # The platform posts the id_token: with no state cookie we answer with the page that
    # checks the state in the platform's storage (the JS), creating nothing yet.
    page = browser.post("/lti/launch", data={"id_token": token, "state": state})
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    proof = _attr(html, 'name="lti_storage_proof" value')
    assert _attr(html, "data-platform-origin") == moodle.server.url("")
    assert count_rows() == before
    # The JS found the state in the platform's storage and re-posts the form.
    own_page = {"Origin": "http://tool.test", "Sec-Fetch-Site": "same-origin"}
    done = browser.post("/lti/launch", data={"id_token": token, "state": state,
                                             "lti_storage_proof": proof}, headers=own_page)
    assert done.status_code == 302, done.get_data(as_text=True)
    assert done.headers["Location"] == "/home"
    # The storage-verified state is single-use: the same post again is refused.
    again = browser.post("/lti/launch", data={"id_token": token, "state": state,
                                              "lti_storage_proof": proof}, headers=own_page)
    assert again.status_code == 401


def test_storage_check_claim_without_a_storage_login_is_refused(app, moodle, launcher,
                                                                count_rows):
    """A storage proof only counts for a state issued with postMessage storage."""
    client = app.test_client()
    login = launcher.login(client, moodle)
    token = moodle.sign(moodle.claims(login.nonce))
    stranger = app.test_client(use_cookies=False)
    before = count_rows()
    response = stranger.post("/lti/launch", data={"id_token": token, "state": login.state,
                                                  "lti_storage_proof": "x"},
                             headers={"Origin": "http://tool.test"})
    assert response.status_code == 401
    assert count_rows() == before

"""Login CSRF through the postMessage-storage launch path (issue 10 item 4).

An attacker runs a storage-path login of their own (so the tool holds a storage entry for
their state), gets an unused id_token for their own account, and makes a victim's browser
post it. The second post of the storage path must come from the tool's own page (same
origin) and carry the proof that page was given; otherwise nobody is signed in.
"""

from __future__ import annotations

import re
from html import unescape

import pytest

from tests.lti.platform import oidc_login

OWN_PAGE = {"Origin": "http://tool.test", "Sec-Fetch-Site": "same-origin"}


def _attr(html: str, name: str) -> str:
    match = re.search(rf'{name}="([^"]*)"', html)
    assert match, f"no {name} in page"
    return unescape(match.group(1))


def _attacker_launch(app, moodle) -> dict[str, str]:
    """The attacker's own storage-path login and first launch post: everything they know."""
    attacker = app.test_client(use_cookies=False)
    html = oidc_login(attacker, moodle, new_window=False,
                      lti_storage_target="post_message_forwarding").get_data(as_text=True)
    state, nonce = _attr(html, "data-state"), _attr(html, "data-nonce")
    token = moodle.sign(moodle.claims(nonce, sub="attacker"))
    page = attacker.post("/lti/launch", data={"id_token": token, "state": state})
    assert page.status_code == 200
    proof = _attr(page.get_data(as_text=True), 'name="lti_storage_proof" value')
    return {"id_token": token, "state": state, "lti_storage_proof": proof}


def _signed_in(browser) -> bool:
    response = browser.get("/home")
    return response.status_code == 200


@pytest.mark.parametrize("headers", [
    {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
    {"Origin": "https://evil.example"},  # a browser without Fetch Metadata
    {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"},  # a sibling subdomain is not the tool's page
    {"Origin": "null"},  # sandboxed frame / data: URL
    {},  # neither header: not provably from the tool's page
], ids=["cross-site", "foreign-origin", "fetch-cross-site", "same-site", "null-origin",
        "no-headers"])
def test_forged_storage_post_from_another_site_signs_nobody_in(app, moodle, count_rows,
                                                                headers):
    forged = _attacker_launch(app, moodle)
    victim = app.test_client()
    before = count_rows()
    response = victim.post("/lti/launch", data=forged, headers=headers)
    assert response.status_code == 403, response.get_data(as_text=True)
    assert "own page" in unescape(response.get_data(as_text=True))
    assert count_rows() == before
    assert not _signed_in(victim)


@pytest.mark.parametrize("proof", [None, "", "0" * 64, "forged"])
def test_storage_post_without_the_pages_proof_is_refused(app, moodle, count_rows, proof):
    forged = _attacker_launch(app, moodle)
    if proof is None:
        forged.pop("lti_storage_proof")
        forged["lti_storage_checked"] = "1"  # the old proof of state: no longer accepted
    else:
        forged["lti_storage_proof"] = proof
    victim = app.test_client()
    before = count_rows()
    response = victim.post("/lti/launch", data=forged, headers=OWN_PAGE)
    if proof is None:
        # Without a proof the tool only answers with its storage-check page again.
        assert response.status_code == 200
        assert 'name="lti_storage_proof"' in response.get_data(as_text=True)
    elif proof == "":
        assert response.status_code == 200  # an empty proof is no proof: the page again
    else:
        assert response.status_code == 403
        assert "no valid proof" in response.get_data(as_text=True)
    assert count_rows() == before
    assert not _signed_in(victim)


def test_proof_is_bound_to_the_id_token(app, moodle, count_rows):
    """A proof served for one id_token does not vouch for another with the same state."""
    first = _attacker_launch(app, moodle)
    other = _attacker_launch(app, moodle)
    mixed = {**first, "id_token": other["id_token"]}
    victim = app.test_client()
    before = count_rows()
    assert victim.post("/lti/launch", data=mixed, headers=OWN_PAGE).status_code == 403
    assert count_rows() == before


def test_refused_forgeries_leave_the_real_storage_launch_working(app, moodle):
    """A refused post does not use up the state: the person's own page still signs them in."""
    real = _attacker_launch(app, moodle)  # here: the legitimate person's own launch
    browser = app.test_client()
    assert browser.post("/lti/launch", data=real,
                        headers={"Origin": "https://evil.example"}).status_code == 403
    done = browser.post("/lti/launch", data=real, headers=OWN_PAGE)
    assert done.status_code == 302, done.get_data(as_text=True)
    assert _signed_in(browser)

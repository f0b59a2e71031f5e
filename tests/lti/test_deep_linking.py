"""Deep Linking 2.0: instructor launch → module picker → signed answer → a working link."""

from __future__ import annotations

import re
from html import unescape
from typing import Any

import jwt
import pytest
from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiResourceLink
from tests.learning.builders import build_module
from tests.lti.platform import CLAIM, LIS

DL = "https://purl.imsglobal.org/spec/lti-dl/claim/"
AGS = "https://purl.imsglobal.org/spec/lti-ags/claim/endpoint"
RETURN_URL = "https://lms.example/mod/lti/contentitem_return.php?course=7"
INSTRUCTOR = [LIS + "membership#Instructor"]


def _settings(**overrides: Any) -> dict[str, Any]:
    settings = {"deep_link_return_url": RETURN_URL, "accept_types": ["ltiResourceLink"],
                "accept_presentation_document_targets": ["iframe", "window"],
                "accept_multiple": True, "data": "opaque-csrf-xyz"}
    settings.update(overrides)
    return settings


def _dl_launch(launcher, client, platform, *, roles=None, ags=True, **settings: Any):
    claims: dict[str, Any] = {"lti:message_type": "LtiDeepLinkingRequest",
                              DL + "deep_linking_settings": _settings(**settings)}
    if ags:
        claims[AGS] = {"scope": ["https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"],
                       "lineitems": "https://lms.example/lineitems"}
    return launcher.launch(client, platform, claims, drop=("lti:resource_link",),
                           roles=roles or INSTRUCTOR, sub="teacher-1")


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def _answer(client, response) -> dict[str, Any]:
    """The return page's form: where it posts and the verified JWT claims."""
    html = response.get_data(as_text=True)
    action = unescape(re.search(r'<form id="lti-deep-link-return" method="post" '
                                r'action="([^"]+)"', html).group(1))
    token = re.search(r'name="JWT" value="([^"]+)"', html).group(1)
    jwks = client.get("/lti/jwks").get_json()
    header = jwt.get_unverified_header(token)
    key = next(k for k in jwks["keys"] if k["kid"] == header["kid"])
    claims = jwt.decode(token, jwt.PyJWK(key).key, algorithms=["RS256"],
                        audience=None, options={"verify_aud": False})
    return {"action": action, "claims": claims}


@pytest.fixture
def modules(app) -> dict[str, dict[str, Any]]:
    return {"cpoe-basics": build_module(app, slug="cpoe-basics", estimated_minutes=20),
            "bcma-scanning": build_module(app, slug="bcma-scanning", estimated_minutes=45)}


def test_round_trip_places_modules_whose_links_open_them(app, client, launcher, moodle,
                                                         modules):
    response = _dl_launch(launcher, client, moodle)
    assert response.status_code == 302 and response.headers["Location"].endswith(
        "/lti/deep-link")
    page = client.get("/lti/deep-link")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert 'value="cpoe-basics"' in html and 'value="bcma-scanning"' in html
    assert 'type="checkbox"' in html

    answer = client.post("/lti/deep-link", data={"csrf_token": _csrf(html),
                                                 "module": ["bcma-scanning", "cpoe-basics"]})
    assert answer.status_code == 200
    result = _answer(client, answer)
    claims = result["claims"]
    assert result["action"] == RETURN_URL
    assert claims["iss"] == moodle.client_id and claims["aud"] == moodle.issuer
    assert claims[CLAIM + "message_type"] == "LtiDeepLinkingResponse"
    assert claims[CLAIM + "version"] == "1.3.0"
    assert claims[CLAIM + "deployment_id"] == moodle.deployment_id
    assert claims[DL + "data"] == "opaque-csrf-xyz"
    assert claims["nonce"] and claims["exp"] > claims["iat"]
    items = claims[DL + "content_items"]
    assert [i["custom"] for i in items] == [{"module": "bcma-scanning"},
                                            {"module": "cpoe-basics"}]
    for item in items:
        assert item["type"] == "ltiResourceLink"
        assert item["title"] and "text" in item
        assert item["custom"]  # never an empty object (Moodle 4.5 fails on {})
        slug = item["custom"]["module"]
        assert item["url"] == f"http://tool.test/lti/launch?module={slug}"
        assert item["lineItem"] == {"scoreMaximum": 100, "label": item["title"],
                                    "resourceId": slug, "tag": "lms-plugin-module"}
    # The request is answered once.
    assert client.get("/lti/deep-link").status_code == 400

    # The LMS now launches the link it created: the learner lands on the chosen module.
    learner = app.test_client()
    placed = items[1]
    launched = launcher.launch(learner, moodle, {
        "lti:custom": placed["custom"], "lti:target_link_uri": placed["url"],
        "lti:resource_link": {"id": "placed-1", "title": placed["title"]}}, sub="nurse-9")
    assert launched.status_code == 302
    assert launched.headers["Location"].endswith("/modules/cpoe-basics")
    module_page = learner.get("/modules/cpoe-basics")
    assert module_page.status_code == 200
    with app.app_context():
        link = db.session.scalar(select(LtiResourceLink).where(
            LtiResourceLink.resource_link_id == "placed-1"))
        assert link.module_slug == "cpoe-basics"


def test_picker_filters_by_system_audience_duration_and_text(client, launcher, moodle,
                                                            modules):
    _dl_launch(launcher, client, moodle)

    def shown(**query: str) -> set[str]:
        html = client.get("/lti/deep-link", query_string=query).get_data(as_text=True)
        return set(re.findall(r'name="module"\s+id="module-[^"]+" value="([^"]+)"', html))

    assert shown() == {"cpoe-basics", "bcma-scanning"}
    assert shown(system="ehr-bcma-scanning") == {"bcma-scanning"}
    assert shown(max_minutes="30") == {"cpoe-basics"}
    assert shown(q="BCMA") == {"bcma-scanning"}
    assert shown(audience="nurse") == {"cpoe-basics", "bcma-scanning"}
    assert shown(audience="pharmacist") == set()
    assert client.get("/lti/deep-link?max_minutes=soon").status_code == 422
    # Issue 9 item 6: beyond what the database compares (was a 500) or not ASCII digits.
    for bad in ("99999999999999999999", "2147483648", "%C2%B2"):
        refused = client.get(f"/lti/deep-link?max_minutes={bad}")
        assert refused.status_code == 422, bad
        assert "duration (a whole number of minutes) must be" in refused.get_data(as_text=True)


def test_single_choice_platform_gets_radios_and_refuses_two(app, client, launcher, moodle,
                                                           modules):
    _dl_launch(launcher, client, moodle, accept_multiple=False, ags=False)
    html = client.get("/lti/deep-link").get_data(as_text=True)
    assert 'type="radio"' in html and 'type="checkbox"' not in html
    refused = client.post("/lti/deep-link", data={"csrf_token": _csrf(html),
                                                  "module": ["cpoe-basics", "bcma-scanning"]})
    assert refused.status_code == 422
    assert "only one module" in refused.get_data(as_text=True)
    unknown = client.post("/lti/deep-link", data={"csrf_token": _csrf(html),
                                                  "module": "no-such-module"})
    assert unknown.status_code == 422
    answer = client.post("/lti/deep-link", data={"csrf_token": _csrf(html),
                                                 "module": "cpoe-basics"})
    items = _answer(client, answer)["claims"][DL + "content_items"]
    assert len(items) == 1 and "lineItem" not in items[0]  # no AGS offered: no column


def test_cancel_answers_with_no_items_and_echoes_data(client, launcher, moodle, modules):
    _dl_launch(launcher, client, moodle)
    html = client.get("/lti/deep-link").get_data(as_text=True)
    answer = client.post("/lti/deep-link", data={"csrf_token": _csrf(html), "cancel": "1",
                                                 "module": "cpoe-basics"})
    claims = _answer(client, answer)["claims"]
    assert claims[DL + "content_items"] == []
    assert claims[DL + "data"] == "opaque-csrf-xyz"


def test_content_developer_may_but_learner_may_not(app, client, launcher, moodle, modules,
                                                  count_rows):
    before = count_rows()
    refused = _dl_launch(launcher, client, moodle, roles=[LIS + "membership#Learner"])
    assert refused.status_code == 403
    assert count_rows() == before
    assert client.get("/lti/deep-link").status_code in (302, 401)  # not signed in

    other = app.test_client()
    allowed = _dl_launch(launcher, other, moodle,
                         roles=[LIS + "membership#ContentDeveloper"])
    assert allowed.status_code == 302
    assert other.get("/lti/deep-link").status_code == 200


def test_platform_accepting_no_resource_links_is_refused(client, launcher, moodle,
                                                        count_rows):
    before = count_rows()
    response = _dl_launch(launcher, client, moodle, accept_types=["file", "html"])
    assert response.status_code == 400
    assert "resource link" in response.get_data(as_text=True).lower()
    assert count_rows() == before


def test_picker_without_a_request_says_so(client, login_as):
    login_as("author")
    response = client.get("/lti/deep-link")
    assert response.status_code == 400
    assert "no content selection in progress" in response.get_data(as_text=True)
    with client.application.app_context():
        assert db.session.scalar(select(func.count()).select_from(LtiResourceLink)) == 0


def test_with_nothing_published_the_picker_says_why_and_who_publishes(client, launcher,
                                                                     moodle):
    """A fresh install's organisation holds only drafts awaiting clinical sign-off: the
    picker must say so, not "no module matches these filters" when there are none."""
    _dl_launch(launcher, client, moodle)
    html = client.get("/lti/deep-link").get_data(as_text=True)
    assert "No module is published in your organisation yet" in html
    assert "clinical sign-off" in html
    filtered = client.get("/lti/deep-link", query_string={"q": "zzz"}).get_data(as_text=True)
    assert "No published module matches these filters." in filtered

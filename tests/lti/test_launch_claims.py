# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Hostile claim types and sizes through the real launch (issue 9 item 6, claims part).

Every claim the tool reads has one rule (``lms_plugin.lti.claims``): the wrong JSON type is
refused with a 4xx naming the claim and nothing is written; over-long identifiers, URLs
and emails are refused; over-long display text is cut; nothing is stored as a Python repr.
"""

from __future__ import annotations

from html import unescape

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.lti import claims as claim_rules
from lms_plugin.lti.launch import AGS_CLAIM, NRPS_CLAIM
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiMembership, LtiResourceLink

CONTEXT = {"id": "course-1", "title": "BCMA training"}
LONG_EMAIL = "a" * 320 + "@example.org"

from tests.lti.ags_helpers import INSTRUCTOR, fake_lms, services  # noqa: E402,F401

# (case id, claims to set, text the refusal names)
REFUSED = [
    ("name-object", {"name": {"first": "Jane"}}, "claim name must be a string"),
    ("given-name-array", {"given_name": ["Jane"]}, "claim given_name must be a string"),
    ("family-name-number", {"family_name": 7}, "claim family_name must be a string"),
    ("name-nul", {"name": "Jane\x00Nurse"}, "claim name contains a NUL"),
    ("email-number", {"email": 12345}, "claim email must be a string"),
    ("email-object", {"email": {"address": "x@example.org"}}, "claim email must be a string"),
    ("email-too-long", {"email": LONG_EMAIL}, "claim email is longer than 320"),
    ("roles-string", {"lti:roles": "Instructor"}, "claim roles must be an array"),
    ("roles-nested", {"lti:roles": [["Instructor"]]}, "claim roles[0] must be a string"),
    ("roles-number", {"lti:roles": [1]}, "claim roles[0] must be a string"),
    ("roles-null-item", {"lti:roles": [None]}, "claim roles[0] must be a string"),
    ("sub-too-long", {"sub": "s" * 256}, "claim sub is longer than 255"),
    ("custom-not-object", {"lti:custom": "job_role=RN"}, "claim custom must be an object"),
    ("custom-object-value", {"lti:custom": {"job_role": {"x": 1}}},
     "claim custom.job_role must be a string"),
    ("custom-array-value", {"lti:custom": {"department": ["ICU"]}},
     "claim custom.department must be a string"),
    ("custom-bool-value", {"lti:custom": {"facility": True}},
     "claim custom.facility must be a string"),
    ("custom-module-object", {"lti:custom": {"module": {"slug": "x"}}},
     "claim custom.module must be a string"),
    ("context-id-object", {"lti:context": {"id": {"a": 1}}}, "claim context.id must be"),
    ("context-id-too-long", {"lti:context": {"id": "c" * 256}}, "context.id is longer"),
    ("context-title-object", {"lti:context": {**CONTEXT, "title": {"en": "x"}}},
     "claim context.title must be a string"),
    ("context-string", {"lti:context": "course-1"}, "claim context must be an object"),
    ("link-title-array", {"lti:resource_link": {"id": "l", "title": ["x"]}},
     "claim resource_link.title must be a string"),
    ("link-id-bool", {"lti:resource_link": {"id": True}}, "claim resource_link.id must be"),
    ("target-link-object", {"lti:target_link_uri": {"url": "x"}},
     "claim target_link_uri must be a string"),
    ("ags-lineitem-object", {AGS_CLAIM: {"lineitem": {"url": "x"}}},
     "lineitem must be a string"),
    ("ags-scope-string", {AGS_CLAIM: {"scope": "score"}}, "scope must be an array"),
    ("nrps-url-too-long", {NRPS_CLAIM: {"context_memberships_url": "https://x/" + "a" * 1000}},
     "context_memberships_url is longer than 1000"),
]


@pytest.mark.parametrize(("claims", "named"), [(c, n) for _, c, n in REFUSED],
                         ids=[i for i, _, _ in REFUSED])
def test_hostile_claims_are_refused_and_nothing_is_written(app, client, moodle, launcher,
                                                           count_rows, claims, named):
    before = count_rows()
    response = launcher.launch(client, moodle, claims)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert named in unescape(response.get_data(as_text=True))
    assert count_rows() == before
    assert client.get("/home").status_code != 200  # nobody signed in


@pytest.mark.parametrize("claims", [{"iat": "1700000000"}, {"exp": "9999999999"},
                                    {"iat": None}, {"exp": [1]}, {"sub": {"id": "x"}}],
                         ids=["iat-string", "exp-string", "iat-null", "exp-array",
                              "sub-object"])
def test_registered_claims_of_the_wrong_type_are_refused(app, client, moodle, launcher, count_rows,
                                                   claims):
    """JWT registered claims: PyJWT refuses most of these at the signature check (401);
    the claim rule would refuse the rest (400)."""
    before = count_rows()
    response = launcher.launch(client, moodle, claims)
    assert response.status_code in (400, 401)
    assert count_rows() == before


def _stored(app, sub: str = "user-1") -> dict:
    with app.app_context():
        user = db.session.scalar(select(User).join(
            LtiIdentity, LtiIdentity.user_id == User.id).where(LtiIdentity.sub == sub))
        membership = db.session.scalar(select(LtiMembership).where(
            LtiMembership.user_id == user.id))
        context = db.session.get(LtiContext, membership.context_id)
        link = db.session.scalar(select(LtiResourceLink))
        out = {"name": user.name, "email": user.email, "job_role": user.job_role,
               "department": user.department, "context_id": context.context_id,
               "title": context.title, "label": context.label, "link_title": link.title,
               "roles": membership.roles}
        db.session.remove()
        return out


def test_display_text_is_cut_and_numbers_become_text(app, client, moodle, launcher):
    response = launcher.launch(client, moodle, {
        "name": "N" * 300,
        "email": "Jane.Nurse@Example.org",
        "lti:custom": {"job_role": 12345, "department": "ICU",
                       "unread": {"nested": ["ignored"]}},  # not read: not checked
        "lti:context": {"id": 42, "title": "T" * 600, "label": 7},
        "lti:resource_link": {"id": 9, "title": "L" * 700},
    })
    assert response.status_code == 302, response.get_data(as_text=True)
    stored = _stored(app)
    assert stored == {"name": "N" * 200, "email": "jane.nurse@example.org",
                      "job_role": "12345", "department": "ICU", "context_id": "42",
                      "title": "T" * 500, "label": "7", "link_title": "L" * 500,
                      "roles": ["http://purl.imsglobal.org/vocab/lis/v2/membership#Learner"]}
    # A returning launch with the same numeric ids finds the same rows (fast path too).
    again = launcher.launch(client, moodle, {"lti:context": {"id": 42, "title": "T" * 600},
                                             "lti:resource_link": {"id": 9}})
    assert again.status_code == 302
    with app.app_context():
        assert len(db.session.scalars(select(LtiContext)).all()) == 1


def test_null_optional_claims_count_as_absent(app, client, moodle, launcher):
    response = launcher.launch(client, moodle, {"name": None, "given_name": None,
                                                "family_name": None, "email": None,
                                                "lti:custom": None})
    assert response.status_code == 302
    stored = _stored(app)
    assert stored["name"] == "LMS user user-1" and stored["email"] is None


def test_the_one_rule_also_checks_roster_people():
    assert claim_rules.person_fields({"name": "x" * 300})["name"] == "x" * 200
    with pytest.raises(claim_rules.ClaimError, match="member name must be a string"):
        claim_rules.person_fields({"name": {"given": "x"}})
    with pytest.raises(claim_rules.ClaimError, match="member email is longer than 320"):
        claim_rules.person_fields({"email": LONG_EMAIL})


def test_roster_members_of_the_wrong_shape_are_not_stored_as_reprs(app, client, launcher,
                                                                    services):
    """The roster sync (NRPS) reads the same person fields by the same rule."""
    import re

    from lms_plugin.jobs import services as jobs

    services.lms.members["course-1"] = [
        {"user_id": "teacher-1", "status": "Active", "roles": INSTRUCTOR},
        {"user_id": "odd-1", "status": "Active", "roles": "Instructor",
         "name": {"given": "Odd"}, "email": LONG_EMAIL},
        {"user_id": {"id": "x"}, "status": "Active", "roles": []},
        {"user_id": 77, "status": "Active", "given_name": "Num", "family_name": "Ber"},
    ]
    services.launch(launcher, client, sub="teacher-1", module="m1", roles=INSTRUCTOR,
                    nrps=True)
    with app.app_context():
        context_id = db.session.scalar(select(LtiContext.id))
    html = client.get("/lti/courses").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert client.post(f"/lti/courses/{context_id}/sync",
                       data={"csrf_token": token}).status_code == 302
    with app.app_context():
        report = jobs.run_due_jobs("w", limit=10)
        db.session.commit()
        assert report.outcomes.get("succeeded") == 1, report
        people = {i.sub: (u.name, u.email) for i, u in db.session.execute(
            select(LtiIdentity, User).join(User, User.id == LtiIdentity.user_id))}
        roles = {i.sub: m.roles for i, m in db.session.execute(
            select(LtiIdentity, LtiMembership)
            .join(LtiMembership, LtiMembership.user_id == LtiIdentity.user_id))}
        db.session.remove()
    assert people["odd-1"] == ("LMS user odd-1", None)  # no repr, no cut address
    assert roles["odd-1"] == []  # a string is not split into characters
    assert people["77"] == ("Num Ber", None)
    assert not [sub for sub in people if sub.startswith("{")]

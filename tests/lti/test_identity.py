"""Who a launch signs in: identities per (organisation, issuer, sub), roles, Canvas shapes."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.lti.launch import map_roles, module_slug_from
from lms_plugin.lti.models import LtiIdentity
from tests.lti.platform import LIS

CANVAS = "https://canvas.instructure.com"


def _identities(app) -> list[tuple[str, str, int, int]]:
    with app.app_context():
        rows = db.session.execute(
            select(LtiIdentity.issuer, LtiIdentity.sub, LtiIdentity.user_id,
                   User.organisation_id).join(User, User.id == LtiIdentity.user_id)
            .order_by(LtiIdentity.id)).all()
        return [tuple(r) for r in rows]


def _user(app, sub: str, issuer: str | None = None) -> User:
    with app.app_context():
        query = select(LtiIdentity).where(LtiIdentity.sub == sub)
        if issuer:
            query = query.where(LtiIdentity.issuer == issuer)
        identity = db.session.scalars(query).one()
        user = identity.user
        _ = user.role_names
        db.session.expunge_all()
        return user


def test_two_hosted_canvas_tenants_with_the_same_sub_are_two_people(app, make_platform,
                                                                     launcher):
    """Hosted Canvas: one issuer for every customer; only client_id and org tell them apart."""
    school = make_platform(CANVAS, "10000000000001", organisation="Nursing School")
    hospital = make_platform(CANVAS, "10000000000002", organisation="City Hospital")
    assert launcher.launch(app.test_client(), school, sub="abc-123").status_code == 302
    assert launcher.launch(app.test_client(), hospital, sub="abc-123").status_code == 302
    rows = _identities(app)
    assert len(rows) == 2
    assert rows[0][2] != rows[1][2]  # different users
    assert rows[0][3] != rows[1][3]  # in different organisations


def test_moodle_and_canvas_of_one_health_system_with_overlapping_sub(app, make_platform,
                                                                     launcher):
    moodle = make_platform(organisation="Health System")
    canvas = make_platform(CANVAS, "20000000000001", organisation="Health System")
    assert launcher.launch(app.test_client(), moodle, sub="42").status_code == 302
    assert launcher.launch(app.test_client(), canvas, sub="42").status_code == 302
    rows = _identities(app)
    assert len(rows) == 2 and rows[0][2] != rows[1][2]
    assert rows[0][3] == rows[1][3]


def test_canvas_shaped_launch_with_unsubstituted_variables_and_no_email(app, client,
                                                                        make_platform,
                                                                        launcher):
    canvas = make_platform(CANVAS, "30000000000001")
    response = launcher.launch(client, canvas, {
        "https://purl.imsglobal.org/spec/lti/claim/custom": {
            "canvas_user_id": "$Canvas.user.id", "module": "$Canvas.module.id",
            "job_role": "Pharmacist", "department": "$Canvas.user.department",
            "facility": ""},
        "https://purl.imsglobal.org/spec/lti/claim/tool_platform": {
            "guid": "x:canvas-lms", "product_family_code": "canvas"},
        "https://purl.imsglobal.org/spec/lti/claim/roles": [
            LIS + "institution/person#Student", LIS + "membership#Learner",
            "http://purl.imsglobal.org/vocab/lis/v2/system/person#User"],
        "https://www.instructure.com/placement": "course_navigation",
    }, drop=("email",), sub="535fa085f22b4655f48cd5a36a9215f64c062838")
    assert response.status_code == 302
    assert response.headers["Location"] == "/home"  # "$Canvas.module.id" is no slug
    user = _user(app, "535fa085f22b4655f48cd5a36a9215f64c062838")
    assert user.email is None
    assert user.job_role == "Pharmacist" and user.department is None and user.facility is None
    assert user.role_names == {"learner"}


def test_missing_email_keeps_the_known_one(app, client, moodle, launcher):
    launcher.launch(client, moodle)
    launcher.launch(client, moodle, drop=("email", "name", "given_name", "family_name"))
    user = _user(app, "user-1")
    assert (user.email, user.name) == ("jane.nurse@example.org", "Jane Nurse")


def test_anonymous_launch_gets_a_placeholder_name(app, client, moodle, launcher):
    launcher.launch(client, moodle, drop=("email", "name", "given_name", "family_name"),
                    sub="anon-9")
    assert _user(app, "anon-9").name == "LMS user anon-9"


@pytest.mark.parametrize(("roles", "expected"), [
    ([LIS + "membership#Instructor"], {"author", "learner"}),
    (["Instructor"], {"author", "learner"}),
    (["Learner"], {"learner"}),
    ([LIS + "membership#ContentDeveloper"], {"author", "learner"}),
    # Teaching assistants and mentors (Canvas observers) are learners (issue 10 item 5).
    ([LIS + "membership/Instructor#TeachingAssistant"], {"learner"}),
    (["TeachingAssistant"], {"learner"}),
    ([LIS + "membership#Mentor"], {"learner"}),
    ([LIS + "institution/person#Administrator"], {"officer"}),
    ([LIS + "system/person#Administrator"], {"officer"}),
    (["Administrator"], {"officer"}),
    ([LIS + "membership#Administrator"], {"author", "learner"}),
    (["urn:lti:role:ims/lis/Instructor"], {"author", "learner"}),
    (["urn:lti:instrole:ims/lis/Administrator"], {"officer"}),
    (["urn:lti:sysrole:ims/lis/SysAdmin"], {"officer"}),
    ([LIS + "institution/person#Student", LIS + "membership#Learner"], {"learner"}),
    ([], {"learner"}),
    ([LIS + "membership#Observer"], {"learner"}),
])
def test_role_mapping_defaults(roles, expected):
    assert map_roles(roles) == expected


def test_role_mapping_override_by_uri_or_short_name():
    overrides = {"Mentor": ["learner"], LIS + "membership#Instructor": ["author"]}
    assert map_roles([LIS + "membership#Mentor"], overrides) == {"learner"}
    assert map_roles([LIS + "membership#Instructor"], overrides) == {"author"}
    assert map_roles(["Instructor"], overrides) == {"author", "learner"}


def test_roles_granted_in_the_platform_organisation(app, client, make_platform, launcher):
    """With the registration's grant_org_roles on, mapped roles are organisation-wide
    grants in the platform's organisation (off: tests/lti/test_launch_roles.py)."""
    platform = make_platform(organisation="Regional Health",
                             role_mapping={"Mentor": ["officer"]}, grant_org_roles=True)
    launcher.launch(client, platform, roles=[LIS + "membership#Instructor",
                                             LIS + "membership#Mentor"])
    user = _user(app, "user-1")
    assert user.role_names == {"author", "learner", "officer"}
    with app.app_context():
        user = db.session.get(User, user.id)
        assert user.organisation.name == "Regional Health"
        assert {g.organisation_id for g in user.grants} == {user.organisation_id}


def test_instructor_launch_signs_in_a_learner_who_authors_only_their_course(
        app, client, moodle, launcher):
    launcher.launch(client, moodle, roles=["Instructor"])
    assert _user(app, "user-1").role_names == {"learner"}


@pytest.mark.parametrize(("custom", "uri", "slug"), [
    ({"module": "ehr-orders"}, None, "ehr-orders"),
    ({"module": "EHR-Orders"}, None, "ehr-orders"),
    ({}, "https://tool/lti/launch?module=bcma", "bcma"),
    ({"module": "x"}, "https://tool/lti/launch?module=bcma", "x"),
    ({"module": "../../admin"}, None, None),
    ({"module": "$ResourceLink.id"}, None, None),
    ({}, "https://tool/lti/launch", None),
])
def test_module_slug(custom, uri, slug):
    assert module_slug_from(custom, uri) == slug

"""Administration pages (issue 13, issue 12 items 6, 9, 10): the layout and navigation,
organisation settings and times, platform registrations and keys, people, the audit log.

Through HTTP, checking the database afterwards."""

from __future__ import annotations

import csv
import io
import re

import pytest
from sqlalchemy import select, text

from lms_plugin.accounts.models import AuditEvent, Organisation, User
from lms_plugin.accounts.services import record_audit
from lms_plugin.extensions import db
from lms_plugin.lti.models import LtiIdentity, LtiPlatform, LtiToolKey
from lms_plugin.lti.services import register_platform
from tests.conftest import csrf_token

XSS = '<script>alert("x")</script><img src=x onerror=alert(1)>'


def _audits(app, action):
    with app.app_context():
        return [(e.actor_id, e.details) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id))]


def _platform(app, org="General Hospital", issuer="https://moodle.example.org"):
    with app.app_context():
        p = register_platform(issuer, "client-1", issuer + "/auth", issuer + "/token",
                              issuer + "/jwks", deployment_ids=["1"], organisation_name=org)
        db.session.commit()
        return p.id


# --- layout: navigation, homes, back to the course --------------------------------------

def _nav(html):
    nav = re.search(r'<nav aria-label="Main">(.*?)</nav>', html, re.S).group(1)
    return re.findall(r"<a [^>]*>([^<]+)</a>", nav)


def test_each_role_sees_its_own_navigation_and_lands_on_its_home(app, client, login_as, factory):
    login_as("admin")
    landing = client.get("/")
    assert landing.status_code == 302 and landing.headers["Location"].endswith("/admin")
    html = client.get("/admin").get_data(as_text=True)
    assert _nav(html) == ["My training", "CE credits", "Modules", "Courses", "Reports",
                          "Item analysis", "CE exports", "Admin home", "Platforms", "People",
                          "Assignments", "Jobs", "Audit", "Settings"]
    assert 'aria-current="page">Admin home' in html
    for persona, home, entries in (("officer", "/reports/competencies",
                                    ["My training", "CE credits", "Reports", "Item analysis",
                                     "CE exports", "Audit"]),
                                   ("author", "/author/modules",
                                    ["My training", "CE credits", "Modules", "Courses",
                                     "Item analysis"]),
                                   ("learner", "/home", ["My training", "CE credits"])):
        other = app.test_client()
        uid = factory.user(persona)
        from tests.conftest import login
        login(other, factory.email_of(uid))
        assert other.get("/").headers["Location"].endswith(home)
        assert _nav(other.get(home).get_data(as_text=True)) == entries


def test_back_to_the_course_and_no_sign_out_inside_an_lms_frame(client, login_as):
    login_as("learner")
    page = client.get("/home").get_data(as_text=True)
    assert "Back to the course" not in page and "Sign out" in page
    with client.session_transaction() as sess:
        sess["lti"] = {"return_url": "https://moodle.example.org/course/view.php?id=7",
                       "document_target": "iframe"}
    page = client.get("/home").get_data(as_text=True)
    assert 'href="https://moodle.example.org/course/view.php?id=7"' in page
    assert "Sign out" not in page
    error = client.get("/admin/users")  # a learner: 403, and the error page has the way back
    assert error.status_code == 403
    assert "Back to the course" in error.get_data(as_text=True)
    with client.session_transaction() as sess:  # never a javascript: link
        sess["lti"] = {"return_url": "javascript:alert(1)", "document_target": "window"}
    page = client.get("/home").get_data(as_text=True)
    assert "javascript:alert" not in page and "Sign out" in page


def test_launch_presentation_is_read_safely():
    from lms_plugin.lti.claims import CLAIM
    from lms_plugin.lti.launch import presentation

    good = {CLAIM + "launch_presentation": {"return_url": "https://lms/x",
                                            "document_target": "iframe"}}
    assert presentation(good) == {"return_url": "https://lms/x", "document_target": "iframe"}
    bad = {CLAIM + "launch_presentation": {"return_url": "javascript:x", "document_target": 3}}
    assert presentation(bad) == {"return_url": None, "document_target": None}
    assert presentation({}) == {"return_url": None, "document_target": None}


# --- settings and times ---------------------------------------------------------------

def test_settings_refuse_an_unknown_zone_and_audit_a_change(app, client, login_as):
    admin = login_as("admin")
    token = csrf_token(client, "/admin/settings")
    bad = client.post("/admin/settings", data={"csrf_token": token, "name": "Renamed",
                                               "timezone": "Mars/Olympus"})
    assert bad.status_code == 422
    assert re.search(r'id="timezone-error">Unknown time zone', bad.get_data(as_text=True))
    with app.app_context():
        org = db.session.scalar(select(Organisation))
        assert (org.name, org.timezone) == ("General Hospital", "America/New_York")
    ok = client.post("/admin/settings", data={"csrf_token": token, "name": XSS,
                                              "timezone": "Europe/Dublin"})
    assert ok.status_code == 302
    with app.app_context():
        org = db.session.scalar(select(Organisation))
        assert (org.name, org.timezone) == (XSS, "Europe/Dublin")
    [(actor, details)] = _audits(app, "organisation.update")
    assert actor == admin
    assert details == {"name": {"before": "General Hospital", "after": XSS},
                       "timezone": {"before": "America/New_York", "after": "Europe/Dublin"}}
    page = client.get("/admin").get_data(as_text=True)
    assert XSS not in page and "&lt;script&gt;" in page


def test_csrf_is_required(client, login_as):
    login_as("admin")
    response = client.post("/admin/settings", data={"name": "X", "timezone": "UTC"})
    assert response.status_code == 400


def test_times_are_shown_in_the_organisation_zone(app):
    from datetime import UTC, datetime

    from lms_plugin.accounts import timezones

    when = datetime(2026, 7, 1, 12, 0, tzinfo=UTC)
    html = str(timezones.time_element(when, timezones.zone("America/New_York")))
    assert html == ('<time datetime="2026-07-01T12:00:00Z" title="America/New_York">'
                    '1 Jul 2026, 08:00 EDT</time>')
    low, high = timezones.day_range(datetime(2026, 1, 5).date(), datetime(2026, 1, 5).date(),
                                    timezones.zone("America/New_York"))
    assert (low.isoformat(), high.isoformat()) == ("2026-01-05T05:00:00+00:00",
                                                   "2026-01-06T05:00:00+00:00")


# --- platforms and keys ----------------------------------------------------------------

FORM = {"issuer": "https://moodle.hospital.org", "client_id": "abc",
        "auth_login_url": "https://moodle.hospital.org/mod/lti/auth.php",
        "auth_token_url": "https://moodle.hospital.org/mod/lti/token.php",
        "key_set_url": "https://moodle.hospital.org/mod/lti/certs.php",
        "deployment_id": "3", "name": "", "token_audience": "", "role_mapping": ""}


def test_register_a_platform_from_the_page(app, client, login_as):
    admin = login_as("admin")
    token = csrf_token(client, "/admin/platforms/new")
    for field, value, message in (("auth_login_url", "ftp://x", "must be an http(s) URL"),
                                  ("role_mapping", "[1]", "Give a JSON object"),
                                  ("role_mapping", '{"Mentor": ["boss"]}', None),
                                  ("issuer", "", "This field is required")):
        response = client.post("/admin/platforms/new",
                               data={**FORM, field: value, "csrf_token": token})
        assert response.status_code == 422, (field, value)
        html = response.get_data(as_text=True)
        if message:
            assert re.search(rf'id="{field}-error">[^<]*{re.escape(message)}', html), html
    with app.app_context():
        assert db.session.scalar(select(LtiPlatform.id)) is None
    response = client.post("/admin/platforms/new", data={**FORM, "csrf_token": token,
                                                         "name": XSS})
    assert response.status_code == 302
    with app.app_context():
        platform = db.session.scalar(select(LtiPlatform))
        assert platform.deployment_ids == ["3"] and platform.name == XSS
        assert db.session.scalar(select(LtiToolKey.id)) is not None
    [(actor, details)] = _audits(app, "lti.platform.add")
    assert actor == admin and details["client_id"] == "abc"
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "http://tool.test/lti/login" in page and XSS not in page
    listing = client.get("/admin/platforms").get_data(as_text=True)
    assert "never" in listing and "&lt;script&gt;" in listing


def test_edit_disable_deploy_and_rotate(app, client, login_as):
    admin = login_as("admin")
    pid = _platform(app)
    token = csrf_token(client, f"/admin/platforms/{pid}")
    edit = {k: v for k, v in FORM.items() if k not in ("issuer", "client_id", "deployment_id")}
    bad = client.post(f"/admin/platforms/{pid}", data={**edit, "csrf_token": token,
                                                        "key_set_url": "not a url"})
    assert bad.status_code == 422
    response = client.post(f"/admin/platforms/{pid}", data={
        **edit, "csrf_token": token, "name": "Moodle", "role_mapping": '{"Mentor": ["learner"]}'})
    assert response.status_code == 302
    [(actor, details)] = _audits(app, "lti.platform.update")
    assert actor == admin
    assert details["role_mapping"] == {"before": {}, "after": {"Mentor": ["learner"]}}
    assert details["auth_login_url"]["before"] == "https://moodle.example.org/auth"
    assert client.post(f"/admin/platforms/{pid}/enabled",
                       data={"csrf_token": token, "enabled": "0"}).status_code == 303
    assert _audits(app, "lti.platform.disable") == [
        (admin, {"enabled": {"before": True, "after": False}})]
    dup = client.post(f"/admin/platforms/{pid}/deployments",
                      data={"csrf_token": token, "deployment_id": "1"})
    assert dup.status_code == 422 and "already registered" in dup.get_data(as_text=True)
    assert client.post(f"/admin/platforms/{pid}/deployments",
                       data={"csrf_token": token, "deployment_id": "9"}).status_code == 302
    assert client.post("/admin/keys/rotate", data={"csrf_token": token}).status_code == 303
    assert client.post("/admin/keys/rotate", data={"csrf_token": token}).status_code == 303
    rotations = _audits(app, "lti.keys.rotate")
    assert len(rotations) == 2 and rotations[1][1]["retiring"] == [rotations[0][1]["new_kid"]]
    with app.app_context():
        platform = db.session.get(LtiPlatform, pid)
        assert (platform.name, platform.enabled, platform.deployment_ids) == (
            "Moodle", False, ["1", "9"])


def test_another_organisations_platform_is_not_found(app, client, login_as, factory):
    login_as("admin")
    factory.organisation("Other Health")
    factory_pid = _platform(app, org="Other Health", issuer="https://other.example.org")
    token = csrf_token(client, "/admin/settings")
    assert client.get(f"/admin/platforms/{factory_pid}").status_code == 404
    assert client.post(f"/admin/platforms/{factory_pid}/enabled",
                       data={"csrf_token": token, "enabled": "0"}).status_code == 404
    with app.app_context():
        assert db.session.get(LtiPlatform, factory_pid).enabled


# --- people ------------------------------------------------------------------------------

def test_person_page_and_role_and_active_changes(app, client, login_as, factory):
    admin = login_as("admin")
    person = factory.user("learner")
    pid = _platform(app)
    with app.app_context():
        user = db.session.get(User, person)
        user.name = XSS
        db.session.add(LtiIdentity(organisation_id=user.organisation_id, user_id=person,
                                   issuer="https://moodle.example.org", sub="sub-42",
                                   platform_id=pid))
        db.session.commit()
    page = client.get(f"/admin/users/{person}").get_data(as_text=True)
    assert "sub-42" in page and XSS not in page and "&lt;script&gt;" in page
    token = csrf_token(client, f"/admin/users/{person}")
    assert client.post(f"/admin/users/{person}/roles",
                       data={"csrf_token": token, "role": "author"}).status_code == 303
    assert client.post(f"/admin/users/{person}/roles/learner/revoke",
                       data={"csrf_token": token}).status_code == 303
    assert client.post(f"/admin/users/{person}/active",
                       data={"csrf_token": token, "active": "0"}).status_code == 303
    with app.app_context():
        user = db.session.get(User, person)
        assert user.role_names == {"author"} and not user.active
    assert _audits(app, "user.grant_role") == [
        (admin, {"role": "author", "roles": {"before": ["learner"],
                                             "after": ["author", "learner"]}})]
    assert _audits(app, "user.revoke_role")[0][1]["roles"] == {
        "before": ["author", "learner"], "after": ["author"]}
    assert _audits(app, "user.deactivate") == [
        (admin, {"active": {"before": True, "after": False}})]
    # The last admin cannot lose the role; nothing is written.
    refused = client.post(f"/admin/users/{admin}/roles/admin/revoke",
                          data={"csrf_token": token}, follow_redirects=True)
    assert "your own admin role" in refused.get_data(as_text=True)
    bad_role = client.post(f"/admin/users/{person}/roles",
                           data={"csrf_token": token, "role": "superuser"})
    assert bad_role.status_code == 422
    with app.app_context():
        assert db.session.get(User, admin).role_names == {"admin"}
        assert db.session.get(User, person).role_names == {"author"}
    other = factory.user("learner", org="Other Health")
    assert client.get(f"/admin/users/{other}").status_code == 404
    assert client.post(f"/admin/users/{other}/active",
                       data={"csrf_token": token, "active": "0"}).status_code == 404


# --- the audit log -------------------------------------------------------------------------

def _events(app, org_id, n, actor=None, action="thing.happen"):
    with app.app_context():
        for i in range(n):
            record_audit(action, actor=None, organisation_id=org_id,
                         target=("user", i), details={"n": i, "name": XSS})
        db.session.commit()


def test_audit_filters_pages_and_exports(app, client, login_as, factory):
    admin = login_as("officer")
    org = factory.org_of(admin)
    _events(app, org, 60)
    _events(app, org, 2, action="lti.platform.add")
    _events(app, factory.organisation("Other Health"), 3, action="lti.platform.add")
    first = client.get("/admin/audit").get_data(as_text=True)
    assert first.count("<tr>") == 51 and XSS not in first  # header + 50 rows
    older = re.search(r'href="([^"]*before=\d+[^"]*)">Older', first).group(1)
    second = client.get(older.replace("&amp;", "&")).get_data(as_text=True)
    assert second.count("<tr>") == 1 + 62 + 1 - 50  # the rest (login event included)
    grouped = client.get("/admin/audit?action=lti.platform.").get_data(as_text=True)
    assert grouped.count(">lti.platform.add</code>") == 2  # not the other organisation's
    target = client.get("/admin/audit?target_type=user&target_id=7").get_data(as_text=True)
    assert target.count(">thing.happen</code>") == 1
    assert client.get("/admin/audit?since=2020-13-01").status_code == 422
    bad = client.get("/admin/audit?since=2026-02-01&until=2026-01-01")
    assert bad.status_code == 422 and 'id="f-until-error"' in bad.get_data(as_text=True)
    assert client.get("/admin/audit?before=abc").status_code == 422
    future = client.get("/admin/audit?since=2999-01-01").get_data(as_text=True)
    assert "No entries match" in future
    export = client.get("/admin/audit.csv?action=lti.platform.")
    rows = list(csv.reader(io.StringIO(export.get_data(as_text=True))))
    assert rows[0][:3] == ["id", "created_at_utc", "actor_id"] and len(rows) == 3
    assert _audits(app, "audit.export")[0][1] == {"action": "lti.platform."}


def test_no_route_edits_or_deletes_an_audit_entry(app):
    for rule in app.url_map.iter_rules():
        if "audit" in rule.rule:
            assert rule.methods - {"GET", "HEAD", "OPTIONS"} == set(), rule


def test_postgresql_refuses_update_and_delete_of_audit_entries(app, factory):
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("the append-only trigger is PostgreSQL's (SQLite: no route writes)")
        org = factory.organisation()
        record_audit("x.y", actor=None, organisation_id=org)
        db.session.commit()
        for statement in ("UPDATE audit_event SET action = 'changed'", "DELETE FROM audit_event"):
            with pytest.raises(Exception, match="append-only"):
                db.session.execute(text(statement))
            db.session.rollback()
        assert db.session.scalar(select(AuditEvent.action)) == "x.y"


def test_audit_person_filter_takes_an_email_or_an_id(app, client, login_as, factory):
    admin = login_as("admin")
    person = factory.user("learner")
    token = csrf_token(client, "/admin")
    client.post(f"/admin/users/{person}/roles", data={"csrf_token": token, "role": "officer"})
    email = factory.email_of(admin)
    for value in (email, email.upper(), str(admin)):
        page = client.get("/admin/audit", query_string={"actor": value}).get_data(as_text=True)
        assert page.count(">user.grant_role</code>") == 1, value
    for value in ("nobody@example.org", str(factory.user("admin", org="Other Health"))):
        bad = client.get("/admin/audit", query_string={"actor": value})
        assert bad.status_code == 422 and 'id="f-actor-error"' in bad.get_data(as_text=True)


def test_link_a_person_launched_by_lti_to_a_local_sign_in(app, client, login_as, factory):
    from tests.conftest import login

    admin = login_as("admin")
    with app.app_context():
        org = db.session.scalar(select(Organisation))
        lti_person = User(organisation_id=org.id, name="Lee Launch", email="lee@example.org")
        db.session.add(lti_person)
        db.session.commit()
        lee = lti_person.id
    token = csrf_token(client, f"/admin/users/{lee}")
    taken = client.post(f"/admin/users/{lee}/local-signin",
                        data={"csrf_token": token, "email": factory.email_of(admin)},
                        follow_redirects=True)
    assert "already exists" in taken.get_data(as_text=True)
    done = client.post(f"/admin/users/{lee}/local-signin",
                       data={"csrf_token": token, "email": "Lee@Example.org"},
                       follow_redirects=True).get_data(as_text=True)
    password = re.search(r"shown once; they choose their own at first sign-in\): (\S+)</p>",
                         done).group(1)
    assert _audits(app, "user.add_local_signin") == [
        (admin, {"local_email": {"before": None, "after": "lee@example.org"}})]
    other = app.test_client()
    response = login(other, "lee@example.org", password)
    assert response.status_code == 302 and "/account/password" in response.headers["Location"]
    with app.app_context():
        assert db.session.get(User, lee).credential.must_change_password


PAYLOADS = [
    "<script>alert(1)</script>", '"><script>alert(1)</script>', "<img src=x onerror=alert(1)>",
    "<svg onload=alert(1)>", "javascript:alert(1)//<b>", "<iframe src=javascript:alert(1)>",
    "<body onload=alert(1)>", "'';!--\"<XSS>=&{()}", "<a href=\"javascript:alert(1)\">x</a>",
    "<math><mtext><table><mglyph><style><img src=x onerror=alert(1)>",
    "<details open ontoggle=alert(1)>", "<input autofocus onfocus=alert(1)>",
    "<video><source onerror=alert(1)>", "{{ 7*7 }}<b>bold</b>", "</title><script>x</script>",
    "<style>@import 'x'</style>", "<object data=javascript:alert(1)>",
    "<marquee onstart=alert(1)>", "<form action=javascript:alert(1)><button>x",
    "\"onmouseover=\"alert(1)", "<![CDATA[<script>alert(1)</script>]]>",
]


@pytest.mark.parametrize("payload", PAYLOADS)
def test_names_never_reach_a_page_unescaped(app, client, login_as, factory, payload):
    admin = login_as("admin")
    person = factory.user("learner")
    pid = _platform(app)
    with app.app_context():
        db.session.get(User, person).name = payload
        db.session.get(LtiPlatform, pid).name = payload
        db.session.get(Organisation, factory.org_of(admin)).name = payload
        record_audit(payload[:100], actor=db.session.get(User, person),
                     target=(payload[:50], payload[:100]),
                     details={"name": {"before": payload, "after": payload}})
        db.session.commit()
    for path in ("/admin", "/admin/platforms", f"/admin/platforms/{pid}",
                 f"/admin/users/{person}", "/admin/users", "/admin/audit", "/admin/settings"):
        html = client.get(path).get_data(as_text=True)
        assert payload not in html, path
        if "<" in payload:
            assert "&lt;" in html, path
    assert "{{ 7*7 }}" in PAYLOADS[13] and "49<b>" not in client.get("/admin").get_data(
        as_text=True)


def test_person_and_audit_pages_read_a_constant_number_of_statements(app, client, login_as,
                                                                     factory):
    """No N+1: a person with many course launches, and an audit page of many actors, cost
    what one does."""
    from lms_plugin.lti.models import LtiContext, LtiMembership
    from tests.statements import counted

    admin = login_as("admin")
    person = factory.user("learner")
    pid = _platform(app)

    def add_courses(n, start):
        actors = [factory.user("learner") for _ in range(n)]
        with app.app_context():
            for i, actor in zip(range(start, start + n), actors, strict=True):
                context = LtiContext(platform_id=pid, context_id=f"c{i}", title=f"Course {i}")
                db.session.add(context)
                db.session.flush()
                db.session.add(LtiMembership(user_id=person, context_id=context.id,
                                             roles=["Learner"]))
                record_audit("x.y", actor=db.session.get(User, actor),
                             target=("user", person))
            db.session.commit()

    costs = []
    for n, start in ((1, 0), (12, 1)):
        add_courses(n, start)
        with counted() as person_page:
            assert client.get(f"/admin/users/{person}").status_code == 200
        with counted() as audit_page:
            assert client.get("/admin/audit").status_code == 200
        costs.append((len(person_page), len(audit_page)))
    assert costs[0] == costs[1], costs
    assert admin

"""A small organisation with hand-computable competency figures (and test_authz's samples).

Framework FW1: C1 evidenced by mod-a; C2 by mod-a AND mod-b (whose version 2 requires
retraining); C3 by nothing. People (learners of General Hospital unless said):

====  ==========  =====================================  =========  =========
who   department  completions                            holds C1   holds C2
====  ==========  =====================================  =========  =========
p1    ICU         a (valid), b on v2 (valid)             yes        yes
p2    ICU         a expired                              no         no
p3    ED          a (valid), b on v1 only (retrained)    yes        no
p4    ED          a (valid) but departed (inactive)      excluded   excluded
p5    ED          a (valid); moved from ICU to ED        yes        no
p6    ED, other organisation, a (valid)                  excluded   excluded
====  ==========  =====================================  =========  =========

So ED: 2 people, C1 100.0 %, C2 0.0 %, C3 0.0 %; ICU: 2 people, C1 50.0 %, C2 50.0 %, C3 0.0 %.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flask import Flask

from lms_plugin.accounts.models import User
from lms_plugin.db import utcnow
from lms_plugin.extensions import db
from lms_plugin.learning.models import Completion
from lms_plugin.reports import frameworks
from lms_plugin.reports.models import ReportExport
from tests.learning.builders import add_version, build_module

HEADERS = ",".join(frameworks.MOODLE_HEADERS)
SCALE_CONFIG = '"[{""scaleid"":""0""}]"'
FRAMEWORK_CSV = f"""{HEADERS}
,FW1,Test framework,<p>For tests</p>,1,"Not yet,Competent",{SCALE_CONFIG},,,,,,1,competency
,C1,Order entry,First,1,,,,,null,C2,,,
C1,C2,Orders and scanning,"Second, with a comma",1,,,,,null,,,,
,C3,Unevidenced,,1,,,,,null,,,,
"""
EVIDENCE_CSV = """Competency ID number,Module
C1,mod-a
C2,mod-a
C2,mod-b
"""


def sample_framework(app: Flask, org: str = "General Hospital") -> int:
    """A committed framework (no modules needed: no evidence file)."""
    from lms_plugin.accounts import services as accounts

    with app.app_context():
        organisation = accounts.get_or_create_organisation(org)
        result = frameworks.import_framework(organisation.id, FRAMEWORK_CSV, actor=None)
        db.session.commit()
        return result.framework.id


def sample_export(app: Flask, org: str = "General Hospital") -> int:
    """A finished background export with its file written."""
    from lms_plugin.accounts import services as accounts
    from lms_plugin.reports import exports

    with app.app_context():
        organisation = accounts.get_or_create_organisation(org)
        export = ReportExport(organisation_id=organisation.id, report="competency_matrix",
                              filters={"group": "department"}, format="csv", status="done",
                              rows_written=1, total_rows=1, finished_at=utcnow())
        db.session.add(export)
        db.session.flush()
        exports.export_path(export).write_bytes(b"Department,People\r\nICU,1\r\n")
        db.session.commit()
        return export.id


def _person(app: Flask, factory, name: str, department: str | None, *,
            org: str = "General Hospital", active: bool = True,
            facility: str = "Main", job_role: str = "nurse") -> int:
    user_id = factory.user("learner", email=f"{name}@example.org", org=org)
    with app.app_context():
        user = db.session.get(User, user_id)
        user.name, user.department, user.facility, user.job_role = (
            name, department, facility, job_role)
        user.active = active
        db.session.commit()
    return user_id


def _complete(app: Flask, user_id: int, module: dict[str, Any], version_id: int, *,
              days_ago: int = 10, expires_in_days: int | None = 300) -> None:
    now = utcnow()
    with app.app_context():
        db.session.add(Completion(
            user_id=user_id, module_id=module["module_id"], module_version_id=version_id,
            score=90.0, passed=True, completed_at=now - timedelta(days=days_ago),
            expires_at=None if expires_in_days is None
            else now + timedelta(days=expires_in_days)))
        db.session.commit()


def build_fixture(app: Flask, factory) -> dict[str, Any]:
    """The organisation of the module docstring; returns ids by name."""
    factory.organisation("General Hospital")
    factory.organisation("Other Health")
    a = build_module(app, slug="mod-a")
    b = build_module(app, slug="mod-b")
    b2 = add_version(app, b["module_id"], number=2, retraining_required=True)
    other_a = build_module(app, slug="mod-a", org="Other Health")
    with app.app_context():
        result = frameworks.import_framework(a["organisation_id"], FRAMEWORK_CSV,
                                             EVIDENCE_CSV, actor=None)
        db.session.commit()
        framework_id = result.framework.id
    people = {
        "p1": _person(app, factory, "p1", "ICU"),
        "p2": _person(app, factory, "p2", "ICU"),
        "p3": _person(app, factory, "p3", "ED"),
        "p4": _person(app, factory, "p4", "ED", active=False),
        "p5": _person(app, factory, "p5", "ICU"),
        "p6": _person(app, factory, "p6", "ED", org="Other Health"),
    }
    _complete(app, people["p1"], a, a["version_id"])
    _complete(app, people["p1"], b, b2, expires_in_days=None)
    _complete(app, people["p2"], a, a["version_id"], days_ago=400, expires_in_days=-35)
    _complete(app, people["p3"], a, a["version_id"])
    _complete(app, people["p3"], b, b["version_id"])
    _complete(app, people["p4"], a, a["version_id"])
    _complete(app, people["p5"], a, a["version_id"])
    _complete(app, people["p6"], other_a, other_a["version_id"])
    with app.app_context():  # p5 changed department after completing
        db.session.get(User, people["p5"]).department = "ED"
        db.session.commit()
    return {"framework_id": framework_id, "people": people, "a": a, "b": b, "b2": b2}

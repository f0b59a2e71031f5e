# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""/admin/jobs says what each job carries (issue 12.10): whose grade for which module, which
course's roster, read for the whole page in a fixed number of queries."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from lms_plugin.extensions import db
from lms_plugin.lti import ags_jobs, nrps
from lms_plugin.lti.models import LtiContext, LtiIdentity
from tests.learning.builders import build_module
from tests.lti.ags_helpers import fake_lms, services  # noqa: F401 (fixtures)
from tests.statements import counted


def _enqueue_scores(app, subs: list[str]) -> None:
    with app.app_context():
        for sub in subs:
            identity = db.session.scalar(select(LtiIdentity).where(LtiIdentity.sub == sub))
            link = db.session.scalar(select(ags_jobs.LtiResourceLink))
            ags_jobs.enqueue_score(link_id=link.id, user_id=identity.user_id, score_given=85,
                                   event_at=datetime.now(UTC))
        context = db.session.scalar(select(LtiContext))
        nrps.enqueue_sync(context, context.platform.organisation_id)
        db.session.commit()


def test_each_job_says_whose_grade_for_which_module(app, client, launcher, services,
                                                    login_as):
    build_module(app, slug="cpoe-basics")
    for sub in ("nurse-1", "nurse-2"):
        services.launch(launcher, client, sub=sub, module="cpoe-basics")
    _enqueue_scores(app, ["nurse-1"])
    login_as("admin")
    with counted() as one_job:
        page = client.get("/admin/jobs?status=all")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "Grade of Jane Nurse (jane.nurse@example.org) for module cpoe-basics" in html
    assert 'link &#34;Module cpoe-basics&#34;' in html
    assert "Roster of course course-1 (Course course-1)" in html

    _enqueue_scores(app, ["nurse-2"])  # more jobs on the page, the same number of queries
    with counted() as more_jobs:
        client.get("/admin/jobs?status=all")
    assert len(more_jobs) == len(one_job)

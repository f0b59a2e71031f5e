"""GET /admin/jobs and its retry buttons: admin only, organisation-isolated, CSRF, audited."""

from __future__ import annotations

from sqlalchemy import func, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.extensions import db
from lms_plugin.jobs import services
from tests.conftest import csrf_token
from tests.jobs.helpers import job_row, make_job


def _audits(app) -> list[tuple[str, str | None]]:
    with app.app_context():
        return [(e.action, e.target_id) for e in db.session.scalars(
            select(AuditEvent).where(AuditEvent.action.like("job.%")).order_by(AuditEvent.id))]


def test_page_shows_failed_and_rejected_deliveries_of_own_organisation(app, client, login_as,
                                                                       factory):
    login_as("admin")
    home = factory.organisation("General Hospital")
    away = factory.organisation("Other Health")
    failed = make_job(app, home, kind="ags.score", status="failed",
                      last_error="gave up after 12 attempts: 503 from Moodle")
    rejected = make_job(app, home, kind="ags.score", status="rejected",
                        last_error="rejected: 422 user is not a student")
    make_job(app, home, status="succeeded")
    make_job(app, away, kind="foreign.kind", status="failed", last_error="secret of Other")

    page = client.get("/admin/jobs")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert f"#{failed}" in html and f"#{rejected}" in html
    assert "gave up after 12 attempts: 503 from Moodle" in html
    assert "rejected: 422 user is not a student" in html
    assert "test.noop" not in html  # the succeeded job is not a problem to show
    assert "foreign.kind" not in html and "secret of Other" not in html
    assert f'aria-label="Retry job {failed}"' in html
    assert "Retry all 1 failed job(s)" in html
    assert '<label for="status">Show</label>' in html

    done = client.get("/admin/jobs?status=succeeded").get_data(as_text=True)
    assert "test.noop" in done and "gave up after 12 attempts" not in done
    assert "foreign.kind" not in client.get("/admin/jobs?status=all").get_data(as_text=True)

    bad = client.get("/admin/jobs?status=exploded")
    assert bad.status_code == 400
    assert "Unknown status" in bad.get_data(as_text=True)


def test_retry_requeues_the_job_and_is_audited(app, client, login_as, org_id):
    login_as("admin")
    job_id = make_job(app, org_id, status="rejected", last_error="400")
    token = csrf_token(client, "/admin/jobs")
    response = client.post(f"/admin/jobs/{job_id}/retry", data={"csrf_token": token})
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/admin/jobs")
    job = job_row(app, job_id)
    assert (job.status, job.finished_at) == ("pending", None)
    assert _audits(app) == [("job.retry", str(job_id))]
    assert "will be sent again shortly" in client.get("/admin/jobs").get_data(as_text=True)


def test_retry_all_failed_leaves_rejected_and_other_organisations_alone(app, client, login_as,
                                                                       factory):
    login_as("admin")
    home = factory.organisation("General Hospital")
    away = factory.organisation("Other Health")
    mine = [make_job(app, home, status="failed"), make_job(app, home, status="failed")]
    rejected = make_job(app, home, status="rejected")
    theirs = make_job(app, away, status="failed")
    token = csrf_token(client, "/admin/jobs")
    response = client.post("/admin/jobs/retry-failed", data={"csrf_token": token})
    assert response.status_code == 302
    # The request only starts the background job; it shows its progress…
    assert [job_row(app, i).status for i in mine] == ["failed", "failed"]
    assert "0 of 2 so far" in client.get("/admin/jobs").get_data(as_text=True)
    with app.app_context():
        assert services.run_due_jobs("w").outcomes == {"succeeded": 1}
    assert [job_row(app, i).status for i in mine] == ["pending", "pending"]
    assert job_row(app, rejected).status == "rejected"
    assert job_row(app, theirs).status == "failed"
    assert [a for a, _ in _audits(app)] == ["job.retry_all_failed"]


def test_retry_refusals_change_nothing(app, client, login_as, factory, org_id):
    login_as("admin")
    foreign = make_job(app, factory.organisation("Other Health"), status="failed")
    pending = make_job(app, org_id, status="pending")
    failed = make_job(app, org_id, status="failed")
    token = csrf_token(client, "/admin/jobs")

    assert client.post(f"/admin/jobs/{foreign}/retry",
                       data={"csrf_token": token}).status_code == 404
    assert client.post("/admin/jobs/987654/retry", data={"csrf_token": token}).status_code == 404
    assert client.post("/admin/jobs/not-a-number/retry",
                       data={"csrf_token": token}).status_code == 404
    assert client.post(f"/admin/jobs/{failed}/retry").status_code == 400  # no CSRF token
    assert client.post("/admin/jobs/retry-failed").status_code == 400
    conflict = client.post(f"/admin/jobs/{pending}/retry", data={"csrf_token": token})
    assert conflict.status_code == 409
    assert "only failed or rejected jobs can be retried" in conflict.get_data(as_text=True)

    assert job_row(app, foreign).status == "failed"
    assert job_row(app, failed).status == "failed"
    assert job_row(app, pending).status == "pending"
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action.like("job.%"))) == 0


def test_only_admins_reach_the_page(app, client, login_as, org_id):
    job_id = make_job(app, org_id, status="failed")
    assert client.get("/admin/jobs").status_code == 302  # anonymous: sign in first
    login_as("officer")
    assert client.get("/admin/jobs").status_code == 403
    token = csrf_token(client, "/auth/login")
    assert client.post(f"/admin/jobs/{job_id}/retry",
                       data={"csrf_token": token}).status_code == 403
    assert job_row(app, job_id).status == "failed"

"""Issue 18 on the outbox: the admin page at a million jobs (keyset pages, bounded counts),
pruning finished jobs, and "retry all failed" in the background, paced per platform."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from sqlalchemy import func, insert, select

from lms_plugin.accounts.models import AuditEvent
from lms_plugin.extensions import db
from lms_plugin.jobs import queries, services, tasks
from lms_plugin.jobs.models import OutboxJob
from tests.jobs.conftest import T0
from tests.statements import counted


def _bulk(app, org_id, status, n, *, finished=T0, updated=None, payloads=None,
          kind="test.noop", due=T0):
    """``n`` committed jobs in ``status`` (one INSERT), ``updated_at`` one second apart."""
    with app.app_context():
        rows = [{"organisation_id": org_id, "kind": kind,
                 "payload": payloads[i % len(payloads)] if payloads else {},
                 "event_at": T0, "status": status, "attempts": 3, "next_attempt_at": due,
                 "created_at": T0, "updated_at": (updated or T0) + timedelta(seconds=i),
                 "finished_at": finished, "give_up_at": T0} for i in range(n)]
        ids = db.session.scalars(insert(OutboxJob).returning(OutboxJob.id), rows).all()
        db.session.commit()
        return sorted(ids)


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


# --------------------------------------------------------------------------- the page


def test_jobs_page_walks_every_job_once_by_keyset_pages(app, client, login_as, org_id,
                                                        factory):
    login_as("admin")
    ids = _bulk(app, org_id, "succeeded", 120)
    _bulk(app, factory.organisation("Other Health"), "succeeded", 3)  # never shown
    seen, url, pages = [], "/admin/jobs?status=all", 0
    while url:
        html = client.get(url).get_data(as_text=True)
        seen += [int(i) for i in re.findall(r"<td>#(\d+)</td>", html)]
        older = re.search(r'href="([^"]+)">Older jobs</a>', html)
        url = older.group(1).replace("&amp;", "&") if older else None
        pages += 1
    assert pages == 3
    assert seen == sorted(ids, reverse=True)  # newest change first, each once


def test_jobs_page_costs_the_same_statements_on_the_last_page(app, client, login_as, org_id):
    login_as("admin")
    _bulk(app, org_id, "failed", 120)
    client.get("/admin/jobs")  # warm-up (session, user)
    with counted() as first:
        html = client.get("/admin/jobs").get_data(as_text=True)
    older = re.search(r'href="([^"]+)">Older jobs</a>', html).group(1).replace("&amp;", "&")
    html = client.get(older).get_data(as_text=True)
    older = re.search(r'href="([^"]+)">Older jobs</a>', html).group(1).replace("&amp;", "&")
    with counted() as last:
        assert client.get(older).status_code == 200
    assert len(last) == len(first)
    # Keyset, not OFFSET: the deep page starts where the previous one ended.
    assert any("(outbox_job.updated_at, outbox_job.id) <" in s for s in last)


def test_counts_stop_at_the_cap_and_say_so(app, client, login_as, org_id, monkeypatch):
    login_as("admin")
    _bulk(app, org_id, "succeeded", 7)
    _bulk(app, org_id, "failed", 2)
    with app.app_context():
        counts = services.count_by_status(org_id, cap=5)
    assert counts["succeeded"] == 6 and counts["failed"] == 2 and counts["pending"] == 0
    monkeypatch.setattr(queries, "COUNT_CAP", 5)
    html = client.get("/admin/jobs").get_data(as_text=True)
    assert "Succeeded (5+)" in html and "Failed (2)" in html


def test_bad_page_cursors_are_refused(app, client, login_as):
    login_as("admin")
    for bad in ("yesterday,1", "2026-03-02T08:00:00,x", "2026-03-02T08:00:00,0",
                "2026-03-02T08:00:00,99999999999999999999"):
        response = client.get("/admin/jobs", query_string={"before": bad})
        assert response.status_code == 400, bad
    # A time without a zone is UTC, as every stored time is.
    assert client.get("/admin/jobs?before=2026-03-02T08:00:00,5").status_code == 200


# --------------------------------------------------------------------------- pruning


def _prune_world(app, org_id):
    old = T0 - timedelta(days=31)
    return {
        "old_succeeded": _bulk(app, org_id, "succeeded", 3, finished=old),
        "old_superseded": _bulk(app, org_id, "superseded", 2, finished=old),
        "recent": _bulk(app, org_id, "succeeded", 1, finished=T0 - timedelta(days=1)),
        "old_failed": _bulk(app, org_id, "failed", 1, finished=old - timedelta(days=30)),
        "old_rejected": _bulk(app, org_id, "rejected", 1, finished=old - timedelta(days=30)),
        "pending": _bulk(app, org_id, "pending", 1, finished=None,
                         due=T0 + timedelta(days=1)),
    }


def _left(app) -> set[int]:
    with app.app_context():
        return set(db.session.scalars(select(OutboxJob.id).where(
            OutboxJob.kind == "test.noop")))


def test_scheduled_prune_deletes_old_finished_jobs_in_batches_and_keeps_the_rest(
        app, org_id, monkeypatch):
    world = _prune_world(app, org_id)
    monkeypatch.setattr(queries, "PRUNE_BATCH", 2)
    monkeypatch.setattr(tasks, "PRUNE_BATCHES_PER_RUN", 1)
    with app.app_context():
        services.enqueue(services.PRUNE_KIND, {}, coalesce_key="schedule:outbox.prune",
                         now=T0)
        db.session.commit()
        runs = 0
        while db.session.scalar(select(func.count()).select_from(OutboxJob).where(
                OutboxJob.kind == services.PRUNE_KIND, OutboxJob.status == "pending")):
            report = services.run_due_jobs("w", now=T0 + timedelta(seconds=runs))
            assert report.outcomes == {"succeeded": 1}
            runs += 1
    assert runs == 3  # 5 old rows, 2 per run; the third deletes the last one and stops
    keep = (world["recent"] + world["old_failed"] + world["old_rejected"] + world["pending"])
    assert _left(app) == set(keep)


def test_prune_command_for_operators(app, org_id):
    world = _prune_world(app, org_id)
    runner = app.test_cli_runner()
    bad = runner.invoke(args=["outbox", "prune", "--older-than", "soon"])
    assert bad.exit_code != 0 and "not a duration" in bad.output
    assert "Invalid value for --older-than: 'soon' is not a duration" in bad.output
    assert len(_left(app)) == 9
    done = runner.invoke(args=["outbox", "prune", "--older-than", "12h", "--batch", "2"])
    assert done.exit_code == 0, done.output
    # Finished "now" is the real clock here: everything finished at T0 or before is old.
    assert "Deleted 6 finished job(s)." in done.output
    assert _left(app) == set(world["old_failed"] + world["old_rejected"] + world["pending"])


def test_prune_is_scheduled_hourly(app):
    services.discover_handlers()
    assert timedelta(hours=1) == tasks.PRUNE_INTERVAL
    assert services.PRUNE_KIND in services.registered_kinds()


# --------------------------------------------------------------------------- retry all


def test_retry_all_failed_requeues_in_the_background_paced_per_platform(
        app, client, login_as, org_id, monkeypatch):
    admin = login_as("admin")
    monkeypatch.setattr(queries, "RETRY_BATCH", 100)
    monkeypatch.setattr(queries, "RETRY_BATCHES_PER_RUN", 2)
    failed = _bulk(app, org_id, "failed", 450, payloads=[
        {"platform_id": 1}, {"platform_id": 2}, {"no": "platform"}])
    token = re.search(r'name="csrf_token" value="([^"]+)"',
                      client.get("/admin/jobs").get_data(as_text=True)).group(1)
    with counted() as request_statements:
        response = client.post("/admin/jobs/retry-failed", data={"csrf_token": token})
    assert response.status_code == 302
    assert len(request_statements) < 15  # the request no longer touches the jobs
    again = client.post("/admin/jobs/retry-failed", data={"csrf_token": token},
                        follow_redirects=True).get_data(as_text=True)
    assert "already being re-queued" in again

    progress = []
    for _ in range(10):
        html = client.get("/admin/jobs").get_data(as_text=True)
        found = re.search(r"([\d,]+) of ([\d,]+) so far", html)
        if not found:
            break
        progress.append(found.group(1))
        with app.app_context():
            retry_job = db.session.scalar(select(OutboxJob.id).where(
                OutboxJob.kind == services.RETRY_ALL_KIND, OutboxJob.status == "pending"))
            assert services.run_job(retry_job, "w") == "succeeded"
    assert progress == ["0", "200", "400"]
    with app.app_context():
        rows = db.session.execute(select(OutboxJob.id, OutboxJob.status,
                                         OutboxJob.next_attempt_at, OutboxJob.payload)
                                  .where(OutboxJob.id.in_(failed))).all()
        assert {r.status for r in rows} == {"pending"}
        by_group: dict[str, list[datetime]] = {}
        for r in rows:
            by_group.setdefault(services.pace_group(org_id, r.payload), []).append(
                _aware(r.next_attempt_at))
        for times in by_group.values():
            times.sort()
            assert len(times) == 150
            # Never more than RETRY_PER_SECOND a second for one platform.
            gaps = {round((b - a).total_seconds(), 3)
                    for a, b in zip(times, times[1:], strict=False)}
            assert gaps == {round(1 / services.RETRY_PER_SECOND, 3)}
        audits = db.session.scalars(select(AuditEvent).where(
            AuditEvent.action == "job.retry_all_failed")).all()
        assert [(a.actor_id, a.details) for a in audits] == [(admin, {"count": 450})]

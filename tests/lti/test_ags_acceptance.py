# ruff: noqa: F811  (pytest fixtures imported from tests.lti.ags_helpers)
"""Acceptance: 1,000 completions through a platform failing 30% of requests and timing out 10%.

Several scores per (user, line item), enqueued out of order in batches between worker
passes. Counted, not timed: the worker's clock is fake (retry delays cost nothing), only the
injected timeouts (held until the client gives up at its 0.1 s deadline) take real time. The
fake platform answers like Moodle (409 for
a timestamp not newer at one-second granularity), so lost answers and same-second scores are
exercised too.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select

from lms_plugin.extensions import db
from lms_plugin.jobs import services as jobs
from lms_plugin.jobs.models import RETRYABLE, OutboxJob
from lms_plugin.lti import ags_jobs
from lms_plugin.lti.models import LtiIdentity, LtiResourceLink
from tests.conftest import login
from tests.lti.ags_helpers import fake_lms, services  # noqa: F401 (fixtures)

LINKS = 4  # two with the launch's line item, two whose line item the tool creates
COMPLETIONS = 1000
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


@pytest.mark.parametrize(("users", "per_key"), [
    (25, 10),  # ten scores per (user, line item): 100 newest scores out of 1,000 completions
    (250, 1),  # one per (user, line item): 1,000 completions, 1,000 final scores delivered
], ids=["ten-per-learner", "thousand-learner-items"])
def test_thousand_completions_deliver_exactly_the_newest_scores(app, client, launcher,
                                                                services, factory,
                                                                users, per_key):
    app.config["LMS_OUTBOUND_DEADLINE"] = 0.1
    app.config["LMS_JOB_GIVE_UP_AFTER"] = "30d"
    lms = services.lms
    lms.retry_after = 30
    items = {}
    for n in range(LINKS):
        lineitem = None
        if n < 2:
            items[n] = lms.add_lineitem("course-1", f"module-{n}", resource_link_id=f"link-{n}")
            lineitem = lms.lineitem_url(items[n])
        for u in range(users):
            services.launch(launcher, client, sub=f"user-{u}", module=f"module-{n}",
                            link=f"link-{n}", lineitem=lineitem)

    rng = random.Random(20260302)
    keys = [(u, n) for u in range(users) for n in range(LINKS)]
    assert len(keys) * per_key == COMPLETIONS
    # per_key scores per key, in time order; several in the same second (Moodle's 409 case).
    events = []
    for u, n in keys:
        moments = sorted(rng.sample(range(0, 40_000_000), per_key))
        for i, micros in enumerate(moments):
            events.append((u, n, T0 + timedelta(microseconds=micros * 30), i))
    rng.shuffle(events)  # and delivered to the outbox out of order
    newest = {}
    for u, n, at, i in events:
        if (u, n) not in newest or at > newest[(u, n)][0]:
            newest[(u, n)] = (at, i)

    with app.app_context():
        user_ids = dict(db.session.execute(select(LtiIdentity.sub, LtiIdentity.user_id)).all())
        link_ids = dict(db.session.execute(
            select(LtiResourceLink.resource_link_id, LtiResourceLink.id)).all())
        db.session.remove()

    def score_of(u: int, n: int, i: int) -> float:
        return float(i * 10 + (u + n) % 10)  # unique per key and index, within 0..100

    lms.fault_rate, lms.timeout_rate = 0.30, 0.10
    clock = datetime.now(UTC) + timedelta(hours=1)
    batch = 100
    for start in range(0, len(events), batch):
        with app.app_context():
            for u, n, at, i in events[start:start + batch]:
                ags_jobs.enqueue_score(link_id=link_ids[f"link-{n}"],
                                       user_id=user_ids[f"user-{u}"],
                                       score_given=score_of(u, n, i),
                                       event_at=at, comment=f"attempt {i}")
            db.session.commit()
            jobs.run_due_jobs("worker-a", limit=60, now=clock)
            db.session.remove()
        clock += timedelta(minutes=20)
    with app.app_context():
        for _ in range(6):  # still failing
            jobs.run_due_jobs("worker-a", limit=500, now=clock)
            clock += timedelta(minutes=20)
        lms.fault_rate, lms.timeout_rate = 0.0, 0.0  # the faults stop
        for _ in range(20):
            if not jobs.run_due_jobs("worker-a", limit=500, now=clock).claimed:
                break
            clock += timedelta(minutes=20)
        counts = dict(db.session.execute(
            select(OutboxJob.status, func.count()).group_by(OutboxJob.status)).all())
        org_id = db.session.scalar(select(OutboxJob.organisation_id).limit(1))
        attention = jobs.list_jobs(org_id, RETRYABLE)
        db.session.remove()

    # The faults really happened, of every kind.
    for fault in ("500", "reset", "429", "401", "hang-before", "hang-after"):
        assert lms.faults[fault] > 0, lms.faults
    # Every completion is accounted for: delivered, or superseded by a newer one.
    assert sum(counts.values()) == COMPLETIONS
    assert set(counts) <= {"succeeded", "superseded"}, counts
    assert counts["succeeded"] >= len(keys)
    assert attention == []
    # Exactly the newest score of each (user, line item) is the platform's final grade…
    assert len(lms.lineitems) == LINKS  # created ones were created once, then found
    by_link = {lms.lineitems[i].resource_link_id: i for i in lms.lineitems}
    for (u, n), (_, i) in newest.items():
        item = by_link[f"link-{n}"]
        history = lms.scores[(item, f"user-{u}")]
        assert history[-1].score_given == score_of(u, n, i)
        assert history[-1].raw["comment"] == f"attempt {i}"
        # …and nothing older ever followed anything newer (a retry may repeat the same one).
        indexes = [int(a.raw["comment"].split()[-1]) for a in history]
        assert indexes == sorted(indexes), indexes
        stamps = [a.timestamp for a in history]
        assert stamps == sorted(stamps)
    assert len(lms.scores) == len(keys)

    # The failed-delivery page is empty once the faults stop.
    with app.app_context():
        org_name = db.session.get(LtiResourceLink, link_ids["link-0"]).context.platform \
            .organisation.name
    admin = factory.user("admin", org=org_name)
    browser = app.test_client()
    login(browser, factory.email_of(admin))
    page = browser.get("/admin/jobs")
    assert page.status_code == 200
    assert "ags.score" not in page.get_data(as_text=True)

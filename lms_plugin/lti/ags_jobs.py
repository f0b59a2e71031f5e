"""Grades to the LMS through the outbox: ``enqueue_score`` (in the grading transaction) and
the ``ags.score`` job handler (in the worker).

Every score is final (Completed / FullyGraded, see :class:`lms_plugin.lti.ags.Score`). A
graded quiz attempt does not carry its own score to the gradebook: the job names the learner
and module, and the worker asks the grade policy (``learning.services.policy_score``) for the
score *when it sends*, not when it was queued. Under concurrency that is the value that is
right: two attempts graded in overlapping transactions each see only their own row (READ
COMMITTED), so a score fixed at enqueue could miss the other one — a failed re-sit whose
transaction did not yet see the pass would queue 37.5 as "highest", and as the newer job it
would win. The worker claims a job only after its transaction committed, so at send time
every attempt graded so far is visible, and the newest job (the one coalescing keeps) sends
the policy's score over all of them; a retry days later sends what the policy says then
(a completion that expired in between starts a new validity period).

One coalesce key per (platform, resource link, LTI user). A resource link has exactly one
line item of ours (the launch's, or the one bound to the link, found or created by
:func:`lms_plugin.lti.ags.ensure_lineitem`), so the link stands for the line item even
before the line item's URL is known. With that key the outbox keeps
only the newest score: an older one is superseded at enqueue time or just before it runs.

Outcome mapping (platform answer → job status):

* network error, timeout, 5xx → retried with exponential backoff and jitter;
* 429 → retried after the platform's ``Retry-After``;
* Moodle 409 ("timestamp not newer", one-second granularity) → if this job still carries the
  newest score, posted again at once with a strictly later timestamp; else ``superseded``;
* other 4xx (Moodle 400 for a user without a gradebook role, Canvas 422 for an instructor
  previewing, Canvas 400 for an older timestamp…) → ``rejected`` with the platform's message,
  visible on /admin/jobs: no retry loop, no silent loss.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from lms_plugin.errors import ValidationFailed
from lms_plugin.events import AttemptGraded
from lms_plugin.extensions import db
from lms_plugin.jobs.models import SUPERSEDED, OutboxJob
from lms_plugin.jobs.services import (
    JobContext,
    PermanentFailure,
    RetryLater,
    Superseded,
    enqueue,
    job_handler,
    newer_job_exists,
)
from lms_plugin.learning import services as learning
from lms_plugin.lti.ags import Score, ensure_lineitem, iso_timestamp, post_score
from lms_plugin.lti.models import (
    LtiContext,
    LtiIdentity,
    LtiMembership,
    LtiPlatform,
    LtiResourceLink,
)
from lms_plugin.lti.service_client import (
    ServiceRefused,
    ServiceUrlRefused,
    TransientServiceError,
)

KIND = "ags.score"
#: How many strictly later timestamps to try after Moodle's 409 before refusing.
MAX_BUMPS = 3


def coalesce_key(platform_id: int, link_id: int, sub: str) -> str:
    key = f"{KIND}:{platform_id}:{link_id}:{sub}"
    if len(key) > 255:
        key = f"{KIND}:{platform_id}:{link_id}:sha256:{hashlib.sha256(sub.encode()).hexdigest()}"
    return key


def has_ags(link: LtiResourceLink) -> bool:
    return bool(link.lineitem_url or link.lineitems_url)


def enqueue_score(*, link_id: int, user_id: int, score_given: float, event_at: datetime,
                  score_maximum: float = 100, comment: str = "", label: str = "",
                  policy_module_id: int | None = None) -> OutboxJob | None:
    """Queue one final score for a learner on one resource link (flush, no commit).

    ``None`` when the link's launch offered no AGS or the person has no identity on its
    platform (nothing to send). ``event_at`` orders scores: an older one never overwrites a
    newer one, whatever order they are enqueued or delivered in. With ``policy_module_id``
    the worker replaces ``score_given`` and ``comment`` by the grade policy's score for this
    learner and module at send time (see the module docstring).
    ValidationFailed (422) for a naive ``event_at`` or a score outside 0..maximum.
    """
    if event_at.tzinfo is None:
        raise ValidationFailed("event_at must be timezone-aware", field="event_at")
    if not 0 <= float(score_given) <= float(score_maximum) or float(score_maximum) <= 0:
        raise ValidationFailed("score must be between 0 and its maximum", field="score_given")
    link = db.session.get(LtiResourceLink, link_id)
    if link is None or not has_ags(link):
        return None
    context = db.session.get(LtiContext, link.context_id)
    platform = db.session.get(LtiPlatform, context.platform_id) if context else None
    if platform is None:
        return None
    sub = db.session.scalar(select(LtiIdentity.sub).where(
        LtiIdentity.organisation_id == platform.organisation_id,
        LtiIdentity.issuer == platform.issuer, LtiIdentity.user_id == user_id).limit(1))
    if sub is None:
        return None
    payload: dict[str, Any] = {
        "link_id": link.id, "platform_id": platform.id, "sub": sub,
        "score_given": float(score_given), "score_maximum": float(score_maximum),
        "timestamp": iso_timestamp(event_at),
        "comment": comment, "label": label or link.title or link.module_slug or "",
    }
    if policy_module_id is not None:
        payload["policy"] = {"user_id": user_id, "module_id": policy_module_id}
    return enqueue(KIND, payload, organisation_id=platform.organisation_id,
                   coalesce_key=coalesce_key(platform.id, link.id, sub),
                   event_at=event_at.astimezone(UTC))


def enqueue_module_scores(*, user_id: int, module_slug: str, score_percent: float,
                          event_at: datetime, comment: str = "",
                          policy_module_id: int | None = None) -> list[OutboxJob]:
    """Queue the score on every AGS link of this module in the learner's LMS courses.

    The hook the learning package calls when an attempt is graded or a module completes:
    it needs no request or session, only who, what and when (``policy_module_id``: see
    :func:`enqueue_score`). Only courses where the learner's membership is *active* count:
    one the roster sync saw them leave gets no grade (the platform would refuse it: Moodle
    answers 400 for a user without a gradebook role, Canvas 422), until a new launch from
    that course enrols them again.
    """
    links = db.session.scalars(
        select(LtiResourceLink)
        .join(LtiMembership, LtiMembership.context_id == LtiResourceLink.context_id)
        .where(LtiMembership.user_id == user_id, LtiMembership.active.is_(True),
               LtiResourceLink.module_slug == module_slug)
        .order_by(LtiResourceLink.id)
    ).all()
    jobs = []
    for link in links:
        job = enqueue_score(link_id=link.id, user_id=user_id,
                            score_given=max(0.0, min(float(score_percent), 100.0)),
                            event_at=event_at, comment=comment,
                            policy_module_id=policy_module_id)
        if job is not None and job.status != SUPERSEDED:
            jobs.append(job)
    return jobs


@job_handler(KIND)
def deliver_score(payload: dict[str, Any], ctx: JobContext) -> None:
    """Post one score to the platform (runs in the worker, once per claim)."""
    link = db.session.get(LtiResourceLink, payload["link_id"])
    platform = db.session.get(LtiPlatform, payload["platform_id"])
    if link is None or platform is None:
        raise PermanentFailure("the course link or platform of this score no longer exists")
    if not platform.enabled:
        raise PermanentFailure(f"platform {platform.name or platform.issuer} is disabled")
    if not link.lineitem_url:
        # First score on this link: lock its row (PostgreSQL) so concurrent workers sending
        # other learners' scores wait here and reuse the line item rather than create twins.
        link = db.session.get(LtiResourceLink, link.id, with_for_update=True,
                              populate_existing=True)
    timestamp = datetime.fromisoformat(payload["timestamp"])
    score_given, comment = float(payload["score_given"]), payload.get("comment") or ""
    policy = payload.get("policy") or _legacy_policy(payload, platform, link)
    if policy:
        score_given, comment = _policy_score(policy, ctx.now)
    score = Score(user_sub=payload["sub"], score_given=score_given,
                  score_maximum=payload["score_maximum"], timestamp=timestamp,
                  comment=comment)
    try:
        # The link's new line item URL is written when the job settles, not flushed by the
        # token lookup before the score is posted: on SQLite (one writer at a time) a write
        # held across the HTTP call would lock out a platform that shares the database, as
        # the built-in demo LMS does under `make run` (issue 12.3).
        with db.session.no_autoflush:
            lineitem = ensure_lineitem(platform, link, payload.get("label") or "")
            try:
                post_score(platform, lineitem, score)
            except ServiceRefused as exc:
                if exc.status != 409:
                    raise
                _after_conflict(platform, lineitem, score, ctx, exc)
    except TransientServiceError as exc:
        raise RetryLater(exc.reason, after_seconds=exc.retry_after) from None
    except ServiceRefused as exc:
        raise PermanentFailure(f"the platform refused the score (HTTP {exc.status}): "
                               f"{exc.message}") from None
    except ServiceUrlRefused as exc:
        raise PermanentFailure(f"the score was not sent: {exc.reason}") from None


def _legacy_policy(payload: dict[str, Any], platform: LtiPlatform,
                   link: LtiResourceLink) -> dict[str, Any] | None:
    """A job queued by the learning hook before the grade policy existed (its payload has
    ``completed`` and no ``policy``; a failed attempt's said ``completed: false``, which
    Moodle would store as an empty grade): find its learner and module so a retry sends the
    policy's score too. Raises Superseded for a not-completed one that cannot be resolved
    (sending it as final could lower a pass); None for a completed one that cannot be
    resolved (its own score, a pass, is sent as before)."""
    if "completed" not in payload:
        return None
    from lms_plugin.catalog.models import Module

    user_id = db.session.scalar(select(LtiIdentity.user_id).where(
        LtiIdentity.organisation_id == platform.organisation_id,
        LtiIdentity.issuer == platform.issuer, LtiIdentity.sub == payload["sub"]).limit(1))
    module_id = db.session.scalar(select(Module.id).where(
        Module.organisation_id == platform.organisation_id,
        Module.slug == link.module_slug).limit(1)) if link.module_slug else None
    if user_id is not None and module_id is not None:
        return {"user_id": user_id, "module_id": module_id}
    if not payload["completed"]:
        raise Superseded("a score queued before the grade policy whose learner or module "
                         "no longer exists")
    return None


def _policy_score(policy: dict[str, Any], now: datetime) -> tuple[float, str]:
    """The grade policy's percentage and gradebook comment for the job's learner and module,
    read now (after every grading transaction so far committed). Superseded when the
    learner has no graded attempt in the current validity period any more."""
    chosen = learning.policy_score(int(policy["user_id"]), int(policy["module_id"]), now)
    if chosen is None:
        raise Superseded("no graded attempt in the learner's current validity period")
    return max(0.0, min(chosen.score, 100.0)), chosen.comment


def _after_conflict(platform: LtiPlatform, lineitem: str, score: Score, ctx: JobContext,
                    first: ServiceRefused) -> None:
    """Moodle's 409: the stored score's timestamp is not older than ours (same second, or our
    own earlier post whose answer was lost). Only the newest score may be bumped."""
    if newer_job_exists(ctx.job_id):
        raise Superseded(f"the platform holds a newer score ({first.message})")
    base = score.timestamp.replace(microsecond=0)
    last = first
    for step in range(1, MAX_BUMPS + 1):
        bumped = base + timedelta(seconds=step, microseconds=score.timestamp.microsecond)
        try:
            post_score(platform, lineitem, score, timestamp=bumped)
            return
        except ServiceRefused as exc:
            if exc.status != 409:
                raise
            last = exc
    raise ServiceRefused(409, f"the platform keeps a newer score than this one "
                              f"({last.message})")


def enqueue_attempt_score(sender: Any, event: AttemptGraded) -> list[OutboxJob]:
    """Receiver of ``events.attempt_graded`` (connected by :func:`lms_plugin.lti.subscribe`):
    a graded quiz attempt updates the LMS gradebook, in the grading transaction.

    Preview sittings send nothing. Every graded attempt, passed or not, is sent as final
    (Completed / FullyGraded) with the score the organisation's grade policy picks at send
    time (``learning.services.policy_score``): under "highest" a failed re-sit re-sends the
    pass, so it never erases or lowers it; a failed first attempt shows its score.
    ``sender``: the Flask app. Writes outbox rows and flushes; never commits.
    """
    if event.preview:
        return []
    from lms_plugin.catalog.models import Module

    slug = db.session.scalar(select(Module.slug).where(Module.id == event.module_id))
    if slug is None:
        return []
    verdict = "passed" if event.passed else "not passed yet"
    return enqueue_module_scores(
        user_id=event.user_id, module_slug=slug, score_percent=float(event.score),
        event_at=event.when, policy_module_id=event.module_id,
        comment=f"Quiz attempt {event.attempt_number}: {event.score:g}% ({verdict})")

"""Job handlers of the LTI package, imported by the worker's handler discovery."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select

from lms_plugin.accounts.models import User
from lms_plugin.extensions import db
from lms_plugin.jobs import schedule
from lms_plugin.jobs.services import (
    JobContext,
    enqueue,
    job_describer,
    job_handler,
    run_in_batches,
)
from lms_plugin.lti import ags_jobs, nrps, store  # noqa: F401  (register "ags.score", "nrps.*")
from lms_plugin.lti.models import LtiContext, LtiIdentity, LtiPlatform, LtiResourceLink
from lms_plugin.lti.store import purge_expired

PURGE_KIND = "lti.purge_state"
PURGE_INTERVAL = timedelta(hours=1)
PURGE_BATCHES_PER_RUN = 5


@job_handler(PURGE_KIND)
def run_purge_state(payload: dict[str, Any], ctx: JobContext) -> None:
    """Delete expired LTI state and used nonces kept in the database (without Redis), a few
    batches per job; a continuation takes over when more remain."""
    _, finished = run_in_batches(lambda: purge_expired(ctx.now),
                                 batch_size=store.PURGE_BATCH,
                                 max_batches=PURGE_BATCHES_PER_RUN, commit=False)
    if not finished:
        enqueue(PURGE_KIND, {}, coalesce_key=f"schedule:{ctx.kind}", now=ctx.now)


schedule.every(PURGE_KIND, PURGE_INTERVAL)


@job_describer(ags_jobs.KIND)
def describe_scores(jobs: list[Any]) -> dict[int, str]:
    """"Grade of Nia Okafor (nia@…) for module bcma-… (link "…")" for each score job on
    /admin/jobs: two queries for the whole page (people by platform and sub, then links)."""
    payloads = {job.id: job.payload or {} for job in jobs}
    subs = {p.get("sub") for p in payloads.values() if p.get("sub")}
    platforms = {p.get("platform_id") for p in payloads.values() if p.get("platform_id")}
    links = {p.get("link_id") for p in payloads.values() if p.get("link_id")}
    people = {(pid, sub): (name, email) for pid, sub, name, email in db.session.execute(
        select(LtiPlatform.id, LtiIdentity.sub, User.name, User.email)
        .join(LtiIdentity, (LtiIdentity.issuer == LtiPlatform.issuer)
              & (LtiIdentity.organisation_id == LtiPlatform.organisation_id))
        .join(User, User.id == LtiIdentity.user_id)
        .where(LtiPlatform.id.in_(platforms), LtiIdentity.sub.in_(subs)))} if subs else {}
    titles = {lid: (title, slug) for lid, title, slug in db.session.execute(
        select(LtiResourceLink.id, LtiResourceLink.title, LtiResourceLink.module_slug)
        .where(LtiResourceLink.id.in_(links)))} if links else {}
    described = {}
    for job_id, payload in payloads.items():
        name, email = people.get((payload.get("platform_id"), payload.get("sub")),
                                 (None, None))
        who = (f"{name} ({email})" if name and email else name or email
               or f"LMS user {payload.get('sub')}")
        title, slug = titles.get(payload.get("link_id"), (payload.get("label"), None))
        what = f"module {slug}" if slug else "a module"
        if title:
            what += f' (link "{title}")'
        described[job_id] = f"Grade of {who} for {what}"
    return described


@job_describer(nrps.KIND)
def describe_roster_syncs(jobs: list[Any]) -> dict[int, str]:
    """"Roster of course DEMO-101 (…)" for each roster sync job: one query for the page."""
    ids = {(job.payload or {}).get("context_id") for job in jobs}
    courses = {cid: (label, title) for cid, label, title in db.session.execute(
        select(LtiContext.id, LtiContext.label, LtiContext.title)
        .where(LtiContext.id.in_(ids - {None})))}
    described = {}
    for job in jobs:
        label, title = courses.get((job.payload or {}).get("context_id"), (None, None))
        course = " ".join(filter(None, (label, f"({title})" if title else None)))
        described[job.id] = f"Roster of course {course}" if course else "Roster of a course"
    return described

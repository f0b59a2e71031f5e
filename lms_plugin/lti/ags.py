"""Assignment and Grade Services: find or create a link's line item, post a score.

Called by the ``ags.score`` job handler (:mod:`lms_plugin.lti.ags_jobs`), never from a
request: the network call happens in the worker, after the grading transaction committed.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from lms_plugin.lti.models import LtiPlatform, LtiResourceLink
from lms_plugin.lti.service_client import ServiceRefused, service_request

SCOPE_LINEITEM = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem"
SCOPE_LINEITEM_READONLY = "https://purl.imsglobal.org/spec/lti-ags/scope/lineitem.readonly"
SCOPE_SCORE = "https://purl.imsglobal.org/spec/lti-ags/scope/score"
SCORE_TYPE = "application/vnd.ims.lis.v1.score+json"
LINEITEM_TYPE = "application/vnd.ims.lis.v2.lineitem+json"
LINEITEMS_TYPE = "application/vnd.ims.lis.v2.lineitemcontainer+json"
SCORE_MAXIMUM = 100
TAG = "lms-plugin-module"


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 with microseconds and an explicit offset: Moodle compares by second, so
    sub-second precision keeps two quick scores in order wherever the platform can tell."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="microseconds")


ACTIVITY_COMPLETED = "Completed"
GRADING_FULLY_GRADED = "FullyGraded"


@dataclass(frozen=True)
class Score:
    """One final grade for one learner on one line item: ``score_given`` out of
    ``score_maximum`` (0 ≤ given ≤ maximum; the tool sends percentages, maximum 100).

    Every score the tool sends is final, so it always travels as ``activityProgress``
    Completed and ``gradingProgress`` FullyGraded: the learner finished the graded attempt
    and the tool graded it, whether or not it passed. Each platform records a grade only
    then, and anything else *erases or hides* the grade it holds (issue 9 item 2):

    * 1EdTech AGS 2.0 §3.4 (Score publish service): ``scoreGiven`` is meaningful with
      gradingProgress FullyGraded; Pending / PendingManual / Failed / NotReady mean the
      grade is not final, and a platform may ignore the score. ``scoreMaximum`` must be
      present with ``scoreGiven``; ``timestamp`` orders scores and a platform must refuse
      one older than what it holds.
    * Moodle (mod/lti/service/gradebookservices/classes/local/resources/scores.php,
      ``get_json_for_post_request``): ``scoreGiven`` is set to null unless gradingProgress
      is FullyGraded and the null is saved — a Pending score replaces a recorded grade with
      an empty one; 400 when userId, timestamp, gradingProgress or activityProgress is
      missing or the user has no gradebook role; 409 when the stored grade's time is not
      older than ``timestamp`` (compared in whole seconds).
    * Canvas (Score API, developerdocs.instructure.com …/file.all_resources/score):
      ``scoreMaximum`` must be present when ``scoreGiven`` is (422 otherwise); "NotReady,
      Failed, and Pending will cause the scoreGiven to be ignored", PendingManual waits for
      a grader, FullyGraded needs no action; 400 for a timestamp older than the last one.
    * Open edX (openedx/xblock-lti-consumer, lti_consumer/signals/signals.py,
      ``publish_grade_on_score_update``): a score reaches the course grade only when
      gradingProgress is FullyGraded *and* ``scoreGiven`` is truthy (a 0 is not
      published), capped at ``scoreMaximum`` and not after the due date unless the block
      accepts late grades.

    Which score is final for a learner (highest or most recent attempt) is the
    organisation's grade policy, ``learning.services.policy_score``.
    """

    user_sub: str
    score_given: float
    score_maximum: float
    timestamp: datetime
    comment: str = ""

    def as_json(self, timestamp: datetime | None = None) -> dict[str, Any]:
        """The score document (AGS ``application/vnd.ims.lis.v1.score+json``)."""
        body: dict[str, Any] = {
            "userId": self.user_sub,
            "scoreGiven": round(float(self.score_given), 4),
            "scoreMaximum": float(self.score_maximum),
            "activityProgress": ACTIVITY_COMPLETED,
            "gradingProgress": GRADING_FULLY_GRADED,
            "timestamp": iso_timestamp(timestamp or self.timestamp),
        }
        if self.comment:
            body["comment"] = self.comment[:1000]
        return body


def scores_url(lineitem_url: str) -> str:
    """``<lineitem>/scores``, keeping the line item's query string (Moodle adds ``type_id``)."""
    parts = urlsplit(lineitem_url)
    return urlunsplit(parts._replace(path=parts.path.rstrip("/") + "/scores"))


def _lineitem_scopes(link: LtiResourceLink) -> list[str]:
    scopes = set(link.ags_scopes or [])
    if SCOPE_LINEITEM in scopes:
        return [SCOPE_LINEITEM]
    return [SCOPE_LINEITEM_READONLY] if SCOPE_LINEITEM_READONLY in scopes else [SCOPE_LINEITEM]


def ensure_lineitem(platform: LtiPlatform, link: LtiResourceLink, label: str) -> str:
    """The link's own line item URL (one gradebook column per placement of a module).

    In order: the launch's ``lineitem`` claim (stored on the link); else the line item of
    the container bound to this resource link (``resourceLinkId`` equal to the link's id)
    for this module (``resourceId``, the module slug); else a new one, created bound to the
    link (``resourceLinkId``) with our ``tag``. A line item is never matched on the module's
    resourceId alone: a module placed twice in one course has two links, and many line
    items may share a resourceId in a context (1EdTech AGS 2.0, line item service: a line
    item's ``resourceLinkId``, ``resourceId`` and ``tag``, and the container's
    ``resource_link_id`` / ``resource_id`` / ``tag`` filters; Canvas Line Items API:
    "Multiple line items can share the same resourceId within a given context"). On a
    platform that keeps no link on its line items the search finds nothing and the link
    gets its own, new column.

    Sets ``link.lineitem_url`` (the caller commits), so the search runs once per link.
    Raises the service client's errors, and ServiceRefused (400) when the launch offered
    no line item container or the platform created a line item without an id.
    """
    if link.lineitem_url:
        return link.lineitem_url
    if not link.lineitems_url:
        raise ServiceRefused(400, "the platform offered no line item for this link "
                                  "(no AGS lineitem or lineitems URL at launch)")
    slug = link.module_slug or ""
    scopes = _lineitem_scopes(link)
    found = service_request(platform, "GET", link.lineitems_url, scopes,
                            accept=LINEITEMS_TYPE,
                            params={"resource_id": slug, "resource_link_id":
                                    link.resource_link_id}).json()
    for item in found if isinstance(found, list) else []:
        if (isinstance(item, dict) and item.get("id") and item.get("resourceId") == slug
                and str(item.get("resourceLinkId") or "") == link.resource_link_id):
            link.lineitem_url = str(item["id"])
            return link.lineitem_url
    created = service_request(platform, "POST", link.lineitems_url, [SCOPE_LINEITEM],
                              content_type=LINEITEM_TYPE, accept=LINEITEM_TYPE, body={
                                  "scoreMaximum": SCORE_MAXIMUM,
                                  "label": (label or slug or "Training module")[:250],
                                  "resourceId": slug,
                                  "resourceLinkId": link.resource_link_id,
                                  "tag": TAG,
                              }).json()
    if not isinstance(created, dict) or not created.get("id"):
        raise ServiceRefused(400, "the platform created a line item without an id")
    link.lineitem_url = str(created["id"])
    return link.lineitem_url


def post_score(platform: LtiPlatform, lineitem_url: str, score: Score,
               timestamp: datetime | None = None) -> None:
    """POST the score; raises the service client's errors on anything but 2xx."""
    service_request(platform, "POST", scores_url(lineitem_url), [SCOPE_SCORE],
                    body=score.as_json(timestamp), content_type=SCORE_TYPE)

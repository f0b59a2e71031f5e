"""Domain events: what happened in a learner's training, announced inside its transaction.

``learning`` orchestrates a quiz submission (grade -> completion -> events) and sends the
signals below; packages higher up (``lti`` for the LMS gradebook, later ``credits`` and
``reports``) subscribe when the application is created, so nothing below ``learning`` knows
that an LMS exists (issue 11 item 1; DESIGN "Domain events").

Rules for subscribers (blinker receivers):

- They are connected per application (``signal.connect(receiver, sender=app)``) and the
  sender is the current Flask app, so an application without a subscriber sends to no one.
- They run synchronously, inside the grading transaction, before the edge (view, CLI
  command, job) commits. They may add rows (an outbox job, an audit record) and ``flush()``;
  they must never commit or roll back.
- An exception in a receiver propagates out of the sending service: the edge rolls the
  whole transaction back, so there is never a graded attempt without its completion or the
  outbox rows its subscribers meant to write.
- Anything that must leave the process (an HTTP call to the LMS) goes through the outbox,
  never from a receiver.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from blinker import Namespace
from flask import current_app

_signals = Namespace()

attempt_graded = _signals.signal("attempt-graded", doc="""\
A quiz attempt was graded for the first time (a replayed submission sends nothing).

Keyword argument ``event``: :class:`AttemptGraded`. Sent for every graded attempt, passed
or not, preview included (``event.preview``; subscribers that report results skip those).
""")

completion_recorded = _signals.signal("completion-recorded", doc="""\
A learner completed a module version (a passed, non-preview attempt).

Keyword argument ``event``: :class:`CompletionRecorded`. Sent after ``attempt_graded`` of
the same attempt, in the same transaction.
""")

version_published = _signals.signal("version-published", doc="""\
A module version was published (``catalog.services.publish_version``: content import,
``content publish``, the demo LMS).

Keyword argument ``event``: :class:`VersionPublished`. ``learning`` re-evaluates the
organisation's assignment rules (a newly published module gains its assignments) through an
outbox job, so ``catalog`` never imports ``learning`` (issue 14).
""")


@dataclass(frozen=True)
class VersionPublished:
    """Payload of :data:`version_published`: ``when`` is the UTC publication time."""

    organisation_id: int
    module_id: int
    version_id: int
    retraining_required: bool
    when: datetime


@dataclass(frozen=True)
class AttemptGraded:
    """Payload of :data:`attempt_graded`.

    ``score``: percentage 0-100 (as stored on the attempt); ``passed``: score >= the
    version's pass mark; ``when``: UTC grading time (the submission's ``now``);
    ``attempt_number``: 1-based number of the attempt for this learner and version;
    ``preview``: an author's trial sitting, which records no completion.
    """

    attempt_id: int
    user_id: int
    module_id: int
    version_id: int
    attempt_number: int
    score: float
    passed: bool
    preview: bool
    when: datetime


@dataclass(frozen=True)
class CompletionRecorded:
    """Payload of :data:`completion_recorded`.

    ``score``: percentage 0-100 of the attempt that earned it; ``when``: UTC completion
    time; ``expires_at``: UTC end of validity, None when the version never expires.
    """

    completion_id: int
    attempt_id: int
    user_id: int
    module_id: int
    version_id: int
    score: float
    when: datetime
    expires_at: datetime | None


def announce(signal, event: object) -> None:
    """Send ``event`` to ``signal``'s receivers connected for the current application.

    Receivers run now, in the caller's transaction; their exceptions propagate (see the
    module docstring). Needs an application context.
    """
    signal.send(current_app._get_current_object(), event=event)
